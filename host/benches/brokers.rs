//! Broker benchmark: a WASM `core/Repeat` participant through each broker, beside the
//! raw ceiling of the same two-hop path measured in the same run: `ROLE.IN` -> a plain
//! rumqttc / lapin forwarder -> `ROLE.OUT`, with the same QoS 1 / prefetch, publisher
//! confirms and ack-after-publish, pipelined as far as those allow.
//!
//! Throughput: N messages published into `ROLE.IN` (at most 200 in flight) until all N are read
//! from `ROLE.OUT`. Latency: one message in flight, send to receipt. Brokers are the
//! machine's RabbitMQ (127.0.0.1:5672) and Mosquitto (127.0.0.1:1883); one that is down
//! is reported and skipped.
//!
//! `cargo bench -p wasmflo-host --bench brokers`; `WASMFLO_BENCH_QUICK=1` for a short run.

// A benchmark binary: failing loudly on a broken set-up is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use wasmflo_host::component::{Loader, Resolver, components_dir};
use wasmflo_host::discovery::random_suffix;
use wasmflo_host::graph::{Graph, Process};
use wasmflo_host::message::Message;
use wasmflo_host::network::{Network, Source};
use wasmflo_host::runtime::{Runtime, RuntimeConfig};
use wasmflo_host::transport::{Subscription, Transport, connect};

const MQTT: &str = "mqtt://127.0.0.1:1883?clean=true";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const PREFETCH: u16 = 64;
const IN_FLIGHT: usize = 200;

