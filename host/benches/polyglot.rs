//! Polyglot benchmark: the temperature formatter written in Rust, C, Python and
//! JavaScript, measured in one run. Per language: component size, cold compile time
//! (no cache), instantiation (new instance + `start`) p50/p99, linear memory per
//! instance, and per-message time (p50/p99 of one `process` call); the ratio columns
//! compare each with the Rust formatter measured in the same run.
//!
//! Builds the non-Rust components first (`wasmflo build`'s library; toolchains install on
//! first use). `cargo bench -p wasmflo-host --bench polyglot`; `WASMFLO_BENCH_QUICK=1`
//! for a short run.

// A benchmark binary: failing loudly on a broken set-up is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmflo_guest_build::foreign::{ForeignOptions, build_foreign, discover_foreign};
use wasmflo_guest_build::{component_path, workspace_target_dir};
use wasmflo_host::component::{Loader, components_dir};
use wasmflo_host::message::Message;
use wasmflo_host::runtime::{Limits, Runtime, RuntimeConfig};

const FORMATTERS: [(&str, &str); 4] = [
    ("rust", "temperature/Format"),
    ("c", "c/Format"),
    ("python", "python/Format"),
    ("js", "js/Format"),
];

struct Figures {
    size: u64,
    compile: Duration,
    instantiate: (Duration, Duration),
    memory: usize,
    message: (Duration, Duration),
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn build_polyglot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dirs: Vec<PathBuf> = ["c", "python", "js"]
        .iter()
        .map(|l| root.join("components").join(l))
        .collect();
    let guests = discover_foreign(&dirs).expect("discover");
    let opts = ForeignOptions {
        target_dir: workspace_target_dir(&root),
        workspace_root: root,
        out_dir: components_dir(),
    };
    build_foreign(&opts, &guests).expect("build the polyglot components");
}

fn measure(name: &str, instances: usize, messages: usize) -> Figures {
    let path = component_path(&components_dir(), name);
    let size = std::fs::metadata(&path).expect("component file").len();
    // A fresh loader without a disk cache: the first load is a cold compile.
    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 16,
        ..RuntimeConfig::default()
    })
    .expect("engine");
    let loader = Loader::new(runtime, None);
    let started = Instant::now();
    let loaded = loader.load(&path).expect("loads");
    let compile = started.elapsed();

    let limits = Limits::default();
    let mut create = Vec::with_capacity(instances);
    let mut memory = 0;
    for _ in 0..instances {
        let t = Instant::now();
        let mut instance = loaded
            .instantiate(Arc::from("bench"), &limits)
            .expect("instantiates");
        assert!(instance.start().result.is_ok());
        create.push(t.elapsed());
        memory = instance.linear_memory();
    }

    let mut instance = loaded
        .instantiate(Arc::from("bench"), &limits)
        .expect("instantiates");
    assert!(instance.start().result.is_ok());
    let msg = Message::json_text("22.3333");
    let mut per_message = Vec::with_capacity(messages);
    for _ in 0..messages {
        let t = Instant::now();
        let out = instance.process("in", &msg);
        per_message.push(t.elapsed());
        assert_eq!(&out.outputs[0].1.data[..], b"\"Temperature: 22.3 C\"");
    }
    Figures {
        size,
        compile,
        instantiate: (quantile(&mut create, 0.5), quantile(&mut create, 0.99)),
        memory,
        message: (
            quantile(&mut per_message, 0.5),
            quantile(&mut per_message, 0.99),
        ),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some();
    let (instances, messages) = if quick { (20, 2_000) } else { (100, 20_000) };
    build_polyglot();
    println!(
        "polyglot: temperature formatter per language ({instances} instances, {messages} messages each)"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>14} {:>14} {:>10} {:>14} {:>14}",
        "language",
        "size KiB",
        "compile ms",
        "instance p50",
        "instance p99",
        "memory MiB",
        "message p50",
        "message p99"
    );
    let figures: Vec<(&str, Figures)> = FORMATTERS
        .iter()
        .map(|(lang, name)| (*lang, measure(name, instances, messages)))
        .collect();
    let rust = &figures[0].1;
    for (lang, f) in &figures {
        println!(
            "{:<8} {:>10} {:>10.0} {:>11.1} µs {:>11.1} µs {:>10.1} {:>11.2} µs {:>11.2} µs",
            lang,
            f.size.div_ceil(1024),
            f.compile.as_secs_f64() * 1e3,
            us(f.instantiate.0),
            us(f.instantiate.1),
            f.memory as f64 / (1 << 20) as f64,
            us(f.message.0),
            us(f.message.1),
        );
    }
    println!("ratios to Rust (same run): size, compile, instance p50, memory, message p50");
    for (lang, f) in &figures[1..] {
        println!(
            "{:<8} {:>7.1}x {:>7.1}x {:>7.1}x {:>7.1}x {:>7.1}x",
            lang,
            f.size as f64 / rust.size as f64,
            f.compile.as_secs_f64() / rust.compile.as_secs_f64(),
            us(f.instantiate.0) / us(rust.instantiate.0),
            f.memory as f64 / rust.memory.max(1) as f64,
            us(f.message.0) / us(rust.message.0),
        );
    }
}
