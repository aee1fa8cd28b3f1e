//! Live-coding benchmark: from the final rename of a component file to the first message
//! processed by the new code, while a steady 10,000 msg/s flows through the process.
//!
//! For each example component, N swaps (50; 10 with `WASMFLO_BENCH_QUICK=1`) of a new
//! version (the same code with a fresh custom section, so a new hash the loader has not
//! seen) are made through the real watcher. Printed per component: p50/p99 of the
//! end-to-end latency; of the load step (read + compile + check; Cranelift's
//! per-function cache recognises every unchanged function, here all of them); of a cold
//! compile of the same bytes on an engine without that cache (the baseline: what a real
//! edit touching every function would cost); and of the swap step inside the
//! participant (instantiate, start, snapshot/restore, rewire); the ratio of end-to-end
//! to the cold compile; and messages lost (sent minus received; must be 0).
//!
//! "First message processed by the new code" is the first output that arrives after the
//! participant reported the swap done; at 10,000 msg/s that is within 100 µs of it.
//!
//! `cargo bench -p wasmflo-host --bench live`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmflo_host::component::{Loader, Resolver, components_dir};
use wasmflo_host::graph::{self, Format, ParseOptions};
use wasmflo_host::live::{WatchEvent, WatchOptions, watch_components};
use wasmflo_host::message::Message;
use wasmflo_host::network::{Network, Source};
use wasmflo_host::runtime::{Runtime, RuntimeConfig};
use wasmflo_host::transport::{Binding, BindingKind, MemoryTransport, Transport};

/// Messages per second offered during the swaps.
const RATE: u64 = 10_000;

fn with_custom_section(bytes: &[u8], payload: &[u8]) -> Vec<u8> {
    let name = b"wasmflo-bench-version";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    let mut n = body.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&body);
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Figures {
    cold: Vec<Duration>,
    end_to_end: Vec<Duration>,
    load: Vec<Duration>,
    step: Vec<Duration>,
    lost: i64,
}

