//! Soak benchmark: 1,000,000 messages (100,000 with `WASMFLO_BENCH_QUICK=1`) through an
//! in-process pipeline `a -> b -> c` of `core/Repeat`, with its code swapped live between
//! two versions every 200 ms (20 ms in quick mode): a million messages take seconds here,
//! so a swap every few seconds would make only one or two.
//!
//! The first 10 % of the messages are the warm-up, run without swaps: their throughput is
//! the baseline. Printed: throughput with swaps and its ratio to the baseline, swaps done,
//! messages lost (must be 0), and resident memory at the start, after warm-up and at the
//! end, with whether the end is within 10 % of after warm-up.
//!
//! The two versions alternate (the same code, told apart by a custom section): the loader
//! keeps every distinct version it compiled, so a fresh version per swap would measure
//! that cache, not the swap.
//!
//! `cargo bench -p wasmflo-host --bench soak`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use wasmflo_host::component::{Loader, Resolver, components_dir};
use wasmflo_host::graph::{self, Format, ParseOptions};
use wasmflo_host::message::Message;
use wasmflo_host::network::{Network, Source};
use wasmflo_host::runtime::{Runtime, RuntimeConfig};
use wasmflo_host::transport::{Binding, BindingKind, MemoryTransport, Transport};

/// Messages in flight at most (the producer waits for the consumer beyond this).
const WINDOW: u64 = 2_000;

/// Resident set size in KiB (`VmRSS` of `/proc/self/status`; 0 where there is none).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// `bytes` with a custom section appended: the same code under another hash.
fn with_custom_section(bytes: &[u8], payload: &[u8]) -> Vec<u8> {
    let name = b"wasmflo-soak-version";
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

/// Sends `count` messages starting at `from`, at most [`WINDOW`] ahead of `received`;
/// returns once all of them came out.
async fn produce(
    transport: &MemoryTransport,
    from: u64,
    count: u64,
    received: &mut watch::Receiver<u64>,
) -> Duration {
    let start = Instant::now();
    for i in from..from + count {
        if i >= *received.borrow() + WINDOW {
            received.wait_for(|&r| i < r + WINDOW).await.unwrap();
        }
        transport
            .send_to_queue("a.IN", Message::json_text(i.to_string()))
            .await
            .unwrap();
    }
    received.wait_for(|&r| r >= from + count).await.unwrap();
    start.elapsed()
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some();
    let (total, every) = if quick {
        (100_000u64, Duration::from_millis(20))
    } else {
        (1_000_000u64, Duration::from_millis(200))
    };
    let warmup = total / 10;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rss_start = rss_kib();
    rt.block_on(async {
        let runtime = Runtime::new(&RuntimeConfig {
            max_instances: 20,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let loader = Arc::new(Loader::new(runtime, None));
        let path = components_dir().join("core/Repeat.wasm");
        let original = std::fs::read(&path).unwrap();
        let versions = [
            loader.load_bytes(&path, &original).unwrap(),
            loader
                .load_bytes(&path, &with_custom_section(&original, b"v2"))
                .unwrap(),
        ];

        let src = "a(core/Repeat) OUT -> IN b(core/Repeat) OUT -> IN c(core/Repeat)";
        let graph = graph::parse(src, Format::Fbp, &ParseOptions::default()).unwrap();
        let transport = Arc::new(MemoryTransport::new());
        let resolver = Resolver::new(components_dir(), ".");
        let network = Network::start(
            &graph,
            &Source::default(),
            &loader,
            &resolver,
            transport.clone(),
        )
        .await
        .unwrap();
        transport.declare_queue("sink").await.unwrap();
        transport
            .bind(&Binding {
                src: "c.OUT".into(),
                tgt: "sink".into(),
                kind: BindingKind::PubSub,
            })
            .await
            .unwrap();
        let mut sink = transport.subscribe("sink").await.unwrap();
        let (received_tx, mut received) = watch::channel(0u64);
        let out_of_order = Arc::new(AtomicU64::new(0));
        let consumer = {
            let out_of_order = out_of_order.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(d) = sink.next().await {
                    let seq: u64 = serde_json::from_slice(&d.message.data).unwrap();
                    d.ack();
                    if seq != n {
                        out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                    received_tx.send_replace(n);
                }
            })
        };

        let base = produce(&transport, 0, warmup, &mut received).await;
        let rss_warm = rss_kib();

        // Swaps every `every` while the rest flows.
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (network_swapper, stop) = (network.swapper().clone(), stop.clone());
            let mut events = network.swapper().events();
            tokio::spawn(async move {
                let mut swaps = 0u64;
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        return swaps;
                    }
                    let next = &versions[(swaps as usize + 1) % 2];
                    let offered = network_swapper.offer(&path, next);
                    assert_eq!(offered.processes.len(), 3, "all three run core/Repeat");
                    for _ in 0..3 {
                        let e = events.recv().await.unwrap();
                        assert!(e.outcome.is_ok(), "swap failed: {:?}", e.outcome);
                    }
                    swaps += 1;
                }
            })
        };
        let soak = produce(&transport, warmup, total - warmup, &mut received).await;
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.await.unwrap();
        let rss_end = rss_kib();
        let reports = network.shutdown(Duration::from_secs(5)).await;
        consumer.abort();

        let lost = total - *received.borrow();
        let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
        let (base_rate, soak_rate) = (rate(warmup, base), rate(total - warmup, soak));
        let swapped: u64 = reports.iter().map(|r| r.stats.swaps).sum();
        let growth = (rss_end as f64 - rss_warm as f64) / rss_warm.max(1) as f64 * 100.0;
        println!("soak: {total} messages through a -> b -> c (core/Repeat), in-process");
        println!(
            "  baseline (warm-up, {warmup} msgs, no swaps): {base_rate:>10.0} msg/s ({:.2} s)",
            base.as_secs_f64()
        );
        println!(
            "  with live swaps ({} msgs):             {soak_rate:>10.0} msg/s ({:.2} s), ratio {:.2}",
            total - warmup,
            soak.as_secs_f64(),
            soak_rate / base_rate
        );
        println!(
            "  swaps: {swaps} rounds every {every:?} ({swapped} process swaps reported); lost {lost}; out of order {}",
            out_of_order.load(Ordering::Relaxed)
        );
        println!(
            "  RSS: start {} MiB, after warm-up {} MiB, end {} MiB ({growth:+.1} %): {}",
            rss_start / 1024,
            rss_warm / 1024,
            rss_end / 1024,
            if growth.abs() <= 10.0 {
                "within 10 % of after warm-up"
            } else {
                "NOT within 10 % of after warm-up"
            }
        );
        assert_eq!(lost, 0, "messages lost");
    });
}
