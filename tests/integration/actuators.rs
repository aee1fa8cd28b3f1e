//! Command and HTTP actuators scale external workers: for a queue no graph process reads,
//! the autoscaler runs the role's command with the count it wants, or POSTs the count to
//! the role's endpoint (`http` or `https`, the latter trusting a CA made by the test); a
//! failing command leaves the count as it was. The calls run off the autoscaler's loop: a
//! command blocked on a fifo holds up no other role, and counts asked for meanwhile
//! replace each other instead of queueing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use wasmflo_host::discovery::{Participant, Port as DiscoveryPort};
use wasmflo_host::message::Message;
use wasmflo_host::scaling::actuator::Actuator;
use wasmflo_host::scaling::autoscale::{Autoscaler, DecisionRecord};
use wasmflo_host::scaling::config::ScalingConfig;
use wasmflo_host::scaling::external::Caller;
use wasmflo_host::scaling::policy::DeadlinePolicy;
use wasmflo_host::transport::Transport;

use crate::brokers::{AMQP, broker, client, role};
use crate::support::{DEADLINE, Pki, Running, fbp, start, test_components};

/// Queues `n` jobs on `queue`, which nothing consumes (the external workers are not there).
async fn backlog(running: &Running, queue: &str, n: u64) {
    let transport: Arc<dyn Transport> = running.transport.clone();
    transport.declare_queue(queue).await.expect("declare");
    for i in 0..n {
        running
            .send_msg(queue, Message::json(&serde_json::json!({"n": i})))
            .await;
    }
}

/// Stops the network without the usual grace: the external roles' jobs are never
/// consumed, so waiting for them to drain would only run out the grace.
async fn halt(running: &mut Running) {
    if let Some(network) = running.network.take() {
        network.shutdown(std::time::Duration::ZERO).await;
    }
}

/// An autoscaler running over a configuration, its decision records gathered as they come.
struct Scaling {
    records: Vec<DecisionRecord>,
    rx: mpsc::UnboundedReceiver<DecisionRecord>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scaling {
    /// Starts an autoscaler over `config`, trusting `ca` for `https` if given.
    fn start(running: &Running, config: &str, ca: Option<&Path>) -> Scaling {
        let config = ScalingConfig::parse(config).expect("config");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut scaler = Autoscaler::new(
            config,
            Box::new(DeadlinePolicy),
            running.network.as_ref().expect("network"),
            Box::new(std::io::sink()),
        )
        .expect("an external role needs no graph process")
        .with_records(tx);
        if let Some(ca) = ca {
            scaler = scaler.with_ca_file(ca).expect("CA file");
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(scaler.run(async {
            let _ = stopped.await;
        }));
        Scaling {
            records: Vec::new(),
            rx,
            stop: Some(stop),
            task,
        }
    }

    /// Gathers records until `done` holds for them, failing after [`DEADLINE`].
    async fn until(&mut self, what: &str, done: impl Fn(&[DecisionRecord]) -> bool) {
        let gathered = tokio::time::timeout(DEADLINE, async {
            while !done(&self.records) {
                let r = self.rx.recv().await.expect("the autoscaler runs");
                self.records.push(r);
            }
        })
        .await;
        assert!(
            gathered.is_ok(),
            "{what} within {DEADLINE:?}: {:#?}",
            self.records
        );
    }

    /// The first record of `role` that `trigger` made.
    fn first(&self, role: &str, trigger: &str) -> DecisionRecord {
        self.records
            .iter()
            .find(|r| r.role == role && r.trigger == trigger)
            .cloned()
            .unwrap_or_else(|| panic!("a {trigger} record of {role}: {:#?}", self.records))
    }

    /// The first decision that asked `role`'s command for a count: a poll, or a pressure
    /// decision when the backlog's growth is seen before the first poll (under load).
    fn first_ask(&self, role: &str) -> DecisionRecord {
        self.records
            .iter()
            .find(|r| r.role == role && r.asked.is_some())
            .cloned()
            .unwrap_or_else(|| panic!("a decision asking {role}: {:#?}", self.records))
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("autoscaler ends");
    }
}

/// Whether `records` hold an `actuator` record of `role`.
fn settled(records: &[DecisionRecord], role: &str) -> bool {
    records
        .iter()
        .any(|r| r.role == role && r.trigger == "actuator")
}

/// A scratch directory for `name`, emptied.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_scales_external_workers() {
    let dir = scratch("actuator-command");
    let log = dir.join("calls.log");
    let script = dir.join("scale.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $2\" >> '{}'\n", log.display()),
    )
    .expect("script");
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "ext.jobs", 200).await;
    backlog(&running, "bad.jobs", 200).await;
    let config = format!(
        "'*': {{pollinterval: 0.01, history: 0.1}}\n\
         ext: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: ext.jobs, command: 'sh {} {{role}} {{count}}'}}\n\
         bad: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: bad.jobs, command: 'exit 3'}}\n",
        script.display()
    );
    let mut scaling = Scaling::start(&running, &config, None);
    scaling
        .until("both commands ran", |r| {
            settled(r, "ext") && settled(r, "bad")
        })
        .await;
    let text = std::fs::read_to_string(&log).expect("the command ran");
    // 200 jobs of 10 ms against a 100 ms deadline: as many workers as allowed, at once.
    assert_eq!(text.lines().next(), Some("ext 6"), "{text}");
    let ext = scaling.first_ask("ext");
    assert_eq!(
        (ext.from, ext.to, ext.asked, ext.backlog),
        (1, 1, Some(6), 200),
        "the decision hands 6 to the command, which has not answered yet: {ext:?}"
    );
    assert_eq!(
        ext.start_time, 0.001,
        "external roles plan with the configured boot"
    );
    let done = scaling.first("ext", "actuator");
    assert_eq!(
        (done.from, done.to, done.asked),
        (1, 6, Some(6)),
        "{done:?}"
    );
    assert_eq!(done.error, None);
    let bad = scaling.first("bad", "actuator");
    assert!(bad.asked > Some(1), "{bad:?}");
    assert_eq!(
        bad.to, bad.from,
        "a failed command changes nothing: {bad:?}"
    );
    let error = bad.error.unwrap_or_default();
    assert!(error.contains("`exit 3` failed"), "{error}");
    scaling.stop().await;
    halt(&mut running).await;
}