#[derive(Debug, Clone, Copy)]
struct Figures {
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

fn payload(i: usize) -> Message {
    // 100 bytes of JSON.
    let text = format!(r#"{{"seq":{i:>10},"pad":"{}"}}"#, "x".repeat(72));
    Message::json_text(text)
}

async fn client(url: &str) -> Arc<dyn Transport> {
    connect(url, &format!("wasmflo-bench-{}", random_suffix()))
        .await
        .expect("broker client")
}

/// Drives `role`: throughput of `n` messages, then latency over `pings` round trips.
async fn measure(url: &str, role: &str, out: &mut Subscription, n: usize, pings: usize) -> Figures {
    let producer = client(url).await;
    let queue = format!("{role}.IN");
    // A closed loop: at most IN_FLIGHT messages between producer and reader, so no
    // broker queue grows without bound (Mosquitto drops beyond `max_queued_messages`).
    let window = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let send = {
        let producer = producer.clone();
        let queue = queue.clone();
        let window = window.clone();
        tokio::spawn(async move {
            futures_util::stream::iter(0..n)
                .for_each_concurrent(IN_FLIGHT, |i| {
                    let p = producer.clone();
                    let q = queue.clone();
                    let window = window.clone();
                    async move {
                        window.acquire().await.expect("open").forget();
                        p.send_to_queue(&q, payload(i)).await.expect("send")
                    }
                })
                .await;
        })
    };
    for i in 0..n {
        let d = tokio::time::timeout(Duration::from_secs(60), out.next())
            .await
            .unwrap_or_else(|_| panic!("output {i} of {n} within 60 s"))
            .expect("open");
        d.ack();
        window.add_permits(1);
    }
    let throughput = n as f64 / start.elapsed().as_secs_f64();
    send.await.expect("producer");

    let mut lat = Vec::with_capacity(pings);
    for i in 0..pings {
        let t = Instant::now();
        producer
            .send_to_queue(&queue, payload(i))
            .await
            .expect("send");
        let d = out.next().await.expect("open");
        d.ack();
        lat.push(t.elapsed());
    }
    lat.sort();
    Figures {
        throughput,
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

/// Declares `role`'s queues as a participant would and opens a reader of `ROLE.OUT`.
async fn prepare(url: &str, role: &str) -> (Arc<dyn Transport>, Subscription) {
    let t = client(url).await;
    // On MQTT a declared queue is a subscription of this client, which must then consume
    // it; the forwarder subscribes for itself there.
    if url.starts_with("amqp") {
        t.declare_queue(&format!("{role}.IN"))
            .await
            .expect("declare");
    }
    t.declare_topic(&format!("{role}.OUT"))
        .await
        .expect("declare");
    // The msgflo-nodejs way to read an outport: a queue named after its exchange.
    let out = format!("{role}.OUT");
    t.declare_queue(&out).await.expect("declare reader");
    let sub = t.subscribe(&out).await.expect("reader");
    (t, sub)
}

async fn wasm(url: &str, loader: &Loader, n: usize, pings: usize) -> Figures {
    let role = format!("benchw{}", random_suffix());
    let (_t, mut out) = prepare(url, &role).await;
    let mut graph = Graph::default();
    graph.processes.insert(
        role.clone(),
        Process {
            component: "core/Repeat".into(),
            ..Process::default()
        },
    );
    let transport = client(url).await;
    let resolver = Resolver::new(components_dir(), ".");
    let network = Network::start(&graph, &Source::default(), loader, &resolver, transport)
        .await
        .expect("network");
    let figures = measure(url, &role, &mut out, n, pings).await;
    network.shutdown(Duration::from_secs(1)).await;
    figures
}

async fn raw(url: &str, n: usize, pings: usize) -> Figures {
    let role = format!("benchr{}", random_suffix());
    let (_t, mut out) = prepare(url, &role).await;
    let (ready, subscribed) = tokio::sync::oneshot::channel();
    let forwarder = if url.starts_with("amqp") {
        tokio::spawn(raw_amqp(role.clone(), ready))
    } else {
        tokio::spawn(raw_mqtt(role.clone(), ready))
    };
    // MQTT keeps nothing for a topic nobody subscribed: wait for the subscription.
    subscribed.await.expect("forwarder subscribed");
    let figures = measure(url, &role, &mut out, n, pings).await;
    forwarder.abort();
    figures
}

/// A plain lapin forwarder: consume with prefetch, publish with confirms, ack each input
/// once its output is confirmed (confirms awaited in order by a second task).
async fn raw_amqp(role: String, ready: tokio::sync::oneshot::Sender<()>) {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let input = conn.create_channel().await.expect("channel");
    input
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .expect("qos");
    let output = conn.create_channel().await.expect("channel");
    output
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let mut consumer = input
        .basic_consume(
            format!("{role}.IN").into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let _ = ready.send(());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Outlives the forwarder, which is aborted after the measurement: once its connection
    // is gone, confirms and acks fail, and the task just ends.
    tokio::spawn(async move {
        while let Some((confirm, acker)) = rx.recv().await {
            let confirm: lapin::PublisherConfirm = confirm;
            let acker: lapin::Acker = acker;
            if confirm.await.is_err() || acker.ack(BasicAckOptions::default()).await.is_err() {
                return;
            }
        }
    });
    let exchange = format!("{role}.OUT");
    while let Some(Ok(d)) = consumer.next().await {
        let confirm = output
            .basic_publish(
                exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &d.data,
                // Persistent, as the transport publishes.
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        let _ = tx.send((confirm, d.acker));
    }
}

/// A plain rumqttc forwarder: QoS 1, manual acks; each input is acked when the PUBACK of
/// its output arrives.
async fn raw_mqtt(role: String, ready: tokio::sync::oneshot::Sender<()>) {
    let mut options = MqttOptions::new(format!("wasmflo-bench-raw-{role}"), "127.0.0.1", 1883);
    options.set_manual_acks(true).set_inflight(200);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    client
        .subscribe(format!("{role}.IN"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let out = format!("{role}.OUT");
    let mut waiting = VecDeque::new(); // inputs whose output is queued, in order
    let mut by_out: HashMap<u16, rumqttc::Publish> = HashMap::new();
    let mut ready = Some(ready);
    loop {
        match eventloop.poll().await.expect("mqtt") {
            Event::Incoming(Packet::SubAck(_)) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Event::Incoming(Packet::Publish(p)) => {
                client
                    .try_publish(out.as_str(), QoS::AtLeastOnce, false, p.payload.clone())
                    .expect("publish");
                waiting.push_back(p);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(p) = waiting.pop_front() {
                    by_out.insert(pkid, p);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(p) = by_out.remove(&ack.pkid) {
                    client.try_ack(&p).expect("ack");
                }
            }
            _ => {}
        }
    }
}

fn up(addr: &str) -> bool {
    addr.parse()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

fn main() {
    let quick = std::env::var_os("WASMFLO_BENCH_QUICK").is_some();
    let (n, pings) = if quick { (3_000, 300) } else { (30_000, 3_000) };
    let runtime = Runtime::new(&RuntimeConfig::default()).expect("engine");
    let loader = Loader::new(runtime, None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    println!("broker benchmark: {n} messages of 100 bytes, latency over {pings} round trips");
    println!(
        "{:<6} {:<22} {:>12} {:>10} {:>10}",
        "broker", "path", "msg/s", "p50", "p99"
    );
    for (name, url, addr) in [
        ("amqp", AMQP, "127.0.0.1:5672"),
        ("mqtt", MQTT, "127.0.0.1:1883"),
    ] {
        let only = std::env::var("WASMFLO_BENCH_BROKERS").unwrap_or_default();
        if !only.is_empty() && !only.split(',').any(|b| b == name) {
            continue;
        }
        if !up(addr) {
            println!("{name:<6} skipped: nothing listens on {addr}");
            continue;
        }
        let raw = rt.block_on(raw(url, n, pings));
        let wasm = rt.block_on(wasm(url, &loader, n, pings));
        for (path, f) in [("raw forwarder", raw), ("wasm core/Repeat", wasm)] {
            println!(
                "{name:<6} {path:<22} {:>12.0} {:>10} {:>10}",
                f.throughput,
                us(f.p50),
                us(f.p99)
            );
        }
        println!(
            "{name:<6} wasm / raw throughput: {:.2} (target >= 0.8)",
            wasm.throughput / raw.throughput
        );
    }
}
