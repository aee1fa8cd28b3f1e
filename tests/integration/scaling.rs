//! Autoscaling on a running host: instance pools resized under load (in-process, on
//! RabbitMQ and on Mosquitto) without losing or duplicating a message, the autoscaler
//! taking a role up on a spike and back down, the Prometheus endpoint, and `run
//! --autoscale` from the command line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wasmflo_host::component::Resolver;
use wasmflo_host::message::Message;
use wasmflo_host::network::{Network, Source};
use wasmflo_host::scaling::autoscale::{Autoscaler, DecisionRecord};
use wasmflo_host::scaling::config::ScalingConfig;
use wasmflo_host::scaling::policy::DeadlinePolicy;
use wasmflo_host::transport::{Binding, BindingKind, Subscription, Transport};

use crate::brokers::{AMQP, MQTT, broker, client, role};
use crate::support::{DEADLINE, fbp, loader, start, test_components};

/// Echo numbers from the `count`/`echo.n` replies of test/Hostile; panics on a duplicate.
async fn collect(
    sub: &mut Subscription,
    n: u64,
    credit: Option<&tokio::sync::Semaphore>,
) -> BTreeMap<u64, u64> {
    let mut seen = BTreeMap::new();
    while (seen.len() as u64) < n {
        let d = tokio::time::timeout(DEADLINE, sub.next())
            .await
            .unwrap_or_else(|_| {
                let missing: Vec<u64> = (0..n).filter(|i| !seen.contains_key(i)).take(20).collect();
                panic!(
                    "{} of {n} replies within {DEADLINE:?}; first missing {missing:?}",
                    seen.len()
                )
            })
            .expect("probe open");
        let v: serde_json::Value = serde_json::from_slice(&d.message.data).expect("JSON reply");
        d.ack();
        let i = v["echo"]["n"].as_u64().expect("numbered echo");
        let count = v["count"].as_u64().expect("count");
        assert!(
            seen.insert(i, count).is_none(),
            "message {i} delivered twice"
        );
        if let Some(c) = credit {
            c.add_permits(1);
        }
    }
    seen
}

/// Jobs sent and not yet answered, at most.
const WINDOW: usize = 100;

fn job(i: u64, busy: u64) -> Message {
    Message::json(&serde_json::json!({"n": i, "busy": busy}))
}

