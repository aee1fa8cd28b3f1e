//! Fault injection under load, counting every message (issue 11): a participant that traps
//! on a seeded 1 % of messages (in-process, Mosquitto, RabbitMQ), a private Mosquitto
//! killed with SIGKILL and restarted, and the connection to RabbitMQ cut by a proxy.
//!
//! Every test keeps a [`Ledger`]: what the broker acknowledged to the sender, and how often
//! each message came out. Nothing acknowledged may be missing; duplicates (allowed by
//! at-least-once delivery) are counted and printed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmflo_host::component::components_dir;
use wasmflo_host::graph::{self, Format, ParseOptions};
use wasmflo_host::message::Message;
use wasmflo_host::transport::{DEAD_LETTER_REASON, Subscription, Transport, connect};

use crate::brokers::{
    self, AMQP, PrivateMosquitto, broker, cli, client, consume, participant, role,
};
use crate::support::{self, DEADLINE};

/// How long a whole fault-injection run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// The seed of the traps: `WASMFLO_FAULT_SEED` to replay a run, else random (printed).
fn seed() -> u64 {
    let seed = std::env::var("WASMFLO_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            u64::from(nanos) ^ u64::from(std::process::id())
        });
    eprintln!("fault seed {seed} (replay with WASMFLO_FAULT_SEED={seed})");
    seed
}

/// `test/Unlucky`'s choice, computed the same way (SplitMix64 of `seed ^ seq`).
fn unlucky(seed: u64, seq: u64) -> bool {
    let mut z = (seed ^ seq).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).is_multiple_of(100)
}

fn unlucky_msg(seed: u64, seq: u64) -> Message {
    Message::json_text(json!({"seq": seq, "seed": seed}).to_string())
}

fn seq_of(msg: &Message) -> u64 {
    let v: Value = serde_json::from_slice(&msg.data).expect("JSON");
    v["seq"]
        .as_u64()
        .or_else(|| v.as_u64())
        .unwrap_or_else(|| panic!("no seq in {v}"))
}

/// Counts what went in and what came out.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Sequence numbers the broker acknowledged to the sender.
    pub acked: BTreeSet<u64>,
    /// How often each sequence number came out.
    out: BTreeMap<u64, u32>,
}

impl Ledger {
    fn record(&mut self, seq: u64) {
        *self.out.entry(seq).or_default() += 1;
    }

    fn lost(&self) -> Vec<u64> {
        self.acked
            .iter()
            .filter(|s| !self.out.contains_key(s))
            .copied()
            .collect()
    }

    fn duplicates(&self) -> u32 {
        self.out.values().map(|n| n - 1).sum()
    }

    /// Prints the tally and fails if an acknowledged message is missing.
    pub fn check(&self, what: &str, faults: u32) {
        let lost = self.lost();
        eprintln!(
            "{what}: {faults} fault(s) injected, {} acknowledged, {} delivered, {} lost, {} duplicate(s)",
            self.acked.len(),
            self.out.len(),
            lost.len(),
            self.duplicates()
        );
        assert!(
            lost.is_empty(),
            "{what}: acknowledged messages lost: {lost:?}"
        );
    }
}

