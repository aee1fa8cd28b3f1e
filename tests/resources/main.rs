//! Resources return to their baseline after a run: file descriptors and tokio tasks.
//!
//! Its own test binary with one test, so no other test opens files or spawns tasks in
//! the same process while it counts.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmflo_host::component::{Loader, Resolver, components_dir};
use wasmflo_host::graph::{self, Format, ParseOptions};
use wasmflo_host::network::{Network, Source};
use wasmflo_host::protocol::{FbpRuntime, RuntimeInfo, ServerOptions, serve, spawn_runtime};
use wasmflo_host::runtime::{Runtime, RuntimeConfig};
use wasmflo_host::transport::{Binding, BindingKind, MemoryTransport, Transport};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Polls `f` until it returns true or 10 s pass.
async fn settles(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

#[test]
fn fds_and_tasks_return_to_baseline_after_runs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runtime = Runtime::new(&RuntimeConfig {
            max_instances: 50,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let loader = Arc::new(Loader::new(runtime, None));
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/temperature.fbp"),
        )
        .unwrap()
        .replace("'1000' -> INTERVAL", "'5' -> INTERVAL");
        let graph = graph::parse(&src, Format::Fbp, &ParseOptions::default()).unwrap();
        let resolver = Resolver::new(components_dir(), ".");
        let metrics = tokio::runtime::Handle::current().metrics();

        // One warm-up run compiles and caches; the baseline is taken after it.
        let mut baseline = None;
        for round in 0..4 {
            let transport = Arc::new(MemoryTransport::new());
            let network = Network::start(
                &graph,
                &Source::default(),
                &loader,
                &resolver,
                transport.clone(),
            )
            .await
            .unwrap();
            transport.declare_queue("probe").await.unwrap();
            transport
                .bind(&Binding {
                    src: "format.OUT".into(),
                    tgt: "probe".into(),
                    kind: BindingKind::PubSub,
                })
                .await
                .unwrap();
            let mut probe = transport.subscribe("probe").await.unwrap();
            for _ in 0..5 {
                probe.next().await.unwrap().ack();
            }
            drop(probe);
            network.shutdown(Duration::from_secs(5)).await;

            // And a protocol server with two clients.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = format!("ws://{}", listener.local_addr().unwrap());
            let (events, _) = tokio::sync::broadcast::channel(64);
            let fbp = FbpRuntime::new(
                RuntimeInfo {
                    id: "00000000-0000-4000-8000-000000000000".into(),
                    label: "t".into(),
                },
                loader.clone(),
                resolver.clone(),
                Arc::new(MemoryTransport::new()),
                events.clone(),
            );
            let (handle, owner) = spawn_runtime(fbp, events);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, handle, ServerOptions::default(), async {
                let _ = stopped.await;
            }));
            for _ in 0..2 {
                let (ws, _) = tokio_tungstenite::connect_async(&addr).await.unwrap();
                drop(ws);
            }
            let _ = stop.send(());
            server.await.unwrap();
            owner.await.unwrap();

            let now = (open_fds(), metrics.num_alive_tasks());
            match baseline {
                None if round == 0 => {}
                None => baseline = Some(now),
                Some((fds, tasks)) => {
                    let back =
                        settles(|| open_fds() <= fds && metrics.num_alive_tasks() <= tasks).await;
                    assert!(
                        back,
                        "round {round}: fds {} (baseline {fds}), tasks {} (baseline {tasks})",
                        open_fds(),
                        metrics.num_alive_tasks()
                    );
                }
            }
        }
    });
}
