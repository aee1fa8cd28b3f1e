//! Workflow benchmark: a group of 10,000 small tasks (`add(i, i)`) run by the dispatcher
//! over the WASM `task/Add` role, in-process and over each broker (MQTT: Mosquitto,
//! AMQP: RabbitMQ, the machine's), beside the raw transport ceiling measured in the same
//! run: the same messages round-tripped through the same transport (and broker) to a
//! native echo (a loop answering each call on the transport, no participant, no guest,
//! no dispatcher), with the same number of calls in flight.
//!
//! Figures: tasks/s (the whole group, first send to last result) and the completion
//! time of each task (from the group's start to its result), p50 and p99.
//!
//! On a broker the `add` role is one participant of this process on its own connection
//! (the `wasmflo participant` code path) and the dispatcher another connection; the
//! completion times come from a third connection reading `ROLE.OUT`. A broker that is
//! down is reported and skipped; `WASMFLO_BENCH_BROKERS=mqtt` (or `amqp`, `none`)
//! picks which run.
//!
//! `cargo bench -p wasmflo-host --bench workflow`; `WASMFLO_BENCH_QUICK=1` for a short run
//! (2,000 tasks per broker run).

// A benchmark binary: failing loudly on a broken set-up is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmflo_host::component::{Loader, Resolver, components_dir};
use wasmflo_host::discovery::random_suffix;
use wasmflo_host::graph::{Graph, Process};
use wasmflo_host::message::Message;
use wasmflo_host::network::{Network, Source};
use wasmflo_host::runtime::{Runtime, RuntimeConfig};
use wasmflo_host::transport::{
    Binding, BindingKind, MemoryTransport, Subscription, Transport, connect,
};
use wasmflo_host::workflow::dispatch::{CORRELATION_ID, answer};
use wasmflo_host::workflow::{DispatchOptions, Dispatcher, LocalWorkflows, Signature};

const TASKS: usize = 10_000;
const MQTT: &str = "mqtt://127.0.0.1:1883?clean=true";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

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