/// Sends `n` jobs, resizing the pool of `w` through `sizes` while they flow, then checks
/// every reply arrives exactly once and more than one instance served.
async fn resize_under_load(network: &Network, transport: &Arc<dyn Transport>, w: &str, n: u64) {
    let probe = format!("probe-{w}.OUT");
    transport
        .declare_queue(&probe)
        .await
        .expect("declare probe");
    transport
        .bind(&Binding {
            src: format!("{w}.OUT"),
            tgt: probe.clone(),
            kind: BindingKind::PubSub,
        })
        .await
        .expect("bind probe");
    let mut sub = transport.subscribe(&probe).await.expect("subscribe probe");
    let pool = network.pool(w).expect("pool");
    // At most WINDOW jobs unanswered: Mosquitto drops messages beyond 1,000 queued for
    // one client, and this client gets every job three times (in, out, probe).
    let credit = Arc::new(tokio::sync::Semaphore::new(WINDOW));
    let sender = {
        let (pool, transport, credit, queue) = (
            pool.clone(),
            transport.clone(),
            credit.clone(),
            format!("{w}.IN"),
        );
        tokio::spawn(async move {
            let sizes = [3, 1, 4, 2, 1, 3];
            let step = n / sizes.len() as u64;
            for i in 0..n {
                if i % step == 0 {
                    let size = sizes[(i / step) as usize % sizes.len()];
                    assert_eq!(pool.resize(size).await.expect("resize"), size);
                }
                credit.acquire().await.expect("credit").forget();
                transport
                    .send_to_queue(&queue, job(i, 20_000))
                    .await
                    .expect("send");
            }
        })
    };
    let seen = collect(&mut sub, n, Some(&credit)).await;
    assert_eq!(seen.len() as u64, n);
    sender.await.expect("sender");
    let metrics = network.metrics().role(w);
    assert!(
        metrics.serving() > 1,
        "more than one instance served ({} did)",
        metrics.serving()
    );
    // Nothing more arrives: the instances processed each message once.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while metrics.processed() < n && tokio::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(metrics.processed(), n, "processed exactly once each");
    let extra = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(extra.is_err(), "a reply arrived twice");
    assert_eq!(pool.instances().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_resizes_under_load_in_process() {
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    let transport: Arc<dyn Transport> = running.transport.clone();
    let network = running.network.as_ref().expect("network");
    resize_under_load(network, &transport, "w", 3000).await;
    let reports = running.stop().await;
    let processed: u64 = reports.iter().map(|r| r.stats.processed).sum();
    assert_eq!(
        processed, 3000,
        "the report sums every instance, removed ones too"
    );
}

async fn resize_on_broker(url: &'static str) {
    let transport = client(url).await;
    let w = role("pool");
    let graph = fbp(&format!("{w}(test/Hostile)"));
    let resolver = Resolver::new(test_components(), test_components());
    let network = Network::start(
        &graph,
        &Source::default(),
        loader(),
        &resolver,
        transport.clone(),
    )
    .await
    .expect("network starts");
    resize_under_load(&network, &transport, &w, 600).await;
    network.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_resizes_under_load_on_rabbitmq() {
    if let Some(url) = broker(AMQP) {
        resize_on_broker(url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_resizes_under_load_on_mosquitto() {
    if let Some(url) = broker(MQTT) {
        resize_on_broker(url).await;
    }
}

/// `GET path` on `addr`; the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// Waits for a decision matching `want`.
async fn decision(
    rx: &mut mpsc::UnboundedReceiver<DecisionRecord>,
    what: &str,
    want: impl Fn(&DecisionRecord) -> bool,
) -> DecisionRecord {
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(r) = rx.recv().await {
            if want(&r) {
                return Some(r);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(r)) => r,
        _ => panic!("no decision {what} within {DEADLINE:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_scales_a_role_up_and_back_down() {
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    let mut out = running.probe("w.OUT").await;
    let network = running.network.as_ref().expect("network");
    let config = ScalingConfig::parse(
        "'*': {pollinterval: 0.005, history: 0.2}\n\
         w: {p: 0.001, stddev: 0.0005, d: 0.02, min: 1, max: 4, boot: 0.00002}\n",
    )
    .expect("config");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scaler = Autoscaler::new(
        config,
        Box::new(DeadlinePolicy),
        network,
        Box::new(std::io::sink()),
    )
    .expect("autoscaler")
    .with_records(tx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scaler.run(async {
        let _ = stopped.await;
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(wasmflo_host::metrics::serve(
        listener,
        network.metrics().clone(),
        std::future::pending(),
    ));

    // Idle: it stays at its minimum.
    let idle = decision(&mut rx, "while idle", |_| true).await;
    assert_eq!((idle.from, idle.to, idle.backlog), (1, 1, 0));

    const N: u64 = 400;
    for i in 0..N {
        running.send_msg("w.IN", job(i, 200_000)).await;
    }
    let up = decision(&mut rx, "scaling up", |r| r.to > r.from).await;
    assert!(up.backlog > 0 && up.to > 1, "{up:?}");
    let seen = collect(&mut out, N, None).await;
    assert_eq!(seen.len() as u64, N);
    // Back to one instance (possibly already while the last job was in flight), idle.
    let down = decision(&mut rx, "back to one idle instance", |r| {
        r.to == 1 && r.backlog == 0
    })
    .await;
    assert_eq!(down.in_flight, 0, "{down:?}");

    let metrics = running
        .network
        .as_ref()
        .expect("network")
        .metrics()
        .role("w");
    assert!(metrics.serving() > 1, "new instances served");
    let text = http_get(addr, "/metrics").await;
    for line in [
        format!("wasmflo_role_processed_total{{role=\"w\"}} {N}"),
        "wasmflo_role_failed_total{role=\"w\"} 0".to_string(),
        "wasmflo_role_instances{role=\"w\"} 1".to_string(),
        format!("wasmflo_role_processing_seconds_count{{role=\"w\"}} {N}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    let decisions: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("wasmflo_role_scaling_decisions_total{role=\"w\"} "))
        .and_then(|v| v.parse().ok())
        .expect("a decisions counter");
    assert!(decisions >= 3, "{decisions} decisions");
    let _ = stop.send(());
    task.await.expect("autoscaler ends");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_at_its_maximum_raises_the_alert() {
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    let network = running.network.as_ref().expect("network");
    let config = ScalingConfig::parse(
        "'*': {pollinterval: 0.005, history: 0.1}\n\
         w: {p: 0.001, stddev: 0.0005, d: 0.005, min: 1, max: 2, boot: 0.00002}\n",
    )
    .expect("config");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scaler = Autoscaler::new(
        config,
        Box::new(DeadlinePolicy),
        network,
        Box::new(std::io::sink()),
    )
    .expect("autoscaler")
    .with_records(tx);
    let metrics = network.metrics().role("w");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scaler.run(async {
        let _ = stopped.await;
    }));
    for i in 0..300 {
        running.send_msg("w.IN", job(i, 200_000)).await;
    }
    let alert = decision(&mut rx, "at max", |r| r.at_max).await;
    assert_eq!(alert.to, 2);
    assert!(alert.wanted > 2, "{alert:?}");
    assert!(metrics.at_max() >= 1);
    let _ = stop.send(());
    task.await.expect("autoscaler ends");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_autoscale_and_metrics_from_the_command_line() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaling-cli");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let graph = dir.join("g.fbp");
    std::fs::write(
        &graph,
        "'10' -> INTERVAL sensor(temperature/Sensor)\nsensor OUT -> IN w(core/Repeat)\n",
    )
    .expect("graph");
    let bad = dir.join("bad.guv.yaml");
    std::fs::write(&bad, "x: {max: 3}\n").expect("bad config");
    let good = dir.join("good.guv.yaml");
    std::fs::write(
        &good,
        "'*': {pollinterval: 0.05}\nw: {max: 3, p: 0.001, boot: 0.00002}\n",
    )
    .expect("config");

    let out = crate::brokers::cli()
        .arg("run")
        .arg(&graph)
        .arg("--autoscale")
        .arg(&bad)
        .output()
        .expect("cli runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("bad.guv.yaml") && errors[0].contains("role 'x'"),
        "{}",
        errors[0]
    );

    let mut cmd = crate::brokers::cli();
    cmd.arg("run")
        .arg(&graph)
        .arg("--autoscale")
        .arg(&good)
        .args(["--metrics", "127.0.0.1:0", "--for", "30s"]);
    let mut running = crate::brokers::Running::spawn(cmd);
    let mut addr = None;
    let mut decisions = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while addr.is_none() || decisions < 2 {
        let line = tokio::time::timeout_at(deadline, running.stdout.recv())
            .await
            .expect("metrics address and decisions on stdout")
            .expect("stdout open");
        if let Some(a) = line
            .strip_prefix("metrics http://")
            .and_then(|l| l.strip_suffix("/metrics"))
        {
            addr = Some(a.parse::<std::net::SocketAddr>().expect("address"));
        } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            assert_eq!(v["role"], "w", "{line}");
            assert_eq!(v["policy"], "deadline");
            decisions += 1;
        }
    }
    // The sensor feeds `w` every 10 ms: its counter rises between scrapes.
    let addr = addr.expect("address");
    let processed = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("wasmflo_role_processed_total{role=\"w\"} "))
            .and_then(|v| v.parse().ok())
            .expect("a processed counter for w")
    };
    let first = processed(&http_get(addr, "/metrics").await);
    loop {
        let text = http_get(addr, "/metrics").await;
        assert!(
            text.contains("wasmflo_role_instances{role=\"w\"} 1"),
            "{text}"
        );
        if processed(&text) > first {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "w processed nothing: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressure_scales_up_between_polls_planning_with_the_measured_start_time() {
    let graph = fbp("w(test/Hostile)");
    let mut running = start(&graph, &test_components()).await.expect("starts");
    let mut out = running.probe("w.OUT").await;
    let network = running.network.as_ref().expect("network");
    // One poll at start, the next in 30 s: only backlog pressure can scale up in time.
    // `boot` says 5 s; the pool measures its own starts.
    let config = ScalingConfig::parse(
        "'*': {pollinterval: 30, history: 60}\n\
         w: {p: 0.001, stddev: 0.0005, d: 0.02, min: 1, max: 4, boot: 5}\n",
    )
    .expect("config");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scaler = Autoscaler::new(
        config,
        Box::new(DeadlinePolicy),
        network,
        Box::new(std::io::sink()),
    )
    .expect("autoscaler")
    .with_records(tx);
    let metrics = network.metrics().role("w");
    // The first instance starts in the background; on a loaded machine the first
    // decision could come before its start is recorded.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while metrics.start_time().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first instance's start was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scaler.run(async {
        let _ = stopped.await;
    }));
    let first = decision(&mut rx, "at start", |_| true).await;
    assert_eq!((first.trigger, first.from, first.to), ("poll", 1, 1));
    let measured = metrics
        .start_time()
        .expect("the first instance's start was measured");
    assert!(metrics.starts() >= 1);
    assert!(
        (first.start_time - measured.as_secs_f64()).abs() < 1e-9 && first.start_time < 1.0,
        "the policy planned with the measured start ({measured:?}), not boot: {first:?}"
    );
    const N: u64 = 400;
    for i in 0..N {
        running.send_msg("w.IN", job(i, 200_000)).await;
    }
    let up = decision(&mut rx, "scaling up on pressure", |r| r.to > r.from).await;
    assert_eq!(up.trigger, "pressure", "{up:?}");
    assert!(up.backlog > 0 && up.to > 1, "{up:?}");
    let seen = collect(&mut out, N, None).await;
    assert_eq!(seen.len() as u64, N);
    assert!(metrics.serving() > 1, "new instances served");
    // The first instance and at least one new one (on two worker threads busy with
    // compute-bound calls, the others may not have been scheduled yet).
    assert!(metrics.starts() >= 2, "{} starts", metrics.starts());
    let text = network.metrics().render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("wasmflo_role_start_seconds{role=\"w\"} ")),
        "{text}"
    );
    let _ = stop.send(());
    task.await.expect("autoscaler ends");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participant_autoscales_on_rabbitmq() {
    let Some(url) = broker(AMQP) else {
        return;
    };
    let w = role("scaled");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scaling-{w}"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let config = dir.join("scale.guv.yaml");
    std::fs::write(
        &config,
        format!(
            "'*': {{pollinterval: 0.05, history: 0.5}}\n\
             {w}: {{p: 0.001, stddev: 0.0005, d: 0.02, min: 1, max: 3, boot: 0.00002}}\n"
        ),
    )
    .expect("config");
    let mut cmd = crate::brokers::cli();
    cmd.arg("participant")
        .arg(format!("{w}={}", wasmflo_tests::guests::HOSTILE))
        .args(["--broker", &format!("{url}?prefetch=1"), "--autoscale"])
        .arg(&config);
    let mut p = crate::brokers::Running::spawn(cmd);
    p.stdout_line(&format!("ready {w}")).await;
    let t = client(url).await;
    for i in 0..300 {
        t.send_to_queue(&format!("{w}.IN"), job(i, 200_000))
            .await
            .expect("send");
    }
    let up = crate::brokers::wait_line(&mut p.stdout, |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["role"] == w.as_str() && v["to"].as_u64() > v["from"].as_u64())
    })
    .await;
    assert!(up.is_some(), "no scale-up decision on stdout");
}