/// A command that blocks until the test writes a line to its fifo, logging each call
/// (`ROLE COUNT`) to `calls.log` when it starts; returns the command and the fifo.
fn blocking_command(dir: &Path) -> (String, PathBuf) {
    let fifo = dir.join("release");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let script = dir.join("slow.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1 $2\" >> '{}'\nread line < '{}'\n",
            dir.join("calls.log").display(),
            fifo.display()
        ),
    )
    .expect("script");
    (format!("sh {} {{role}} {{count}}", script.display()), fifo)
}

/// The calls `blocking_command` logged.
fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Lets one blocked call of `blocking_command` end.
async fn release(fifo: &Path) {
    let fifo = fifo.to_owned();
    tokio::task::spawn_blocking(move || {
        // Opening a fifo for writing waits for its reader, the blocked command.
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the fifo");
        std::io::Write::write_all(&mut w, b"go\n").expect("release");
    })
    .await
    .expect("released");
}

/// Polls `what` until it holds, failing after [`DEADLINE`].
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_actuator_holds_up_no_other_role() {
    let dir = scratch("actuator-slow");
    let (slow, fifo) = blocking_command(&dir);
    let fast_log = dir.join("fast.log");
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "slow.jobs", 200).await;
    backlog(&running, "fast.jobs", 200).await;
    let config = format!(
        "'*': {{pollinterval: 0.01, history: 0.1, p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001}}\n\
         slow: {{q: slow.jobs, command: '{slow}'}}\n\
         fast: {{q: fast.jobs, command: 'echo {{role}} {{count}} >> {}'}}\n",
        fast_log.display()
    );
    let mut scaling = Scaling::start(&running, &config, None);
    eventually("the slow command starts", || calls(&dir) == ["slow 6"]).await;
    // While it blocks, the other role is scaled and the loop goes on deciding for both.
    let seen = scaling.records.len();
    scaling
        .until("decisions while the slow call is pending", |r| {
            settled(r, "fast")
                && r[seen.min(r.len())..]
                    .iter()
                    .filter(|d| d.role == "fast" && d.trigger == "poll")
                    .count()
                    >= 5
                && r[seen.min(r.len())..]
                    .iter()
                    .filter(|d| d.role == "slow" && d.trigger == "poll")
                    .count()
                    >= 5
        })
        .await;
    assert!(!settled(&scaling.records, "slow"), "{:#?}", scaling.records);
    let fast = scaling.first("fast", "actuator");
    assert_eq!((fast.from, fast.to), (1, 6), "{fast:?}");
    let pending: Vec<_> = scaling
        .records
        .iter()
        .filter(|r| r.role == "slow" && r.trigger == "poll")
        .collect();
    assert!(
        pending.iter().all(|r| (r.from, r.to) == (1, 1)),
        "the count stays unconfirmed while the call runs: {pending:#?}"
    );
    assert_eq!(
        pending.iter().filter(|r| r.asked.is_some()).count(),
        1,
        "the count is asked for once, not again at every decision: {pending:#?}"
    );
    assert_eq!(calls(&dir), ["slow 6"], "one call in flight");
    release(&fifo).await;
    scaling
        .until("the slow call's outcome", |r| settled(r, "slow"))
        .await;
    let slow = scaling.first("slow", "actuator");
    assert_eq!(
        (slow.from, slow.to, slow.error.as_deref()),
        (1, 6, None),
        "{slow:?}"
    );
    scaling
        .until("a decision from the confirmed count", |r| {
            r.iter()
                .any(|d| d.role == "slow" && d.trigger == "poll" && d.from == 6)
        })
        .await;
    scaling.stop().await;
    halt(&mut running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_asked_during_a_call_replaces_the_pending_one() {
    let dir = scratch("actuator-replace");
    let (slow, fifo) = blocking_command(&dir);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let caller = Caller::spawn(7, "r".into(), Actuator::Command(slow), tx);
    caller.ask(2);
    eventually("the first call starts", || calls(&dir) == ["r 2"]).await;
    // Two more counts while it blocks: the second replaces the first.
    caller.ask(3);
    caller.ask(4);
    release(&fifo).await;
    let first = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the first outcome")
        .expect("an outcome");
    assert_eq!((first.index, first.asked), (7, 2));
    assert_eq!(first.result.expect("the call succeeds"), 2);
    eventually("the next call starts", || calls(&dir).len() == 2).await;
    assert_eq!(calls(&dir), ["r 2", "r 4"], "3 was replaced, not queued");
    release(&fifo).await;
    let second = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the second outcome")
        .expect("an outcome");
    assert_eq!(second.asked, 4);
    assert_eq!(second.result.expect("the call succeeds"), 4);
    drop(caller);
    assert!(
        tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("the task ends")
            .is_none(),
        "no further call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_spike_wakes_the_autoscaler_for_an_external_role() {
    let dir = scratch("actuator-watch");
    let log = dir.join("calls.log");
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "watch.jobs", 0).await;
    // Polls 10 minutes apart: only the backlog watcher can react within the test.
    let config = format!(
        "'*': {{pollinterval: 600, history: 1200, watchinterval: 0.02}}\n\
         ext: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: watch.jobs, command: 'echo {{role}} {{count}} >> {}'}}\n",
        log.display()
    );
    let mut scaling = Scaling::start(&running, &config, None);
    scaling.until("the first poll", |r| !r.is_empty()).await;
    let first = scaling.first("ext", "poll");
    assert_eq!(
        (first.backlog, first.to, first.asked),
        (0, 1, None),
        "{first:?}"
    );
    backlog(&running, "watch.jobs", 200).await;
    scaling
        .until("scaled to 6 without a poll", |r| {
            r.iter()
                .any(|d| d.role == "ext" && d.trigger == "actuator" && d.to == 6)
        })
        .await;
    let polls = scaling
        .records
        .iter()
        .filter(|r| r.trigger == "poll")
        .count();
    assert_eq!(polls, 1, "{:#?}", scaling.records);
    let up = scaling.first("ext", "pressure");
    assert_eq!(up.from, 1, "{up:?}");
    assert!(up.asked > Some(1), "{up:?}");
    let calls = calls(&dir);
    assert_eq!(calls.last().map(String::as_str), Some("ext 6"), "{calls:?}");
    scaling.stop().await;
    halt(&mut running).await;
}

/// An endpoint on a free port (over TLS with the test CA's server certificate when
/// `pki` is given) and the requests it receives.
async fn serve(
    pki: Option<&Pki>,
) -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let tls = pki.map(|p| tokio_rustls::TlsAcceptor::from(p.server_config()));
    tokio::spawn(endpoint(listener, tls, tx));
    (addr, rx)
}

