//! Broker transports against the real RabbitMQ (127.0.0.1:5672) and Mosquitto
//! (127.0.0.1:1883) of this machine: `run --broker`, `participant`, discovery on the
//! wire, dead-lettering and at-least-once delivery across a killed participant.
//!
//! Every test uses roles with a random suffix, so tests and runs never share a queue.
//! A broker that cannot be reached fails the test under `CI=true`, and skips it with a
//! notice elsewhere.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use wasmflo_host::discovery::{Participant, random_suffix};
use wasmflo_host::message::Message;
use wasmflo_host::transport::{DEAD_LETTER_REASON, Subscription, Transport, connect};

use crate::fault_injection;
use crate::support::DEADLINE;

pub const MQTT: &str = "mqtt://127.0.0.1:1883";
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// `url` if its broker accepts connections; otherwise fails (CI) or skips with a notice.
pub fn broker(url: &'static str) -> Option<&'static str> {
    let addr = if url.starts_with("mqtt") {
        "127.0.0.1:1883"
    } else {
        "127.0.0.1:5672"
    };
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the broker at {addr} is required in CI (.ci/run starts it)");
    }
    eprintln!("notice: skipping a broker test: nothing listens on {addr}");
    None
}

/// A unique role name.
pub fn role(prefix: &str) -> String {
    format!("{prefix}{}", random_suffix())
}

/// A client of the test itself (a clean MQTT session that leaves nothing behind).
pub async fn client(url: &str) -> Arc<dyn Transport> {
    let url = if url.starts_with("mqtt") {
        format!("{url}?clean=true")
    } else {
        url.to_string()
    };
    connect(&url, &format!("wasmflo-test-{}", random_suffix()))
        .await
        .expect("test client connects")
}

/// A consumer of `queue` (declared first, so nothing published after this is missed).
pub async fn consume(t: &Arc<dyn Transport>, queue: &str) -> Subscription {
    t.declare_queue(queue).await.expect("declare probe");
    t.subscribe(queue).await.expect("subscribe probe")
}

/// The next message on `sub`, acked; fails after [`DEADLINE`].
pub async fn next(sub: &mut Subscription) -> Message {
    let d = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .unwrap_or_else(|_| panic!("no message on {} within {DEADLINE:?}", sub.queue))
        .expect("subscription open");
    let msg = d.message.clone();
    d.ack();
    msg
}

pub fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmflo-test-cli"));
    c.env(
        "WASMFLO_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmflo-cache"),
    );
    c.env_remove("WASMFLO_COMPONENTS_DIR");
    c.env_remove("MSGFLO_BROKER");
    c.env("MSGFLO_DISCOVERY_PERIOD", "1");
    c
}

/// A child process whose output lines arrive on channels; killed when dropped.
pub struct Running {
    child: Child,
    pub stdout: mpsc::UnboundedReceiver<String>,
    pub stderr: mpsc::UnboundedReceiver<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the CLI");
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::unbounded_channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().expect("stdout")));
        let stderr = lines(Box::new(child.stderr.take().expect("stderr")));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a stdout line equal to `want`.
    pub async fn stdout_line(&mut self, want: &str) {
        let found = wait_line(&mut self.stdout, |l| l == want).await;
        assert!(
            found.is_some(),
            "no '{want}' on stdout; stderr: {}",
            self.drain_stderr()
        );
    }

    /// Waits for a stderr line containing `want`.
    pub async fn stderr_line(&mut self, want: &str) {
        let found = wait_line(&mut self.stderr, |l| l.contains(want)).await;
        assert!(found.is_some(), "no '{want}' on stderr");
    }

    fn drain_stderr(&mut self) -> String {
        let mut all = Vec::new();
        while let Ok(l) = self.stderr.try_recv() {
            all.push(l);
        }
        all.join("\n")
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(status.success());
        self.child.wait().expect("exit status")
    }

    /// Kills the process at once (SIGKILL: nothing is settled on the way out).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn wait_line(
    rx: &mut mpsc::UnboundedReceiver<String>,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) if pred(&line) => return Some(line),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("brokers")
        .join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn participant(url: &str, roles: &[String]) -> Running {
    let mut cmd = cli();
    cmd.arg("participant").args(roles).args(["--broker", url]);
    Running::spawn(cmd)
}

