//! A private RabbitMQ node (its own node name, ports and data folder, started and stopped
//! by the test) restarted under a running `wasmflo participant`: no message the broker
//! acknowledged is lost, and the participant carries on after the restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasmflo_host::message::Message;
use wasmflo_host::transport::Subscription;

use crate::brokers::{client, consume, participant, role, scratch};
use crate::fault_injection::{drain, load};
use crate::support::DEADLINE;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// A RabbitMQ node of the test's own; stopped when dropped.
struct PrivateRabbit {
    dir: PathBuf,
    node: String,
    port: u16,
    dist_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PrivateRabbit {
    /// A node on free ports with its data under a scratch folder; `None` (a notice) if
    /// RabbitMQ is not installed here, outside CI.
    fn new(name: &str) -> Option<PrivateRabbit> {
        if !Path::new(SERVER).exists() {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "rabbitmq-server is required in CI"
            );
            eprintln!("notice: skipping the RabbitMQ restart test: no {SERVER}");
            return None;
        }
        let dir = scratch(name);
        let port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .expect("conf");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins");
        std::fs::write(dir.join("env.conf"), "").expect("env");
        Some(PrivateRabbit {
            node: format!("wasmflo{port}@localhost"),
            dir,
            port,
            dist_port: free_port(),
        })
    }

    fn env(&self, cmd: &mut Command) {
        let d = &self.dir;
        cmd.current_dir(d)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env.conf"))
            .env("RABBITMQ_PID_FILE", d.join("pid"));
    }

    /// Starts the node and waits until it serves.
    fn start(&self) {
        let mut cmd = Command::new(SERVER);
        self.env(&mut cmd);
        let status = cmd.arg("-detached").status().expect("rabbitmq-server");
        assert!(status.success(), "rabbitmq-server -detached: {status}");
        let mut wait = Command::new(CTL);
        self.env(&mut wait);
        let out = wait
            .args(["-n", &self.node, "wait"])
            .arg(self.dir.join("pid"))
            .args(["--timeout", "120"])
            .output()
            .expect("rabbitmqctl wait");
        assert!(
            out.status.success(),
            "node {} did not start: {}",
            self.node,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let mut cmd = Command::new(CTL);
        self.env(&mut cmd);
        let _ = cmd
            .args(["-n", &self.node, "stop"])
            .output()
            .expect("rabbitmqctl stop");
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The next number on `out` (acked); fails at `deadline` listing those of `0..want`
/// not `seen`.
async fn take(
    out: &mut Subscription,
    deadline: tokio::time::Instant,
    seen: &BTreeSet<u64>,
    want: u64,
) -> u64 {
    let d = tokio::time::timeout_at(deadline, out.next())
        .await
        .unwrap_or_else(|_| {
            let missing: Vec<u64> = (0..want).filter(|i| !seen.contains(i)).collect();
            panic!("missing after the restart: {missing:?}")
        })
        .expect("subscription open");
    let n = number(&d.message);
    d.ack();
    n
}

fn number(msg: &Message) -> u64 {
    serde_json::from_slice::<u64>(&msg.data).expect("a number")
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_no_acknowledged_message_is_lost_across_a_rabbitmq_restart() {
    const N: u64 = 200;
    let Some(rabbit) = PrivateRabbit::new(&role("rabbit")) else {
        return;
    };
    rabbit.start();
    let url = rabbit.url();
    let r = role("rr");
    let t = client(&url).await;
    // Declared before anything is sent: the output queue keeps what arrives meanwhile.
    drop(consume(&t, &format!("{r}.OUT")).await);
    let mut p = participant(&url, &[format!("{r}=core/Repeat")]);
    p.stdout_line(&format!("ready {r}")).await;
    for i in 0..N {
        t.send_to_queue(&format!("{r}.IN"), Message::json_text(i.to_string()))
            .await
            .expect("acknowledged by the broker");
    }
    drop(t);

    rabbit.stop();
    rabbit.start();

    // The participant reconnects by itself; a fresh client reads what the broker kept:
    // every message acknowledged before the restart comes out (at least once).
    let t = client(&url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let deadline = tokio::time::Instant::now() + DEADLINE * 3;
    let mut seen = BTreeSet::new();
    while seen.len() < N as usize {
        seen.insert(take(&mut out, deadline, &seen, N).await);
    }
    assert_eq!(seen, (0..N).collect::<BTreeSet<_>>());

    // New work goes through the recovered participant (resent until one makes the round
    // trip: the participant may still be consuming again).
    loop {
        t.send_to_queue(&format!("{r}.IN"), Message::json_text(N.to_string()))
            .await
            .expect("acknowledged after the restart");
        let got = tokio::time::timeout(std::time::Duration::from_millis(500), out.next()).await;
        if let Ok(Some(d)) = got {
            assert_eq!(number(&d.message), N);
            d.ack();
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the participant did not recover"
        );
    }
    for i in N + 1..2 * N {
        t.send_to_queue(&format!("{r}.IN"), Message::json_text(i.to_string()))
            .await
            .expect("acknowledged after the restart");
    }
    seen.insert(N);
    while seen.len() < 2 * N as usize {
        seen.insert(take(&mut out, deadline, &seen, 2 * N).await);
    }
    drop(p);
}

/// The private node stopped and started again while a sender and a participant are busy:
/// every message the broker acknowledged comes out of the pipeline (duplicates counted).
/// The sender, the participant and the reader each reconnect by themselves.
#[tokio::test(flavor = "multi_thread")]
async fn amqp_rabbitmq_restarted_under_load_loses_nothing() {
    const N: u64 = 1_000;
    let Some(rabbit) = PrivateRabbit::new(&role("rabbitload")) else {
        return;
    };
    rabbit.start();
    let url = rabbit.url();
    let r = role("rl");
    let t = client(&url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let mut p = participant(&url, &[format!("{r}=core/Repeat")]);
    p.stdout_line(&format!("ready {r}")).await;

    let sender = load(t.clone(), format!("{r}.IN"), N, |seq| {
        Message::json_text(seq.to_string())
    });
    let ledger = drain(&mut out, sender, N as usize / 3, || {
        // Blocking for the seconds a node takes to stop and start; the sender, the
        // participant and the reader go on on other threads.
        tokio::task::block_in_place(|| {
            rabbit.stop();
            rabbit.start();
        });
    })
    .await;
    ledger.check("RabbitMQ restarted under load", 1);
    drop(p);
}