/// Answers every POST with 200 and sends its request line and JSON body on `tx`; with
/// `tls`, behind a TLS handshake (a refused one is skipped).
async fn endpoint(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::UnboundedSender<(String, serde_json::Value)>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        match &tls {
            None => answer(stream, &tx).await,
            Some(acceptor) => {
                if let Ok(stream) = acceptor.accept(stream).await {
                    answer(stream, &tx).await;
                }
            }
        }
    }
}

/// Reads one POST, answers 200, and sends its request line and JSON body on `tx`.
async fn answer(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    tx: &mpsc::UnboundedSender<(String, serde_json::Value)>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let (head, body) = loop {
        let n = stream.read(&mut buf).await.expect("read request");
        assert!(n > 0, "request cut short");
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                break (head.to_string(), body.to_string());
            }
        }
    };
    // Reported before answering, so the request is known once the caller has its answer.
    let line = head.lines().next().unwrap_or_default().to_string();
    let _ = tx.send((line, serde_json::from_str(&body).expect("JSON body")));
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await
        .expect("answer");
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_endpoint_scales_external_workers() {
    let (addr, mut rx) = serve(None).await;
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "ext.jobs", 200).await;
    let config = format!(
        "'*': {{pollinterval: 0.01, history: 0.1}}\n\
         ext: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: ext.jobs, http: 'http://{addr}/scale?app=x'}}\n"
    );
    let mut scaling = Scaling::start(&running, &config, None);
    scaling
        .until("the endpoint answered", |r| settled(r, "ext"))
        .await;
    let (line, body) = rx.try_recv().expect("a request");
    assert_eq!(line, "POST /scale?app=x HTTP/1.1");
    assert_eq!(body, serde_json::json!({"role": "ext", "instances": 6}));
    let ext = scaling.first("ext", "actuator");
    assert_eq!(
        (ext.from, ext.to, ext.error.as_deref()),
        (1, 6, None),
        "{ext:?}"
    );
    scaling.stop().await;
    halt(&mut running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_trusted_through_the_ca_file() {
    let pki = Pki::new(scratch("actuator-https"));
    let (addr, mut rx) = serve(Some(&pki)).await;
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "ext.jobs", 200).await;
    let url = format!("https://{addr}/scale");
    let config = format!(
        "'*': {{pollinterval: 0.01, history: 0.1}}\n\
         ext: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: ext.jobs, http: '{url}'}}\n"
    );

    // Without the CA, the handshake fails: one line naming the endpoint, count unchanged.
    let mut untrusted = Scaling::start(&running, &config, None);
    untrusted
        .until("the refused handshake", |r| settled(r, "ext"))
        .await;
    let refused = untrusted.first("ext", "actuator");
    untrusted.stop().await;
    assert_eq!((refused.from, refused.to), (1, 1), "{refused:?}");
    let error = refused.error.unwrap_or_default();
    assert!(
        error.starts_with(&format!("POST {url}: TLS handshake: ")) && !error.contains('\n'),
        "{error}"
    );
    assert!(error.contains("certificate"), "{error}");
    assert!(rx.try_recv().is_err(), "nothing was posted");

    // A CA file that holds no certificate is refused when the autoscaler is set up.
    let empty = pki.dir.join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let scaler = Autoscaler::new(
        ScalingConfig::parse(&config).expect("config"),
        Box::new(DeadlinePolicy),
        running.network.as_ref().expect("network"),
        Box::new(std::io::sink()),
    )
    .expect("autoscaler");
    let message = scaler
        .with_ca_file(&empty)
        .map(|_| ())
        .expect_err("an empty CA file")
        .to_string();
    assert!(
        message.starts_with("role 'ext': ") && message.contains("empty.pem"),
        "{message}"
    );

    let mut trusted = Scaling::start(&running, &config, Some(&pki.ca()));
    trusted
        .until("the endpoint answered", |r| settled(r, "ext"))
        .await;
    let ext = trusted.first("ext", "actuator");
    assert_eq!(
        (ext.from, ext.to, ext.error.as_deref()),
        (1, 6, None),
        "{ext:?}"
    );
    let (line, body) = rx.try_recv().expect("a request over TLS");
    assert_eq!(line, "POST /scale HTTP/1.1");
    assert_eq!(body, serde_json::json!({"role": "ext", "instances": 6}));
    trusted.stop().await;
    halt(&mut running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participant_watches_an_external_backlog_and_posts_over_https_on_rabbitmq() {
    let Some(url) = broker(AMQP) else {
        return;
    };
    let ext = role("exths");
    let pki = Pki::new(scratch(&format!("actuator-{ext}")));
    let (addr, mut rx) = serve(Some(&pki)).await;
    // The external role's queue, which no graph process reads.
    let t = client(url).await;
    let queue = format!("{ext}.jobs");
    t.declare_queue(&queue).await.expect("declare");
    // Polls 10 minutes apart: after the first, only the backlog watch can react.
    let config = pki.dir.join("scale.guv.yaml");
    std::fs::write(
        &config,
        format!(
            "'*': {{pollinterval: 600, history: 1200, watchinterval: 0.02}}\n\
             {ext}: {{p: 0.01, d: 0.1, min: 1, max: 6, boot: 0.001, q: {queue}, http: 'https://{addr}/scale'}}\n"
        ),
    )
    .expect("config");
    let idle = role("idle");
    let mut cmd = crate::brokers::cli();
    cmd.arg("participant")
        .arg(format!("{idle}=core/Repeat"))
        .args(["--broker", url, "--autoscale"])
        .arg(&config)
        .arg("--ca-file")
        .arg(pki.ca());
    let mut p = crate::brokers::Running::spawn(cmd);
    let record = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap_or_default();
    let first = crate::brokers::wait_line(&mut p.stdout, |l| record(l)["role"] == ext.as_str())
        .await
        .map(|l| record(&l))
        .expect("the first poll's decision on stdout");
    assert_eq!(
        (&first["trigger"], &first["backlog"]),
        (&"poll".into(), &0.into()),
        "{first}"
    );
    for i in 0..200 {
        t.send_to_queue(&queue, Message::json(&serde_json::json!({"n": i})))
            .await
            .expect("send");
    }
    // Then the role's records until its count of 6 is confirmed: none from a poll.
    let mut records = Vec::new();
    let gathered = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = p.stdout.recv().await {
            let v = record(&line);
            if v["role"] != ext.as_str() {
                continue;
            }
            records.push(v.clone());
            if v["trigger"] == "actuator" && v["to"] == 6 {
                return;
            }
        }
    })
    .await;
    assert!(
        gathered.is_ok(),
        "no confirmed count of 6 on stdout: {records:#?}"
    );
    assert!(
        records.iter().all(|r| r["trigger"] != "poll"),
        "{records:#?}"
    );
    assert!(
        records.iter().any(|r| r["trigger"] == "pressure"),
        "{records:#?}"
    );
    let mut bodies = Vec::new();
    while let Ok((line, body)) = rx.try_recv() {
        assert_eq!(line, "POST /scale HTTP/1.1");
        bodies.push(body);
    }
    assert_eq!(
        bodies.last(),
        Some(&serde_json::json!({"role": ext, "instances": 6})),
        "{bodies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_start_time_is_measured_from_amqp_consumers() {
    let Some(url) = broker(AMQP) else {
        return;
    };
    let ext = role("extstart");
    let dir = scratch(&format!("actuator-{ext}"));
    let log = dir.join("calls.log");
    let t = client(url).await;
    let queue = format!("{ext}.jobs");
    t.declare_queue(&queue).await.expect("declare");
    for i in 0..200 {
        t.send_to_queue(&queue, Message::json(&serde_json::json!({"n": i})))
            .await
            .expect("send");
    }
    // `boot: 30` until the workers' start is measured.
    let config = dir.join("scale.guv.yaml");
    std::fs::write(
        &config,
        format!(
            "'*': {{pollinterval: 0.05, history: 0.5, watchinterval: 0.02}}\n\
             {ext}: {{p: 0.01, d: 0.1, min: 1, max: 3, boot: 30, q: {queue}, command: 'echo {{count}} >> {}'}}\n",
            log.display()
        ),
    )
    .expect("config");
    let idle = role("idle");
    let mut cmd = crate::brokers::cli();
    cmd.arg("participant")
        .arg(format!("{idle}=core/Repeat"))
        .args(["--broker", url, "--autoscale"])
        .arg(&config);
    let mut p = crate::brokers::Running::spawn(cmd);
    eventually("the command is called for 3 workers", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().any(|c| c == "3"))
    })
    .await;
    // The test plays the external workers: three consumers come up.
    let asked = tokio::time::Instant::now();
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(t.subscribe(&queue).await.expect("subscribe"));
    }
    let record = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap_or_default();
    let measured = crate::brokers::wait_line(&mut p.stdout, |l| {
        let v = record(l);
        v["role"] == ext.as_str() && v["trigger"] == "poll" && v["start_time"] != 30.0
    })
    .await
    .map(|l| record(&l))
    .expect("a decision planning with a measured start time");
    let start = measured["start_time"].as_f64().expect("start_time");
    assert!(
        start > 0.0 && start <= asked.elapsed().as_secs_f64() + 0.1,
        "{measured}"
    );
    drop(workers);
}

