//! Workflow benchmark: a group of 10,000 small tasks (`add(i, i)`) run by the in-process
//! dispatcher over the WASM `task/Add` role, beside the raw transport ceiling measured
//! in the same run: the same messages round-tripped through the same transport to a
//! native echo (a loop answering each call on the transport, no participant, no guest,
//! no dispatcher).
//!
//! Figures: tasks/s (the whole group, first send to last result) and the completion
//! time of each task (from the group's start to its result), p50 and p99.
//!
//! `cargo bench -p wasmflo-host --bench workflow`; `WASMFLO_BENCH_QUICK=1` for a short run.

// A benchmark binary: failing loudly on a broken set-up is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmflo_host::component::{Loader, Resolver, components_dir};
use wasmflo_host::message::Message;
use wasmflo_host::runtime::{Runtime, RuntimeConfig};
use wasmflo_host::transport::{Binding, BindingKind, MemoryTransport, Transport};
use wasmflo_host::workflow::dispatch::CORRELATION_ID;
use wasmflo_host::workflow::{DispatchOptions, LocalWorkflows, Signature};

const TASKS: usize = 10_000;

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn figures(elapsed: Duration, mut done: Vec<Duration>) -> Figures {
    done.sort();
    let at = |q: f64| done[((done.len() as f64 * q) as usize).min(done.len() - 1)];
    Figures {
        rate: done.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn group() -> Signature {
    Signature::Group(
        (0..TASKS)
            .map(|i| Signature::task("add", vec![json!(i), json!(i)]))
            .collect(),
    )
}

/// The dispatcher over the WASM `add` role; task completion times from a tap on `add.OUT`.
async fn workflow(w: &mut LocalWorkflows, sig: &Signature) -> Figures {
    let (topic, mut tap) = w
        .network()
        .tap("add", "out", "bench-tap")
        .await
        .expect("tap");
    let start = Instant::now();
    let collector = tokio::spawn(async move {
        let mut done = Vec::with_capacity(TASKS);
        while done.len() < TASKS {
            let d = tap.next().await.expect("tap open");
            done.push(start.elapsed());
            d.ack();
        }
        done
    });
    let result = w.dispatcher().run(sig).await.expect("the group runs");
    let elapsed = start.elapsed();
    assert_eq!(result.as_array().map(Vec::len), Some(TASKS));
    assert_eq!(result[TASKS - 1], json!(2 * (TASKS - 1)));
    let done = collector.await.expect("collector");
    w.network().untap(&topic, "bench-tap").await.expect("untap");
    figures(elapsed, done)
}

/// The ceiling: the same call messages to a native echo over the same transport kind.
async fn ceiling() -> Figures {
    let t = Arc::new(MemoryTransport::new());
    for q in ["echo.IN", "reply.IN"] {
        t.declare_queue(q).await.unwrap();
    }
    t.bind(&Binding {
        src: "echo.OUT".into(),
        tgt: "reply.IN".into(),
        kind: BindingKind::PubSub,
    })
    .await
    .unwrap();
    let mut calls = t.subscribe("echo.IN").await.unwrap();
    let out = t.publisher("echo.OUT").await.unwrap();
    let echo = tokio::spawn(async move {
        for _ in 0..TASKS {
            let d = calls.next().await.expect("open");
            let v: Value = serde_json::from_slice(&d.message.data).unwrap();
            let sum = v["args"][0].as_i64().unwrap() + v["args"][1].as_i64().unwrap();
            let mut reply = Message::json(&json!(sum));
            reply.inherit_metadata(&d.message.metadata);
            out.publish(reply).await.unwrap();
            d.ack();
        }
    });
    let mut replies = t.subscribe("reply.IN").await.unwrap();
    let start = Instant::now();
    let sender = {
        let t = t.clone();
        tokio::spawn(async move {
            for i in 0..TASKS {
                let mut msg = Message::json(&json!({"args": [i, i], "kwargs": {}}));
                msg.set_meta(CORRELATION_ID, format!("bench.{i}"));
                t.send_to_queue("echo.IN", msg).await.unwrap();
            }
        })
    };
    let mut results = vec![Value::Null; TASKS];
    let mut done = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let d = replies.next().await.expect("open");
        done.push(start.elapsed());
        let id = d.message.meta(CORRELATION_ID).unwrap();
        let i: usize = id.trim_start_matches("bench.").parse().unwrap();
        results[i] = d.message.to_json().unwrap();
        d.ack();
    }
    let elapsed = start.elapsed();
    sender.await.unwrap();
    echo.await.unwrap();
    assert_eq!(results[TASKS - 1], json!(2 * (TASKS - 1)));
    figures(elapsed, done)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some();
    let runs = if quick { 3 } else { 10 };
    let loader = Arc::new(Loader::new(
        Runtime::new(&RuntimeConfig::default()).expect("engine"),
        None,
    ));
    let resolver = Resolver::new(components_dir(), ".");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let mut w = LocalWorkflows::start(loader, resolver, DispatchOptions::default())
            .await
            .expect("workflows");
        let sig = group();
        w.ensure_roles(&sig).await.expect("add role starts");
        // Warm-up: compile, first instance, allocations.
        let _ = workflow(&mut w, &sig).await;
        let _ = ceiling().await;
        let (mut wf, mut ce) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            wf.push(workflow(&mut w, &sig).await);
            ce.push(ceiling().await);
        }
        w.shutdown(Duration::from_secs(5)).await;
        // The median run of each by rate.
        let median = |mut v: Vec<Figures>| {
            v.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            v.swap_remove(v.len() / 2)
        };
        let (wf, ce) = (median(wf), median(ce));
        println!("workflow benchmark: group of {TASKS} add(i, i), median of {runs} runs");
        println!("| figure | dispatcher over WASM task/Add | transport ceiling (native echo) |");
        println!("| --- | ---: | ---: |");
        println!("| tasks/s | {:.0} | {:.0} |", wf.rate, ce.rate);
        println!("| completion time p50 | {} | {} |", ms(wf.p50), ms(ce.p50));
        println!("| completion time p99 | {} | {} |", ms(wf.p99), ms(ce.p99));
        println!(
            "dispatcher / ceiling throughput: {:.2} ({:.1}x slower)",
            wf.rate / ce.rate,
            ce.rate / wf.rate
        );
    });
}
