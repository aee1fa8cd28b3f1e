//! Edge host benchmark: messages/s of the same component under wasmi (edge host) and
//! wasmtime (server host) in one run, the edge host's MQTT participant over the local
//! Mosquitto, the edge host's peak heap per example participant
//! (a counting global allocator), and the device image's RAM and flash as booted in qemu.
//!
//! `WASMFLO_BENCH_QUICK=1` runs fewer messages (CI). Run with
//! `cargo bench -p wasmflo-edge --bench edge [-- SECTION]` (throughput, mqtt, load, heap,
//! device).
// The counting allocator is the one place a global allocator needs `unsafe`.
#![allow(unsafe_code)]
#![allow(clippy::expect_used, clippy::panic, reason = "benchmark binary")]
#![allow(
    clippy::needless_update,
    reason = "the server host's RuntimeConfig gains fields; defaults fill them"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::device;

/// The system allocator, counting bytes in use and their high-water mark.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System`; only adds atomic counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a high-water measurement: returns the bytes in use now.
fn reset_peak() -> usize {
    let now = NOW.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

fn kib(bytes: impl Into<u64>) -> String {
    format!("{:.1} KiB", bytes.into() as f64 / 1024.0)
}

/// The example participants the load and device sections measure.
const EXAMPLES: [&str; 7] = [
    "temperature/Format",
    "temperature/Sensor",
    "temperature/Display",
    "temperature/Combine",
    "core/Repeat",
    "core/Output",
    "core/Drop",
];

/// The server host's engine, as the bench's baselines use it: no pooling, a few instances.
fn server_runtime() -> wasmflo_host::runtime::Runtime {
    wasmflo_host::runtime::Runtime::new(&wasmflo_host::runtime::RuntimeConfig {
        max_instances: 4,
        max_memory: 64 << 20,
        pooling: false,
        ..Default::default()
    })
    .expect("runtime")
}

/// Messages per second through the formatter on both hosts, same component file.
fn throughput(messages: usize) {
    let path = common::component("temperature/Format");
    let payloads: Vec<String> = (0..64)
        .map(|i| format!("{}", 20.0 + f64::from(i) / 7.0))
        .collect();

    let bytes = std::fs::read(&path).expect("read");
    let edge =
        wasmflo_edge::Component::new(&wasmflo_edge::Engine::new(), &bytes).expect("edge load");
    let mut instance = edge
        .instantiate(&wasmflo_edge::Limits::default())
        .expect("instance");
    let _ = instance.start();
    let msgs: Vec<wasmflo_edge::Message> = payloads
        .iter()
        .map(|p| wasmflo_edge::Message::json_text(p.as_str()))
        .collect();
    let mut fuel = 0u64;
    let started = Instant::now();
    for i in 0..messages {
        let outcome = instance.process("in", &msgs[i % msgs.len()]);
        assert!(outcome.result.is_ok());
        fuel += outcome.fuel;
        black_box(outcome);
    }
    let wasmi_rate = messages as f64 / started.elapsed().as_secs_f64();

    let runtime = server_runtime();
    let loader = wasmflo_host::component::Loader::new(runtime, None);
    let loaded = loader.load(&path).expect("server load");
    let mut server = loaded
        .instantiate(
            Arc::from("bench"),
            &wasmflo_host::runtime::Limits::default(),
        )
        .expect("server instance");
    let _ = server.start();
    let server_msgs: Vec<wasmflo_host::message::Message> = payloads
        .iter()
        .map(|p| wasmflo_host::message::Message::json_text(p.clone()))
        .collect();
    let started = Instant::now();
    for i in 0..messages {
        let outcome = server.process("in", &server_msgs[i % server_msgs.len()]);
        assert!(outcome.result.is_ok());
        black_box(outcome);
    }
    let wasmtime_rate = messages as f64 / started.elapsed().as_secs_f64();

    println!("throughput, temperature/Format, {messages} messages each:");
    println!(
        "  wasmi (edge host)     {wasmi_rate:>10.0} msg/s  ({} fuel/msg)",
        fuel / messages as u64
    );
    println!("  wasmtime (server)     {wasmtime_rate:>10.0} msg/s");
    println!(
        "  ratio wasmtime/wasmi  {:>10.1}x",
        wasmtime_rate / wasmi_rate
    );
}

/// Load time per example participant: the edge host's `Component::new` (unpack, the
/// definition probe on a throwaway engine, the kept modules parsed and validated again)
/// against the server host loading the same file (wasmtime's Cranelift compile and its
/// definition probe, no compile cache), medians of `runs` loads each.
fn load_times(runs: usize) {
    let runtime = server_runtime();
    // A server load takes tens of milliseconds: a tenth as many of them.
    let server_runs = runs.div_ceil(10);
    let median = |mut samples: Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    println!(
        "load time per participant (x86_64; medians of {runs} edge and {server_runs} server \
         loads; server: no compile cache):"
    );
    println!(
        "  {:<22} {:>10} {:>14} {:>14} {:>8}",
        "component", "file", "edge (wasmi)", "server", "ratio"
    );
    for name in EXAMPLES {
        let path = common::component(name);
        let bytes = std::fs::read(&path).expect("read");
        let edge = median(
            (0..runs)
                .map(|_| {
                    let started = Instant::now();
                    black_box(
                        wasmflo_edge::Component::new(&wasmflo_edge::Engine::new(), &bytes)
                            .expect("edge load"),
                    );
                    started.elapsed().as_secs_f64()
                })
                .collect(),
        );
        let server = median(
            (0..server_runs)
                .map(|_| {
                    // A new loader each time: one keeps the versions it loaded.
                    let loader = wasmflo_host::component::Loader::new(runtime.clone(), None);
                    let started = Instant::now();
                    black_box(loader.load_bytes(&path, &bytes).expect("server load"));
                    started.elapsed().as_secs_f64()
                })
                .collect(),
        );
        println!(
            "  {name:<22} {:>10} {:>11.2} ms {:>11.2} ms {:>7.1}x",
            kib(bytes.len() as u64),
            edge * 1e3,
            server * 1e3,
            server / edge
        );
    }
}

/// Peak heap of the edge host running each example participant on this machine.
fn peak_heap() {
    let cases: [(&str, &[(&str, &str)]); 7] = [
        (
            "temperature/Format",
            &[("in", "22.3333"), ("unit", "\"F\""), ("in", "-5.55")],
        ),
        ("temperature/Sensor", &[("trigger", "null"), ("base", "-5")]),
        ("temperature/Display", &[("in", "\"Temperature: 22.3 C\"")]),
        (
            "temperature/Combine",
            &[("inside", "22.25"), ("outside", "-5.5")],
        ),
        ("core/Repeat", &[("in", "{\"a\":1}")]),
        ("core/Output", &[("in", "\"hello\"")]),
        ("core/Drop", &[("in", "1")]),
    ];
    println!(
        "edge host peak heap per participant (x86_64; load + instantiate + start + messages):"
    );
    println!(
        "  {:<22} {:>12} {:>14} {:>12}",
        "component", "file", "component in", "component in"
    );
    println!(
        "  {:<22} {:>12} {:>14} {:>12}",
        "", "", "flash", "RAM (OTA)"
    );
    for (name, inputs) in cases {
        let bytes = std::fs::read(common::component(name)).expect("read");
        // "Flash": the bytes are not counted (as on the device, where they are in flash).
        let base = reset_peak();
        run_edge(&bytes, inputs);
        let in_flash = peak_since(base);
        // "RAM": the component arrived over the air and sits in the heap while it runs.
        let base = reset_peak();
        let received = bytes.clone();
        run_edge(&received, inputs);
        drop(received);
        let in_ram = peak_since(base);
        println!(
            "  {name:<22} {:>12} {:>14} {:>12}",
            kib(bytes.len() as u64),
            kib(in_flash as u64),
            kib(in_ram as u64)
        );
    }
}

fn run_edge(bytes: &[u8], inputs: &[(&str, &str)]) {
    let component =
        wasmflo_edge::Component::new(&wasmflo_edge::Engine::new(), bytes).expect("load");
    let mut instance = component
        .instantiate(&wasmflo_edge::Limits::default())
        .expect("instance");
    black_box(instance.start());
    for (port, payload) in inputs {
        black_box(instance.process(port, &wasmflo_edge::Message::json_text(*payload)));
    }
}

/// The device image in qemu: RAM high-water marks and flash per example participant (only
/// the formatter in quick mode), if the tools are here.
fn device_figures(quick: bool) {
    if !device::available("device figures") {
        return;
    }
    // The formatter, the participant with the RAM target, comes first.
    let names = if quick { &EXAMPLES[..1] } else { &EXAMPLES[..] };
    println!(
        "device image (riscv32imac, qemu virt, 512 KiB RAM; components built with the device profile: a fixed memory of 1-byte pages, each guest's own stack and heap or 8 KiB and 16 KiB):"
    );
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>12} {:>12} {:>11} {:>11}",
        "component", "file", "heap peak", "stack", "peak RAM", "RAM if OTA", "guest mem", "flash"
    );
    let mut format_sections = None;
    for name in names {
        let component = device::device_component(name);
        let image = device::build_image(&component);
        let sections = device::sections(&image);
        let file = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
        let flash = device::flash_bytes(&sections);
        let (ok, output) = device::try_boot(&image);
        let (_, figures) = device::parse(&output);
        if !ok {
            let last = output.lines().last().unwrap_or("");
            println!(
                "  {name:<22} {:>10} does not run in 512 KiB: {last}",
                kib(file)
            );
            continue;
        }
        let stat = |key: &str| figures.get(key).copied().unwrap_or(0);
        let ram =
            stat("heap-peak") + stat("stack-peak") + sections.get(".data").copied().unwrap_or(0);
        println!(
            "  {name:<22} {:>10} {:>10} {:>10} {:>12} {:>12} {:>11} {:>11}",
            kib(file),
            kib(stat("heap-peak")),
            kib(stat("stack-peak")),
            kib(ram),
            kib(ram + file),
            kib(stat("memory")),
            kib(flash)
        );
        if *name == "temperature/Format" {
            format_sections = Some((sections, figures, file, ram, flash));
        }
    }
    if let Some((sections, figures, file, ram, flash)) = format_sections {
        let stat = |key: &str| figures.get(key).copied().unwrap_or(0);
        println!(
            "  formatter: heap after load {}, after instantiate {}, after start {}, after the inputs {} (lazily translated code)",
            kib(stat("loaded")),
            kib(stat("instantiated")),
            kib(stat("started")),
            kib(stat("end"))
        );
        println!(
            "  formatter: peak RAM {} (target 128 KiB: {:.2}x); flash {} = .text {} + .rodata {} (incl. the {} component) (target 1 MiB: {:.2}x)",
            kib(ram),
            ram as f64 / (128.0 * 1024.0),
            kib(flash),
            kib(sections.get(".text").copied().unwrap_or(0)),
            kib(sections.get(".rodata").copied().unwrap_or(0)),
            kib(file),
            flash as f64 / (1024.0 * 1024.0)
        );
    }
}