/// Announces an external worker `id` of the role reading `queue`, as a MsgFlo
/// participant does when it starts (and again every discovery period).
async fn announce(running: &Running, id: &str, queue: &str) {
    let worker = Participant {
        id: id.to_string(),
        role: "ext".to_string(),
        component: "Worker".to_string(),
        label: String::new(),
        icon: String::new(),
        inports: vec![DiscoveryPort {
            id: "in".to_string(),
            type_: "any".to_string(),
            queue: queue.to_string(),
            description: String::new(),
        }],
        outports: Vec::new(),
    };
    running.send_msg("fbp", worker.to_message()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_start_time_is_measured_from_discovery_messages() {
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    backlog(&running, "ext.jobs", 200).await;
    // `boot: 30` until the workers' start is measured; the command confirms at once.
    let config = "'*': {pollinterval: 0.01, history: 0.1}\n\
         ext: {p: 0.01, d: 0.1, min: 1, max: 4, boot: 30, q: ext.jobs, command: 'true'}\n";
    let mut scaling = Scaling::start(&running, config, None);
    scaling
        .until("the command confirms 4 workers", |r| settled(r, "ext"))
        .await;
    let asked = scaling.first_ask("ext");
    assert_eq!((asked.from, asked.asked), (1, Some(4)), "{asked:?}");
    // Three workers are added. A re-announcement is not a join, nor is a worker of
    // another queue: two of the three have started so far.
    announce(&running, "ext-a", "ext.jobs").await;
    announce(&running, "ext-a", "ext.jobs").await;
    announce(&running, "other-x", "other.jobs").await;
    announce(&running, "ext-b", "ext.jobs").await;
    let polls = |r: &[DecisionRecord]| r.iter().filter(|d| d.trigger == "poll").count();
    let before = polls(&scaling.records);
    scaling
        .until("three more polls", |r| polls(r) >= before + 3)
        .await;
    let last_poll = scaling
        .records
        .iter()
        .rev()
        .find(|d| d.trigger == "poll")
        .cloned()
        .expect("a poll");
    assert_eq!(last_poll.start_time, 30.0, "not started yet: {last_poll:?}");
    announce(&running, "ext-c", "ext.jobs").await;
    scaling
        .until("a decision planning with the measured start time", |r| {
            r.iter()
                .any(|d| d.trigger == "poll" && d.start_time != 30.0)
        })
        .await;
    let measured = scaling
        .records
        .iter()
        .find(|d| d.trigger == "poll" && d.start_time != 30.0)
        .cloned()
        .expect("measured");
    // From the ask to the third join: after the last poll that saw only two, before
    // the first decision that used it.
    let took = measured.start_time;
    assert!(
        took >= last_poll.t - asked.t && took <= measured.t - asked.t,
        "start {took} s: asked at {} s, last unstarted poll at {} s, measured by {} s",
        asked.t,
        last_poll.t,
        measured.t
    );
    scaling.stop().await;
    halt(&mut running).await;
}