// --- run --broker: the temperature pipeline ------------------------------------------

async fn run_pipeline(url: &str) {
    let (format, rep) = (role("format"), role("rep"));
    let graph = scratch(&format).join("pipeline.fbp");
    std::fs::write(
        &graph,
        format!(
            "'C' -> UNIT {format}(temperature/Format)\n\
             {format} OUT -> IN {rep}(core/Repeat)\n"
        ),
    )
    .expect("write graph");
    let t = client(url).await;
    let mut probe = consume(&t, &format!("{rep}.OUT")).await;

    let mut cmd = cli();
    cmd.arg("run").arg(&graph).args(["--broker", url]);
    let mut run = Running::spawn(cmd);
    run.stderr_line("running").await;

    for reading in ["22.3333", "-5.54"] {
        t.send_to_queue(&format!("{format}.IN"), Message::json_text(reading))
            .await
            .expect("send");
    }
    let first: Value = serde_json::from_slice(&next(&mut probe).await.data).expect("JSON");
    let second: Value = serde_json::from_slice(&next(&mut probe).await.data).expect("JSON");
    assert_eq!(first, json!("Temperature: 22.3 C"));
    assert_eq!(second, json!("Temperature: -5.5 C"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_runs_a_graph_with_broker() {
    if let Some(url) = broker(MQTT) {
        run_pipeline(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_runs_a_graph_with_broker() {
    if let Some(url) = broker(AMQP) {
        run_pipeline(url).await;
    }
}

// --- participant: ready, discovery on the wire, a message through ---------------------

async fn participant_announces(url: &str) {
    let r = role("repeat");
    let t = client(url).await;
    let mut fbp = consume(&t, "fbp").await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;

    let mut p = participant(url, &[format!("{r}=core/Repeat")]);
    p.stdout_line(&format!("ready {r}")).await;

    // Other participants (other tests, stale runs) announce on `fbp` too.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let ours = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no discovery of {r}"
        );
        let msg = next(&mut fbp).await;
        let envelope: Value = serde_json::from_slice(&msg.data).expect("JSON on fbp");
        if envelope["payload"]["role"] == json!(r) {
            break envelope;
        }
    };
    assert_eq!(ours["protocol"], "discovery");
    assert_eq!(ours["command"], "participant");
    let payload = &ours["payload"];
    assert_eq!(payload["component"], "core/Repeat");
    assert!(
        payload["id"]
            .as_str()
            .is_some_and(|id| id.starts_with(&format!("{r}-")))
    );
    assert_eq!(
        payload["inports"],
        json!([{"id": "in", "type": "any", "queue": format!("{r}.IN"), "description": "Any message"}])
    );
    assert_eq!(payload["outports"][0]["queue"], json!(format!("{r}.OUT")));
    let parsed = Participant::parse(&serde_json::to_vec(&ours).expect("JSON")).expect("parses");
    assert_eq!(parsed.role, r);

    t.send_to_queue(&format!("{r}.IN"), Message::json_text(r#"{"hello":[1,2]}"#))
        .await
        .expect("send");
    let echoed: Value = serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
    assert_eq!(echoed, json!({"hello": [1, 2]}));
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_participant_is_ready_and_announced() {
    if let Some(url) = broker(MQTT) {
        participant_announces(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_participant_is_ready_and_announced() {
    if let Some(url) = broker(AMQP) {
        participant_announces(url).await;
    }
}

// --- dead letters ---------------------------------------------------------------------

pub fn hostile() -> String {
    wasmflo_tests::guests::HOSTILE.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_nacked_message_lands_in_dead_letter_queue_with_reason() {
    let Some(url) = broker(AMQP) else { return };
    let r = role("hostile");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let mut p = participant(url, &[format!("{r}={}", hostile())]);
    p.stdout_line(&format!("ready {r}")).await;

    t.send_to_queue(&format!("{r}.IN"), Message::json_text(r#""nack""#))
        .await
        .expect("send");
    t.send_to_queue(&format!("{r}.IN"), Message::json_text("7"))
        .await
        .expect("send");
    // The participant goes on after the nack.
    let echo: Value = serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
    assert_eq!(echo["echo"], json!(7));

    let mut dead = t.subscribe(&format!("dead-{r}.IN")).await.expect("dlq");
    let msg = next(&mut dead).await;
    assert_eq!(&msg.data[..], br#""nack""#);
    let reason = msg.meta(DEAD_LETTER_REASON).expect("reason header");
    assert!(reason.contains("hostile: nack requested"), "{reason}");
    assert!(
        reason.contains(&r),
        "the reason names the process: {reason}"
    );
    assert_eq!(
        msg.meta("x-wasmflo-queue"),
        Some(format!("{r}.IN").as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_nacked_message_is_published_to_dead_topic_with_reason() {
    let Some(url) = broker(MQTT) else { return };
    let r = role("hostile");
    let t = client(url).await;
    let mut dead = consume(&t, &format!("dead-{r}.IN")).await;
    let mut p = participant(url, &[format!("{r}={}", hostile())]);
    p.stdout_line(&format!("ready {r}")).await;
    t.send_to_queue(&format!("{r}.IN"), Message::json_text(r#""nack""#))
        .await
        .expect("send");
    let envelope: Value = serde_json::from_slice(&next(&mut dead).await.data).expect("JSON");
    assert_eq!(envelope["queue"], json!(format!("{r}.IN")));
    assert_eq!(envelope["payload"], json!("nack"));
    assert!(
        envelope["reason"]
            .as_str()
            .is_some_and(|r| r.contains("hostile: nack requested")),
        "{envelope}"
    );
}

// --- at least once --------------------------------------------------------------------

/// A participant killed with SIGKILL under load and restarted: every message the broker
/// acknowledged to the sender comes out (each input is acked only after its output was
/// accepted by the broker, and what was not acked is redelivered: durable queue on AMQP,
/// persistent session on MQTT); duplicates are counted and printed.
async fn at_least_once(url: &str) {
    const N: u64 = 1_000;
    let r = role("alo");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let roles = [format!("{r}=core/Repeat")];

    let mut first = participant(url, &roles);
    first.stdout_line(&format!("ready {r}")).await;
    let sender = fault_injection::load(t.clone(), format!("{r}.IN"), N, |seq| {
        Message::json_text(seq.to_string())
    });
    let mut second = None;
    let ledger = fault_injection::drain(&mut out, sender, N as usize / 3, || {
        first.kill();
        second = Some(participant(url, &roles));
    })
    .await;
    ledger.check(&format!("{url} participant SIGKILL"), 1);
    assert_eq!(ledger.acked.len(), N as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_delivers_at_least_once_across_a_killed_participant() {
    if let Some(url) = broker(MQTT) {
        at_least_once(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_delivers_at_least_once_across_a_killed_participant() {
    if let Some(url) = broker(AMQP) {
        at_least_once(url).await;
    }
}

// --- send and dump --------------------------------------------------------------------

async fn send_and_dump(url: &str) {
    let q = format!("{}.IN", role("dump"));
    let t = client(url).await;
    t.declare_queue(&q).await.expect("declare");
    let mut dump = cli();
    dump.args(["dump", "--queue", &q, "--amount", "2", "--broker", url]);
    let mut dump = Running::spawn(dump);
    // AMQP keeps what is sent to the declared queue until the dump consumes it.
    let file = scratch(&q).join("msg.json");
    std::fs::write(&file, r#"{"from": "file"}"#).expect("write");
    let send = |args: Vec<String>| {
        let mut c = cli();
        c.arg("send")
            .args(["--queue", &q, "--broker", url])
            .args(args);
        let out = c.output().expect("send runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    send(vec!["--json".into(), "[1, \"two\"]".into()]);
    send(vec!["--file".into(), file.display().to_string()]);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut lines = Vec::new();
    while lines.len() < 2 {
        match tokio::time::timeout_at(deadline, dump.stdout.recv()).await {
            Ok(Some(l)) => lines.push(l),
            _ => panic!("dump printed {lines:?}"),
        }
    }
    assert_eq!(lines, [r#"[1,"two"]"#, r#"{"from":"file"}"#]);
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_send_and_dump() {
    if let Some(url) = broker(AMQP) {
        send_and_dump(url).await;
    }
}

// --- setup: bindings from a graph, discovered queues, IIPs ----------------------------

/// `setup --discover` binds a graph of running participants from their discovery
/// messages and delivers the IIP; on MQTT it keeps forwarding (`--forever`).
async fn setup_binds_discovered_participants(url: &str) {
    let (a, b) = (role("sa"), role("sb"));
    let graph = scratch(&a).join("setup.fbp");
    std::fs::write(
        &graph,
        format!("'hello' -> IN {a}(core/Repeat) OUT -> IN {b}(core/Repeat)\n"),
    )
    .expect("write graph");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{b}.OUT")).await;
    let mut p = participant(
        url,
        &[format!("{a}=core/Repeat"), format!("{b}=core/Repeat")],
    );
    p.stdout_line(&format!("ready {a}")).await;
    p.stdout_line(&format!("ready {b}")).await;

    let mut cmd = cli();
    cmd.arg("setup")
        .arg(&graph)
        .args(["--broker", url, "--discover", "--forever"]);
    let mut setup = Running::spawn(cmd);
    setup
        .stdout_line(&format!("PUBSUB: {a}.OUT -> {b}.IN"))
        .await;
    let iip: Value = serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
    assert_eq!(
        iip,
        json!("hello"),
        "an .fbp string IIP is sent as a JSON string"
    );
    t.send_to_queue(&format!("{a}.IN"), Message::json_text("2"))
        .await
        .expect("send");
    assert_eq!(&next(&mut out).await.data[..], b"2");

    // Participants that stop announcing are reported gone (3 periods of 1 s).
    p.kill();
    let gone = wait_line(&mut setup.stdout, |l| l == format!("GONE: {a}")).await;
    assert!(gone.is_some(), "setup reports {a} gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_setup_binds_discovered_participants() {
    if let Some(url) = broker(AMQP) {
        setup_binds_discovered_participants(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_setup_binds_discovered_participants() {
    if let Some(url) = broker(MQTT) {
        setup_binds_discovered_participants(url).await;
    }
}

// --- two hosts sharing a role ---------------------------------------------------------

/// Two `wasmflo participant` processes serving one role on RabbitMQ share its queue:
/// every message is processed once, by one of them, and both take part.
#[tokio::test(flavor = "multi_thread")]
async fn amqp_two_hosts_sharing_a_role_split_the_work() {
    const N: u64 = 200;
    let Some(url) = broker(AMQP) else { return };
    let r = role("shared");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let roles = [format!("{r}={}", hostile())];
    let mut one = participant(url, &roles);
    let mut two = participant(url, &roles);
    one.stdout_line(&format!("ready {r}")).await;
    two.stdout_line(&format!("ready {r}")).await;
    for i in 0..N {
        t.send_to_queue(&format!("{r}.IN"), Message::json_text(i.to_string()))
            .await
            .expect("send");
    }
    // Each instance numbers the messages it saw: two counting sequences, one per host.
    let mut seen = BTreeSet::new();
    let mut counts = Vec::new();
    while seen.len() < N as usize {
        let v: Value = serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
        seen.insert(v["echo"].as_u64().expect("echo"));
        counts.push(v["count"].as_u64().expect("count"));
    }
    let ones = counts.iter().filter(|c| **c == 1).count();
    assert_eq!(ones, 2, "two instances took part: {counts:?}");
    assert!(counts.iter().all(|c| *c < N), "neither took everything");
}

// --- a broker restart -----------------------------------------------------------------

/// A private Mosquitto on a free port, killed (SIGKILL) when dropped, logging to `dir`.
/// When `persistent`, it keeps its sessions in `dir`, saved on every change, so a restart
/// on the same port and folder finds the sessions and the QoS 1 messages it had
/// acknowledged (`user root`: run as root, Mosquitto would otherwise drop to a user that
/// cannot write there). Unlike the
/// defaults, it keeps every queued message (`max_queued_messages 0`: no silent drops for a
/// client that falls behind) and delivers one QoS 1 message at a time per client
/// (`max_inflight_messages 1`, the setting Mosquitto documents as keeping order).
pub struct PrivateMosquitto {
    child: Child,
    port: u16,
}

impl PrivateMosquitto {
    pub fn start(port: u16, dir: &Path, persistent: bool) -> Option<PrivateMosquitto> {
        let conf = dir.join("mosquitto.conf");
        // Saved on every change: slow (the whole database is rewritten each time), but
        // nothing the broker acknowledged is lost to a SIGKILL.
        let persistence = if persistent {
            format!(
                "persistence true\npersistence_location {}/\nautosave_on_changes true\n\
                 autosave_interval 1\n",
                dir.display()
            )
        } else {
            String::new()
        };
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
                 log_dest file {}/mosquitto.log\n{persistence}\
                 max_queued_messages 0\nmax_inflight_messages 1\n",
                dir.display()
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("mosquitto is required in CI: {e}")
            }
            Err(e) => {
                eprintln!("notice: skipping a private-broker test: {e}");
                return None;
            }
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = std::time::Instant::now() + DEADLINE;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(std::time::Instant::now() < deadline, "private mosquitto up");
            std::thread::yield_now();
        }
        Some(PrivateMosquitto { child, port })
    }

    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    }
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A participant and a client both reconnect (and subscribe again) after the broker
/// restarts, without any process being restarted.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_participant_survives_a_broker_restart() {
    let port = PrivateMosquitto::free_port();
    let dir = scratch(&role("mosquitto"));
    let Some(broker) = PrivateMosquitto::start(port, &dir, true) else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let r = role("restart");
    let t = client(&url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let mut p = participant(&url, &[format!("{r}=core/Repeat")]);
    p.stdout_line(&format!("ready {r}")).await;
    t.send_to_queue(&format!("{r}.IN"), Message::json_text("1"))
        .await
        .expect("send");
    assert_eq!(&next(&mut out).await.data[..], b"1");

    drop(broker);
    let _broker = PrivateMosquitto::start(port, &dir, true).expect("restarted");
    // Sent once both have reconnected and subscribed again: resend until it comes out.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no output after restart"
        );
        let _ = t
            .send_to_queue(&format!("{r}.IN"), Message::json_text("2"))
            .await;
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(500), out.next()).await {
            assert_eq!(&d.message.data[..], b"2");
            d.ack();
            break;
        }
    }
}

/// The same on Mosquitto through shared subscriptions (`shared=GROUP` in the URL; each
/// host with its own client id).
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_two_hosts_sharing_a_role_split_the_work_with_shared_subscriptions() {
    const N: u64 = 200;
    let Some(url) = broker(MQTT) else { return };
    let r = role("mshared");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let roles = [format!("{r}={}", hostile())];
    let host = |n: u32| format!("{url}?shared=wasmflo&client_id=wasmflo-{r}-{n}");
    let mut one = participant(&host(1), &roles);
    let mut two = participant(&host(2), &roles);
    one.stdout_line(&format!("ready {r}")).await;
    two.stdout_line(&format!("ready {r}")).await;
    for i in 0..N {
        t.send_to_queue(&format!("{r}.IN"), Message::json_text(i.to_string()))
            .await
            .expect("send");
    }
    let mut seen = BTreeSet::new();
    let mut counts = Vec::new();
    while seen.len() < N as usize {
        let v: Value = serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
        seen.insert(v["echo"].as_u64().expect("echo"));
        counts.push(v["count"].as_u64().expect("count"));
    }
    assert_eq!(
        counts.len(),
        N as usize,
        "each message processed once: {counts:?}"
    );
    assert_eq!(counts.iter().filter(|c| **c == 1).count(), 2, "{counts:?}");
}

/// `msgflo/RoundRobin` in a graph becomes a roundrobin binding, and its DEADLETTER port
/// receives the target's dead letters (RabbitMQ; bindings made by `setup`, which exits).
#[tokio::test(flavor = "multi_thread")]
async fn amqp_setup_makes_roundrobin_and_deadletter_bindings() {
    let Some(url) = broker(AMQP) else { return };
    let (a, h, d) = (role("rra"), role("rrh"), role("rrd"));
    let graph = scratch(&a).join("rr.fbp");
    std::fs::write(
        &graph,
        format!(
            "{a}(core/Repeat) OUT -> IN rr(msgflo/RoundRobin) OUT -> IN {h}(test/Hostile)\n\
             rr DEADLETTER -> IN {d}(core/Repeat)\n"
        ),
    )
    .expect("write graph");
    let t = client(url).await;
    let mut echoed = consume(&t, &format!("{h}.OUT")).await;
    let mut dead = consume(&t, &format!("{d}.OUT")).await;
    let mut p = participant(
        url,
        &[
            format!("{a}=core/Repeat"),
            format!("{h}={}", hostile()),
            format!("{d}=core/Repeat"),
        ],
    );
    for r in [&a, &h, &d] {
        p.stdout_line(&format!("ready {r}")).await;
    }
    let out = cli()
        .arg("setup")
        .arg(&graph)
        .args(["--broker", url])
        .output()
        .expect("setup runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("ROUNDROBIN: {a}.OUT -> {h}.IN")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("DEADLETTER: dead-{h}.IN -> {d}.IN")),
        "{stdout}"
    );

    t.send_to_queue(&format!("{a}.IN"), Message::json_text("5"))
        .await
        .expect("send");
    let v: Value = serde_json::from_slice(&next(&mut echoed).await.data).expect("JSON");
    assert_eq!(v["echo"], json!(5));
    t.send_to_queue(&format!("{a}.IN"), Message::json_text(r#""nack""#))
        .await
        .expect("send");
    assert_eq!(&next(&mut dead).await.data[..], br#""nack""#);
}

// --- participant --watch: a live swap on a broker ----------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_participant_swaps_a_rewritten_component_live() {
    let Some(url) = broker(MQTT) else {
        return;
    };
    let r = role("live");
    let dir = scratch(&r);
    let file = dir.join("Repeat.wasm");
    let original =
        std::fs::read(wasmflo_host::component::components_dir().join("core/Repeat.wasm"))
            .expect("read");
    std::fs::write(&file, &original).expect("write");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;

    let mut cmd = cli();
    cmd.arg("participant")
        .arg(format!("{r}={}", file.display()))
        .args(["--broker", url, "--watch"]);
    let mut p = Running::spawn(cmd);
    p.stdout_line(&format!("ready {r}")).await;
    p.stderr_line("watching").await;

    let next_version = crate::live::with_custom_section(&original, "broker-watch-test", b"v2");
    let tmp = dir.join("Repeat.tmp");
    std::fs::write(&tmp, &next_version).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    let version = wasmflo_host::component::hash_bytes(&next_version);
    p.stderr_line(&format!("now running version {}", &version[..12]))
        .await;

    // The new code serves the role's queue on the broker.
    t.send_to_queue(&format!("{r}.IN"), Message::json_text("42"))
        .await
        .expect("send");
    let echoed: Value = serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
    assert_eq!(echoed, json!(42));
}