async fn bench_component(
    loader: &Arc<Loader>,
    cold_loader: &Loader,
    name: &str,
    input: &str,
    swaps: u32,
    nonce: u128,
) -> Figures {
    let dir =
        std::env::temp_dir().join(format!("wasmflo-bench-live-{}-{nonce}", std::process::id()));
    let file = wasmflo_guest_build::component_path(&dir, name);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let original = std::fs::read(components_dir().join(format!("{name}.wasm"))).unwrap();
    std::fs::write(&file, &original).unwrap();

    let src = format!("p({name})");
    let graph = graph::parse(&src, Format::Fbp, &ParseOptions::default()).unwrap();
    let transport = Arc::new(MemoryTransport::new());
    let resolver = Resolver::new(&dir, &dir);
    let network = Network::start(
        &graph,
        &Source::default(),
        loader,
        &resolver,
        transport.clone(),
    )
    .await
    .unwrap();
    let mut swap_events = network.swapper().events();
    let opts = WatchOptions {
        settle: Duration::from_millis(300),
        rebuild: false,
    };
    let watch = watch_components(network.swapper().clone(), loader.clone(), opts).unwrap();
    let mut watch_events = watch.events();

    transport.declare_queue("sink").await.unwrap();
    transport
        .bind(&Binding {
            src: "p.OUT".into(),
            tgt: "sink".into(),
            kind: BindingKind::PubSub,
        })
        .await
        .unwrap();
    let mut sink = transport.subscribe("sink").await.unwrap();

    // Producer: RATE msg/s in 1 ms ticks.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (transport, sent, stop) = (transport.clone(), sent.clone(), stop.clone());
        let input = input.to_string();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..RATE / 1000 {
                    transport
                        .send_to_queue("p.IN", Message::json_text(input.clone()))
                        .await
                        .unwrap();
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Consumer: arrival time of every output.
    let received = Arc::new(AtomicU64::new(0));
    let (arrivals_tx, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let consumer = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(d) = sink.next().await {
                d.ack();
                received.fetch_add(1, Ordering::Relaxed);
                if arrivals_tx.send(Instant::now()).is_err() {
                    break;
                }
            }
        })
    };

    let mut figures = Figures {
        cold: Vec::new(),
        end_to_end: Vec::new(),
        load: Vec::new(),
        step: Vec::new(),
        lost: 0,
    };
    tokio::time::sleep(Duration::from_millis(50)).await; // let the stream reach steady state
    for i in 0..swaps {
        let mut payload = nonce.to_le_bytes().to_vec();
        payload.extend_from_slice(&i.to_le_bytes());
        let bytes = with_custom_section(&original, &payload);
        // The same version compiled from scratch, without the function cache.
        let cold = Instant::now();
        cold_loader
            .load_bytes(Path::new("cold.wasm"), &bytes)
            .unwrap();
        figures.cold.push(cold.elapsed());
        let tmp = file.with_extension("wasm.tmp");
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let renamed = Instant::now();
        let swap = swap_events.recv().await.unwrap();
        assert!(swap.outcome.is_ok(), "swap rejected: {:?}", swap.outcome);
        loop {
            match watch_events.recv().await.unwrap() {
                WatchEvent::Offered { load, .. } => {
                    figures.load.push(load);
                    break;
                }
                WatchEvent::Rejected { error, .. } => panic!("{error}"),
                WatchEvent::Incomplete { .. } => {}
            }
        }
        figures.step.push(swap.outcome.as_ref().unwrap().1);
        // First output after the swap finished.
        loop {
            let at = arrivals.recv().await.unwrap();
            if at >= swap.at {
                figures.end_to_end.push(at - renamed);
                break;
            }
        }
        while arrivals.try_recv().is_ok() {}
    }
    stop.store(true, Ordering::Relaxed);
    producer.await.unwrap();
    drop(watch);
    network.shutdown(Duration::from_secs(10)).await;
    // Every message sent was processed and published before shutdown returned.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < sent.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        tokio::task::yield_now().await;
    }
    figures.lost = sent.load(Ordering::Relaxed) as i64 - received.load(Ordering::Relaxed) as i64;
    consumer.abort();
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some();
    let swaps = if quick { 10 } else { 50 };
    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 100,
        ..RuntimeConfig::default()
    })
    .unwrap();
    // No disk cache: every version is new to the loader. The engine's per-function
    // cache is on, as in `wasmflo run`; a second engine without it compiles each
    // version from scratch for comparison.
    let loader = Arc::new(Loader::new(runtime, None));
    let cold_runtime = Runtime::new(&RuntimeConfig {
        max_instances: 100,
        function_cache: 0,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let cold_loader = Loader::new(cold_runtime, None);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("live swap: rename -> first message on new code, {swaps} swaps at {RATE} msg/s");
    for (name, input) in [("core/Repeat", "{\"n\":1}"), ("temperature/Format", "21.5")] {
        let f = rt.block_on(bench_component(
            &loader,
            &cold_loader,
            name,
            input,
            swaps,
            nonce,
        ));
        let mut e2e = f.end_to_end.clone();
        let mut load = f.load.clone();
        let mut step = f.step.clone();
        let mut cold = f.cold.clone();
        cold.sort();
        e2e.sort();
        load.sort();
        step.sort();
        println!(
            "  {name:<20} end-to-end p50 {:6.2} ms  p99 {:6.2} ms   (target p50 <= 50, p99 <= 200)",
            ms(pct(&e2e, 0.5)),
            ms(pct(&e2e, 0.99))
        );
        println!(
            "  {:<20} load (compile with function cache) p50 {:6.2} ms  p99 {:6.2} ms",
            "",
            ms(pct(&load, 0.5)),
            ms(pct(&load, 0.99))
        );
        println!(
            "  {:<20} cold compile, no cache (baseline) p50 {:6.2} ms  p99 {:6.2} ms",
            "",
            ms(pct(&cold, 0.5)),
            ms(pct(&cold, 0.99))
        );
        println!(
            "  {:<20} swap step p50 {:6.3} ms  p99 {:6.3} ms   (target p99 <= 2)",
            "",
            ms(pct(&step, 0.5)),
            ms(pct(&step, 0.99))
        );
        println!(
            "  {:<20} ratio end-to-end / cold compile (p50): {:.2}x   messages lost: {}",
            "",
            ms(pct(&e2e, 0.5)) / ms(pct(&cold, 0.5)).max(1e-9),
            f.lost
        );
    }
}