/// Sends `n` messages to `queue`, each resent until the broker acknowledges it (a send
/// that fails or hangs while the broker is away is not acknowledged); returns the
/// acknowledged sequence numbers.
pub fn load(
    t: Arc<dyn Transport>,
    queue: String,
    n: u64,
    msg: impl Fn(u64) -> Message + Send + 'static,
) -> JoinHandle<BTreeSet<u64>> {
    tokio::spawn(async move {
        let mut acked = BTreeSet::new();
        for seq in 0..n {
            let deadline = tokio::time::Instant::now() + RUN_DEADLINE;
            loop {
                assert!(tokio::time::Instant::now() < deadline, "send {seq} stuck");
                let sent = tokio::time::timeout(DEADLINE / 4, t.send_to_queue(&queue, msg(seq)));
                if let Ok(Ok(())) = sent.await {
                    acked.insert(seq);
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        acked
    })
}

/// Receives from `out` until the sender is done and every acknowledged message came out;
/// calls `fault` once when `fault_at` messages have come out.
pub async fn drain(
    out: &mut Subscription,
    sender: JoinHandle<BTreeSet<u64>>,
    fault_at: usize,
    mut fault: impl FnMut(),
) -> Ledger {
    let mut ledger = Ledger::default();
    let mut sender = Some(sender);
    let mut faulted = false;
    let deadline = tokio::time::Instant::now() + RUN_DEADLINE;
    loop {
        if sender.is_none() && ledger.lost().is_empty() {
            return ledger;
        }
        tokio::select! {
            d = tokio::time::timeout_at(deadline, out.next()) => {
                let Ok(Some(d)) = d else {
                    ledger.check("timed out", u32::from(faulted));
                    panic!("no message within the run deadline");
                };
                ledger.record(seq_of(&d.message));
                d.ack();
                if !faulted && ledger.out.len() >= fault_at {
                    faulted = true;
                    fault();
                }
            }
            acked = async { sender.as_mut().expect("sender").await }, if sender.is_some() => {
                ledger.acked = acked.expect("sender task");
                sender = None;
            }
        }
    }
}

// --- a participant that traps on 1 % of messages ------------------------------------------

/// `a(core/Repeat) -> u(test/Unlucky) -> b(core/Repeat)` as a JSON graph (component paths,
/// so one file serves in-process and broker runs), with process names `a`, `u`, `b`.
fn unlucky_graph(a: &str, u: &str, b: &str) -> String {
    let repeat = components_dir().join("core/Repeat.wasm");
    json!({
        "processes": {
            a: {"component": repeat},
            u: {"component": wasmflo_tests::guests::UNLUCKY},
            b: {"component": repeat},
        },
        "connections": [
            {"src": {"process": a, "port": "out"}, "tgt": {"process": u, "port": "in"}},
            {"src": {"process": u, "port": "out"}, "tgt": {"process": b, "port": "in"}},
        ],
    })
    .to_string()
}

/// Checks that the lucky messages came out once each and in order, and returns how many
/// were unlucky.
fn check_unlucky(what: &str, seed: u64, n: u64, out: &[u64]) -> Vec<u64> {
    let (trapped, lucky): (Vec<u64>, Vec<u64>) = (0..n).partition(|&s| unlucky(seed, s));
    assert!(!trapped.is_empty(), "seed {seed} makes no trap in {n}");
    assert_eq!(
        out,
        lucky.as_slice(),
        "{what}: every lucky message once, in order"
    );
    eprintln!(
        "{what}: {} traps injected, {} delivered once in order, 0 lost",
        trapped.len(),
        lucky.len()
    );
    trapped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_one_percent_traps_lose_nothing() {
    const N: u64 = 20_000;
    let seed = seed();
    let graph = graph::parse(
        &unlucky_graph("a", "u", "b"),
        Format::Json,
        &ParseOptions::default(),
    )
    .expect("graph");
    let mut net = support::start(&graph, &components_dir())
        .await
        .expect("starts");
    let mut out = net.probe("b.OUT").await;
    let sender = {
        let t = net.transport.clone();
        tokio::spawn(async move {
            for seq in 0..N {
                t.send_to_queue("a.IN", unlucky_msg(seed, seq))
                    .await
                    .expect("send");
            }
        })
    };
    let lucky = (0..N).filter(|&s| !unlucky(seed, s)).count();
    let mut got = Vec::with_capacity(lucky);
    while got.len() < lucky {
        got.push(seq_of(&support::next(&mut out).await));
    }
    sender.await.expect("sender");
    let trapped = check_unlucky("in-process", seed, N, &got);

    // Still running: one more lucky message goes through.
    let last = (N..).find(|&s| !unlucky(seed, s)).expect("a lucky one");
    net.send_msg("a.IN", unlucky_msg(seed, last)).await;
    assert_eq!(seq_of(&support::next(&mut out).await), last);

    let reports = net.stop().await;
    let dead = net.transport.dead_letters();
    let dead_seqs: Vec<u64> = dead.iter().map(|d| seq_of(&d.message)).collect();
    assert_eq!(dead_seqs, trapped, "every trapped message dead-lettered");
    for d in &dead {
        assert!(
            d.reason.starts_with("process 'u' port 'in': trap"),
            "{}",
            d.reason
        );
    }
    let u = reports.iter().find(|r| &*r.process == "u").expect("report");
    let traps = trapped.len() as u64;
    assert_eq!(u.stats.failed, traps);
    // One fresh instance per trap, and one more when the trap ended a run of messages
    // taken in one call (the run is delivered again one by one; see `batch`).
    assert!(
        (traps..=2 * traps).contains(&u.stats.recreated),
        "{traps} traps, {} instances recreated",
        u.stats.recreated
    );
}

/// The same graph under `run --broker`: the lucky messages come out of `b` once each and
/// in order, the trapped ones are in `u`'s dead letters with a reason.
async fn broker_one_percent_traps(url: &str) {
    const N: u64 = 1_500;
    let seed = seed();
    let (a, u, b) = (role("ua"), role("uu"), role("ub"));
    let file = brokers::scratch(&u).join("unlucky.json");
    std::fs::write(&file, unlucky_graph(&a, &u, &b)).expect("write graph");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{b}.OUT")).await;
    let mqtt = url.starts_with("mqtt");
    // Its own connection: the dead letters wait unread until the end, and on a broker that
    // delivers one message at a time per client they would block everything behind them.
    let dead_client = client(url).await;
    // MQTT keeps nothing for a topic nobody subscribed to: subscribe before the run.
    let mut early_dead = if mqtt {
        Some(consume(&dead_client, &format!("dead-{u}.IN")).await)
    } else {
        None
    };
    let mut cmd = cli();
    cmd.arg("run").arg(&file).args(["--broker", url]);
    let mut run = brokers::Running::spawn(cmd);
    run.stderr_line("running").await;
    let mut dead = match early_dead.take() {
        Some(d) => d,
        None => dead_client
            .subscribe(&format!("dead-{u}.IN"))
            .await
            .expect("dlq"),
    };

    let sender = {
        let t = t.clone();
        let queue = format!("{a}.IN");
        tokio::spawn(async move {
            for seq in 0..N {
                t.send_to_queue(&queue, unlucky_msg(seed, seq))
                    .await
                    .expect("send");
            }
        })
    };
    let lucky = (0..N).filter(|&s| !unlucky(seed, s)).count();
    let mut got = Vec::with_capacity(lucky);
    while got.len() < lucky {
        got.push(seq_of(&brokers::next(&mut out).await));
    }
    sender.await.expect("sender");
    let trapped = check_unlucky(url, seed, N, &got);

    let mut dead_seqs = Vec::new();
    while dead_seqs.len() < trapped.len() {
        let msg = brokers::next(&mut dead).await;
        let (payload, reason) = if mqtt {
            let envelope: Value = serde_json::from_slice(&msg.data).expect("JSON");
            (envelope["payload"].clone(), envelope["reason"].clone())
        } else {
            (
                serde_json::from_slice(&msg.data).expect("JSON"),
                json!(msg.meta(DEAD_LETTER_REASON)),
            )
        };
        let reason = reason.as_str().unwrap_or_default().to_string();
        assert!(
            reason.contains(&u) && reason.contains("trap"),
            "the reason names the process and the trap: {reason}"
        );
        dead_seqs.push(payload["seq"].as_u64().expect("seq"));
    }
    dead_seqs.sort_unstable();
    assert_eq!(dead_seqs, trapped, "every trapped message dead-lettered");
    // Still running: one more lucky message goes through.
    let last = (N..).find(|&s| !unlucky(seed, s)).expect("a lucky one");
    t.send_to_queue(&format!("{a}.IN"), unlucky_msg(seed, last))
        .await
        .expect("send");
    assert_eq!(seq_of(&brokers::next(&mut out).await), last);
}

/// On a private Mosquitto configured for order and no drops (see [`PrivateMosquitto`]):
/// with its defaults, Mosquitto may reorder QoS 1 messages once more than one is in flight
/// to a client (26 inversions in 1,500 through a 3-process graph here) and silently drops
/// what exceeds `max_queued_messages` (1,000) for a client that falls behind.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_one_percent_traps_lose_nothing() {
    let port = PrivateMosquitto::free_port();
    let dir = brokers::scratch(&role("mosquitto"));
    let Some(_mosquitto) = PrivateMosquitto::start(port, &dir, false) else {
        return;
    };
    broker_one_percent_traps(&format!("mqtt://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_one_percent_traps_lose_nothing() {
    if let Some(url) = broker(AMQP) {
        broker_one_percent_traps(url).await;
    }
}

// --- a private Mosquitto killed under load --------------------------------------------------

/// A private Mosquitto (persistent sessions saved on every change) is killed with SIGKILL
/// while a participant works through a backlog, and restarted on the same port: the
/// participant and the clients reconnect, and every message the broker acknowledged comes
/// out.
///
/// The backlog is published before the kill: Mosquitto acknowledges a publish before it
/// saves it, so a SIGKILL right after a PUBACK loses that message whatever its clients do
/// (1 of 300 when killed while the test was publishing). Between participant and broker
/// nothing is lost that way: an output is acknowledged before its input is, and a saved
/// state that lacks the output still holds the input, which is delivered again.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_broker_killed_under_load_loses_no_acknowledged_message() {
    // Few: the broker rewrites its whole database on every change.
    const N: u64 = 300;
    let r = role("kill");
    let dir = brokers::scratch(&format!("mosquitto-{r}"));
    let port = PrivateMosquitto::free_port();
    let Some(mosquitto) = PrivateMosquitto::start(port, &dir, true) else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{port}");
    // The receiver's session must outlive the broker's death: persistent, stable id.
    let receiver = connect(&format!("{url}?client_id=wasmflo-test-{r}-out"), "unused")
        .await
        .expect("receiver connects");
    let mut out = consume(&receiver, &format!("{r}.OUT")).await;
    let mut p = participant(&url, &[format!("{r}=core/Repeat")]);
    p.stdout_line(&format!("ready {r}")).await;

    let t = client(&url).await;
    let acked = load(t, format!("{r}.IN"), N, |seq| {
        Message::json_text(seq.to_string())
    })
    .await
    .expect("sender");
    let mut mosquitto = Some(mosquitto);
    let ledger = drain(
        &mut out,
        tokio::spawn(async { acked }),
        N as usize / 3,
        || {
            if let Some(m) = mosquitto.take() {
                drop(m); // SIGKILL
                mosquitto = Some(PrivateMosquitto::start(port, &dir, true).expect("restarted"));
            }
        },
    )
    .await;
    ledger.check("mosquitto SIGKILL", 1);
}

// --- the connection to RabbitMQ cut ---------------------------------------------------------

/// A TCP proxy on port 0 in front of `upstream` that can drop every connection at once
/// (and keeps accepting new ones); stops when dropped.
struct CuttingProxy {
    port: u16,
    cut: watch::Sender<u32>,
    task: JoinHandle<()>,
}

impl CuttingProxy {
    async fn start(upstream: &'static str) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (cut, cuts) = watch::channel(0u32);
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        CuttingProxy { port, cut, task }
    }

    /// Drops every open connection.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// A participant reaches RabbitMQ through a proxy that drops its connection mid-stream:
/// it reconnects, declares again and consumes again, and every acknowledged message comes
/// out (what was in flight is redelivered; duplicates are counted).
#[tokio::test(flavor = "multi_thread")]
async fn amqp_connection_cut_loses_no_acknowledged_message() {
    const N: u64 = 1_000;
    let Some(url) = broker(AMQP) else { return };
    let proxy = CuttingProxy::start("127.0.0.1:5672").await;
    let proxied = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let r = role("cut");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let mut p = participant(&proxied, &[format!("{r}=core/Repeat")]);
    p.stdout_line(&format!("ready {r}")).await;

    let sender = load(t.clone(), format!("{r}.IN"), N, |seq| {
        Message::json_text(seq.to_string())
    });
    let ledger = drain(&mut out, sender, N as usize / 3, || proxy.cut()).await;
    ledger.check("AMQP connection cut", 1);
}

/// A publish to an exchange that does not exist makes RabbitMQ close the publishing
/// channel; the transport opens a new one on the same connection, and later messages
/// reach their queue.
#[tokio::test(flavor = "multi_thread")]
async fn amqp_a_publishing_channel_closed_by_the_broker_is_reopened() {
    let Some(url) = broker(AMQP) else { return };
    let r = role("chan");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let missing = t
        .publisher(&format!("{r}.NO-SUCH-EXCHANGE"))
        .await
        .expect("publisher");
    // Handed to the channel; the broker answers by closing it.
    let _ = missing.publish(Message::json_text("lost")).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        // A send racing the channel's closing fails; one after it is confirmed.
        if t.send_to_queue(&format!("{r}.OUT"), Message::json_text("1"))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no publish went through after the broker closed the channel"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(&support::next(&mut out).await.data[..], b"1");
}