/// Messages/s through the formatter on the edge host's MQTT participant (in this process,
/// on its own thread and current-thread runtime, as the binary runs it) over the local
/// Mosquitto: `messages` inputs with at most 500 unanswered (Mosquitto drops a client's
/// queued messages beyond `max_queued_messages`), each acked after its output's PUBACK.
/// Skipped without a broker on 127.0.0.1:1883.
fn mqtt_rate(messages: usize) {
    use wasmflo_host::message::Message;
    const BROKER: &str = "mqtt://127.0.0.1:1883";
    if std::net::TcpStream::connect("127.0.0.1:1883").is_err() {
        println!("MQTT: no broker on 127.0.0.1:1883; skipped");
        return;
    }
    let role = format!("benchedge{}", std::process::id());
    let path = common::component("temperature/Format");
    let options = wasmflo_edge::mqtt::Options {
        role: role.clone(),
        component: std::fs::read(&path).expect("read"),
        source: path.display().to_string(),
        broker: format!("{BROKER}?clean=true"),
        ca_file: None,
        limits: wasmflo_edge::Limits::default(),
        trust: Vec::new(),
        sequence: 0,
        state: None,
        max_deploy: 1 << 20,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t = wasmflo_host::transport::connect(
            &format!("{BROKER}?clean=true"),
            &format!("wasmflo-bench-{role}"),
        )
        .await
        .expect("connect");
        t.declare_queue("fbp").await.expect("declare");
        let mut fbp = t.subscribe("fbp").await.expect("subscribe");
        let out_queue = format!("{role}.OUT");
        t.declare_queue(&out_queue).await.expect("declare");
        let mut out = t.subscribe(&out_queue).await.expect("subscribe");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let edge = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(wasmflo_edge::mqtt::run(options, async {
                let _ = stopped.await;
            }))
        });
        // Announced once every inport is subscribed.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let d = tokio::time::timeout_at(deadline, fbp.next())
                .await
                .expect("the edge host announces itself")
                .expect("subscription open");
            let announced = String::from_utf8_lossy(&d.message.data).contains(&role);
            d.ack();
            if announced {
                break;
            }
        }
        let input = t.publisher(&format!("{role}.IN")).await.expect("publisher");
        let began = Instant::now();
        let mut answered = 0;
        for i in 0..messages {
            input
                .publish(Message::json_text(format!("{i}.25")))
                .await
                .expect("send");
            if i + 1 - answered >= 500 {
                answer(&mut out).await;
                answered += 1;
            }
        }
        while answered < messages {
            answer(&mut out).await;
            answered += 1;
        }
        let rate = messages as f64 / began.elapsed().as_secs_f64();
        let _ = stop.send(());
        edge.join().expect("edge thread").expect("edge host ran");
        println!(
            "MQTT participant, temperature/Format over the local Mosquitto, {messages} messages, at most 500 unanswered:"
        );
        println!("  edge host (wasmi)     {rate:>10.0} msg/s");
    });
}

/// Takes one answer (acked), failing after a minute without one.
async fn answer(out: &mut wasmflo_host::transport::Subscription) {
    let d = tokio::time::timeout(std::time::Duration::from_secs(60), out.next())
        .await
        .expect("an answer")
        .expect("subscription open");
    d.ack();
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some_and(|v| v == "1");
    // cargo bench passes `--bench`; another argument picks the sections whose name
    // contains it (throughput, mqtt, load, heap, device).
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let run = |section: &str| section.contains(filter.as_str());
    let messages = if quick { 2_000 } else { 50_000 };
    if run("throughput") {
        throughput(messages);
    }
    if run("mqtt") {
        mqtt_rate(if quick { 1_000 } else { 5_000 });
    }
    if run("load") {
        load_times(if quick { 10 } else { 50 });
    }
    if run("heap") {
        peak_heap();
    }
    if run("device") {
        device_figures(quick);
    }
}