fn group(tasks: usize) -> Signature {
    Signature::Group(
        (0..tasks)
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

async fn client(url: &str) -> Arc<dyn Transport> {
    connect(url, &format!("wasmflo-bench-{}", random_suffix()))
        .await
        .expect("broker client")
}

/// A reader of every message published to `topic` from now on, on its own connection:
/// on MQTT a subscription to the topic, on AMQP a private queue bound to its exchange.
async fn reader(url: &str, topic: &str) -> (Arc<dyn Transport>, Subscription) {
    let t = client(url).await;
    let queue = if url.starts_with("mqtt") {
        t.declare_queue(topic).await.expect("subscribe reader");
        topic.to_string()
    } else {
        let queue = format!("{topic}.reader");
        t.declare_private_queue(&queue)
            .await
            .expect("declare reader");
        t.bind(&Binding {
            src: topic.to_string(),
            tgt: queue.clone(),
            kind: BindingKind::PubSub,
        })
        .await
        .expect("bind reader");
        queue
    };
    let sub = t.subscribe(&queue).await.expect("reader");
    (t, sub)
}

/// The dispatcher over a WASM `task/Add` participant on the broker at `url`.
async fn broker_workflow(url: &str, loader: &Loader, tasks: usize) -> Figures {
    let prefix = format!("benchwf{}-", random_suffix());
    let role = format!("{prefix}add");
    let mut graph = Graph::default();
    graph.processes.insert(
        role.clone(),
        Process {
            component: "task/Add".into(),
            ..Process::default()
        },
    );
    let resolver = Resolver::new(components_dir(), ".");
    let worker = Network::start(
        &graph,
        &Source::default(),
        loader,
        &resolver,
        client(url).await,
    )
    .await
    .expect("the add role starts");
    let (_r, mut tap) = reader(url, &format!("{role}.OUT")).await;
    let options = DispatchOptions {
        role_prefix: prefix,
        ..DispatchOptions::default()
    };
    let dispatcher = Dispatcher::new(client(url).await, options);
    let sig = group(tasks);
    let start = Instant::now();
    let collector = tokio::spawn(async move {
        let mut done = Vec::with_capacity(tasks);
        while done.len() < tasks {
            let d = tap.next().await.expect("tap open");
            done.push(start.elapsed());
            d.ack();
        }
        done
    });
    let result = dispatcher.run(&sig).await.expect("the group runs");
    let elapsed = start.elapsed();
    assert_eq!(result[tasks - 1], json!(2 * (tasks - 1)));
    let done = tokio::time::timeout(Duration::from_secs(60), collector)
        .await
        .expect("every result tapped")
        .expect("collector");
    worker.shutdown(Duration::from_secs(1)).await;
    figures(elapsed, done)
}

/// The broker ceiling: the same calls to a native echo on its own connection, the
/// answers read from its `OUT` topic, as many in flight as the dispatcher allows.
async fn broker_ceiling(url: &str, tasks: usize) -> Figures {
    let role = format!("benchce{}", random_suffix());
    let (input, output) = (format!("{role}.IN"), format!("{role}.OUT"));
    let echo_side = client(url).await;
    echo_side
        .declare_queue(&input)
        .await
        .expect("declare echo.IN");
    echo_side
        .declare_topic(&output)
        .await
        .expect("declare echo.OUT");
    let mut calls = echo_side.subscribe(&input).await.expect("echo consumer");
    let out = echo_side.publisher(&output).await.expect("echo publisher");
    let echo = tokio::spawn(async move {
        for _ in 0..tasks {
            let d = calls.next().await.expect("open");
            let v: Value = serde_json::from_slice(&d.message.data).unwrap();
            let sum = v["args"][0].as_i64().unwrap() + v["args"][1].as_i64().unwrap();
            let id = v["id"].clone();
            let mut reply =
                Message::json(&json!({"task_id": id, "status": "SUCCESS", "result": sum}));
            reply.inherit_metadata(&d.message.metadata);
            out.publish(reply).await.unwrap();
            d.ack();
        }
        echo_side
    });
    let (_r, mut replies) = reader(url, &output).await;
    let sender_side = client(url).await;
    let window = Arc::new(tokio::sync::Semaphore::new(
        DispatchOptions::default().max_in_flight,
    ));
    let start = Instant::now();
    let sender = {
        let (window, input) = (window.clone(), input.clone());
        tokio::spawn(async move {
            let sends = (0..tasks).map(|i| {
                let (t, window, input) = (sender_side.clone(), window.clone(), input.clone());
                async move {
                    window.acquire().await.expect("open").forget();
                    let id = format!("bench.{i}");
                    let mut msg = Message::json(&json!({"args": [i, i], "kwargs": {}, "id": id}));
                    msg.set_meta(CORRELATION_ID, id);
                    t.send_to_queue(&input, msg).await.unwrap();
                }
            });
            futures_util::future::join_all(sends).await;
        })
    };
    let mut results = vec![Value::Null; tasks];
    let mut done = Vec::with_capacity(tasks);
    while done.len() < tasks {
        let d = tokio::time::timeout(Duration::from_secs(60), replies.next())
            .await
            .expect("an answer within 60 s")
            .expect("open");
        let (id, outcome) = answer(&d.message).expect("an answer");
        let i: usize = id.trim_start_matches("bench.").parse().unwrap();
        if results[i].is_null() {
            results[i] = outcome.unwrap();
            done.push(start.elapsed());
            window.add_permits(1);
        }
        d.ack();
    }
    let elapsed = start.elapsed();
    sender.await.unwrap();
    drop(echo.await.unwrap());
    assert_eq!(results[tasks - 1], json!(2 * (tasks - 1)));
    figures(elapsed, done)
}

fn up(addr: &str) -> bool {
    addr.parse()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// The broker figures, after the in-process ones.
fn brokers(rt: &tokio::runtime::Runtime, loader: &Loader, quick: bool) {
    let (tasks, runs) = if quick { (2_000, 1) } else { (TASKS, 3) };
    let only = std::env::var("WASMFLO_BENCH_BROKERS").unwrap_or_default();
    for (name, url, addr) in [
        ("mqtt", MQTT, "127.0.0.1:1883"),
        ("amqp", AMQP, "127.0.0.1:5672"),
    ] {
        if !only.is_empty() && !only.split(',').any(|b| b == name) {
            continue;
        }
        if !up(addr) {
            println!("{name}: skipped, nothing listens on {addr}");
            continue;
        }
        let (mut wf, mut ce) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            wf.push(rt.block_on(broker_workflow(url, loader, tasks)));
            ce.push(rt.block_on(broker_ceiling(url, tasks)));
        }
        let (wf, ce) = (median(wf), median(ce));
        println!(
            "{name}: group of {tasks} add(i, i), median of {runs} runs, at most {} calls in flight",
            DispatchOptions::default().max_in_flight
        );
        println!("| figure | dispatcher over WASM task/Add | transport ceiling (native echo) |");
        println!("| --- | ---: | ---: |");
        println!("| tasks/s | {:.0} | {:.0} |", wf.rate, ce.rate);
        println!("| completion time p50 | {} | {} |", ms(wf.p50), ms(ce.p50));
        println!("| completion time p99 | {} | {} |", ms(wf.p99), ms(ce.p99));
        println!(
            "{name}: dispatcher / ceiling throughput: {:.2}",
            wf.rate / ce.rate
        );
    }
}

/// The median run by rate.
fn median(mut v: Vec<Figures>) -> Figures {
    v.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    v.swap_remove(v.len() / 2)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some();
    let runs = if quick { 3 } else { 10 };
    let only = std::env::var("WASMFLO_BENCH_BROKERS").unwrap_or_default();
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
    if !only.is_empty() && !only.split(',').any(|b| b == "memory") {
        brokers(&rt, &loader, quick);
        return;
    }
    rt.block_on(async {
        let options = DispatchOptions {
            max_in_flight: 0,
            ..DispatchOptions::default()
        };
        let mut w = LocalWorkflows::start(loader.clone(), resolver, options)
            .await
            .expect("workflows");
        let sig = group(TASKS);
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
        let (wf, ce) = (median(wf), median(ce));
        println!("in-process: group of {TASKS} add(i, i), median of {runs} runs");
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
    brokers(&rt, &loader, quick);
}
