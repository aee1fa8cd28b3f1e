//! Workflows dispatched over the real brokers (Mosquitto and RabbitMQ of this machine) to
//! task roles served by three `wasmflo participant` worker processes: the seeds'
//! examples through `wasmflo task --broker`, two workflows at once, a failing task named
//! with a non-zero exit, and a worker killed (SIGKILL) mid-run with every result still
//! correct. Each test has its own role prefix, so runs never share a queue.

use std::time::Duration;

use serde_json::{Value, json};
use wasmflo_host::workflow::reference::{builtin, evaluate};
use wasmflo_host::workflow::{DispatchOptions, Dispatcher, parse};

use wasmflo_host::transport::{Binding, BindingKind};

use crate::brokers::{AMQP, MQTT, Running, broker, cli, client, participant, role};

/// The task roles every worker serves.
pub(crate) const TASKS: [&str; 5] = ["add", "sub", "mul", "xsum", "tsum"];
/// How long a workflow run may take in these tests.
pub(crate) const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// `n` worker processes each serving every task role under `prefix`; on MQTT they split
/// each role's calls through a shared subscription, as consumers of an AMQP queue do.
async fn workers(url: &str, prefix: &str, n: usize) -> Vec<Running> {
    let roles: Vec<String> = TASKS
        .iter()
        .map(|t| {
            let mut component: Vec<char> = t.chars().collect();
            component[0] = component[0].to_ascii_uppercase();
            format!(
                "{prefix}{t}=task/{}",
                component.into_iter().collect::<String>()
            )
        })
        .collect();
    let mut running = Vec::new();
    for i in 0..n {
        let url = if url.starts_with("mqtt") {
            format!("{url}?shared=wf&clean=true&client_id=wasmflo-{prefix}w{i}")
        } else {
            url.to_string()
        };
        running.push(participant(&url, &roles));
    }
    for worker in &mut running {
        for t in TASKS {
            worker.stdout_line(&format!("ready {prefix}{t}")).await;
        }
    }
    running
}

/// `wasmflo task --broker URL --role-prefix PREFIX EXPR` with short timeouts.
fn task(url: &str, prefix: &str, expr: &str) -> std::process::Command {
    let mut c = cli();
    c.args(["task", "--broker", url, "--role-prefix", prefix])
        .args(["--timeout", "3s", "--retries", "3", "--backoff", "50ms"])
        .arg(expr);
    c
}

/// Runs `wasmflo task` to its end and returns (success, stdout, stderr).
async fn run_task(url: &str, prefix: &str, expr: &str) -> (bool, String, String) {
    let mut cmd = task(url, prefix, expr);
    let out = tokio::time::timeout(
        RUN_DEADLINE,
        tokio::task::spawn_blocking(move || cmd.output().expect("run wasmflo task")),
    )
    .await
    .unwrap_or_else(|_| panic!("`wasmflo task {expr}` ends within {RUN_DEADLINE:?}"))
    .expect("join");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The seeds' examples, two workflows at once and a failing task, through the CLI.
async fn workflows_over_workers(url: &str) {
    let prefix = format!("{}-", role("wf"));
    let _workers = workers(url, &prefix, 3).await;
    seeds_examples(url, &prefix).await;
}

/// The seeds' examples, two workflows at once and a failing task, through
/// `wasmflo task --broker URL --role-prefix PREFIX`, on workers already serving the task
/// roles under `prefix`.
pub(crate) async fn seeds_examples(url: &str, prefix: &str) {
    let prefix = prefix.to_string();
    let sums = (0..10)
        .map(|i| format!("add({i}, {i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let doubled: Vec<i64> = (0..10).map(|i| 2 * i).collect();
    let cases = [
        ("add(4, 4) | mul(8) | mul(10)".to_string(), json!(640)),
        ("group(add(2, 2), add(4, 4))".to_string(), json!([4, 8])),
        (format!("chord(group({sums}), tsum())"), json!(90)),
        (
            "xsum.map([range(10), range(100)])".to_string(),
            json!([45, 4950]),
        ),
        (
            "add.starmap(zip(range(10), range(10)))".to_string(),
            json!(doubled),
        ),
        ("sub(10, 2) | sub(1)".to_string(), json!(7)),
        ("sub(2, 2) | add(5)".to_string(), json!(5)),
    ];
    for (expr, want) in cases {
        let (ok, stdout, stderr) = run_task(url, &prefix, &expr).await;
        assert!(ok, "{expr}: {stderr}");
        let got: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
        assert_eq!(got, want, "{expr}");
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
    }
    for (n, lists) in [(10, 10), (25, 4)] {
        let expr = format!("add.chunks(zip(range(100), range(100)), {n})");
        let (ok, stdout, stderr) = run_task(url, &prefix, &expr).await;
        assert!(ok, "{expr}: {stderr}");
        let got: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
        let got = got.as_array().expect("a list of lists");
        assert_eq!(got.len(), lists, "{expr}");
        assert!(got.iter().all(|l| l.as_array().map(Vec::len) == Some(n)));
        assert_eq!(got[lists - 1][n - 1], json!(198));
    }

    // Two workflows at once, from two processes, over the same roles.
    let a = "group(add.starmap(zip(range(300), range(300))), add(1, 1) | mul(3))";
    let b = "group(add.starmap(zip(range(300), range(1000, 1300))), add(5, 5) | mul(7))";
    let (ra, rb) = tokio::join!(run_task(url, &prefix, a), run_task(url, &prefix, b));
    for ((ok, stdout, stderr), expr) in [(ra, a), (rb, b)] {
        assert!(ok, "{expr}: {stderr}");
        let want = evaluate(&parse(expr).expect("parses"), &builtin).expect("evaluates");
        let got: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
        assert_eq!(got, want, "{expr}");
    }

    // A failing task: named, non-zero exit, through the dead letter (not a timeout).
    let (ok, stdout, stderr) = run_task(url, &prefix, "add(1, 1) | sub(\"x\")").await;
    assert!(!ok, "a failed workflow exits non-zero: {stdout}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(error.contains("task sub(2, \"x\") failed"), "{stderr}");
    assert!(error.contains("invalid-input"), "{stderr}");
    let (ok, _, stderr) = run_task(
        url,
        &prefix,
        "chord(group(add(1, 1), add(1, \"y\")), tsum())",
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("chord failed: a header member failed: task add(1, \"y\") failed"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_workflows_run_on_worker_processes() {
    if let Some(url) = broker(MQTT) {
        workflows_over_workers(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_workflows_run_on_worker_processes() {
    if let Some(url) = broker(AMQP) {
        workflows_over_workers(url).await;
    }
}

/// A worker killed with SIGKILL while a group of calls runs: its calls are redone by
/// the others (AMQP: the broker requeues them; MQTT: the dispatcher's retry after the
/// timeout), and every result is right.
async fn killed_worker_is_survived(url: &str) {
    let prefix = format!("{}-", role("wfk"));
    let mut workers = workers(url, &prefix, 3).await;
    let victim = &mut workers[0];
    survives_a_kill(url, &prefix, || victim.kill()).await;
}

/// A group of 3,000 `add` calls dispatched to the workers serving the task roles under
/// `prefix`; `kill` is called once a tenth of the results came out, and every result
/// must still be right. Returns the number of calls the dispatcher retried.
pub(crate) async fn survives_a_kill(url: &str, prefix: &str, kill: impl FnOnce()) -> u64 {
    const N: usize = 3_000;
    let prefix = prefix.to_string();
    let t = client(url).await;
    // A reader of the results on its own connection (not the dispatcher's, whose
    // subscriptions to the topic it would share), through a private queue.
    let probe = client(url).await;
    let tap = format!("{prefix}tap");
    probe
        .declare_private_queue(&tap)
        .await
        .expect("declare tap");
    probe
        .bind(&Binding {
            src: format!("{prefix}add.OUT"),
            tgt: tap.clone(),
            kind: BindingKind::PubSub,
        })
        .await
        .expect("bind tap");
    let mut outputs = probe.subscribe(&tap).await.expect("tap");
    let options = DispatchOptions {
        timeout: Duration::from_secs(2),
        retries: 5,
        backoff: Duration::from_millis(50),
        max_in_flight: 128,
        role_prefix: prefix.clone(),
        ..DispatchOptions::default()
    };
    let dispatcher = Dispatcher::new(t.clone(), options);
    let sig = parse(&format!("add.starmap(zip(range({N}), range({N})))")).expect("parses");
    let want = evaluate(&sig, &builtin).expect("evaluates");
    let run = {
        let (d, sig) = (dispatcher.clone(), sig.clone());
        tokio::spawn(async move { d.run(&sig).await })
    };
    // Mid-run: once a tenth of the results came out, the first worker dies.
    for _ in 0..N / 10 {
        let d = tokio::time::timeout(RUN_DEADLINE, outputs.next())
            .await
            .expect("results come out")
            .expect("open");
        d.ack();
    }
    assert!(!run.is_finished(), "the kill lands mid-run");
    kill();
    drop((outputs, probe));
    let got = tokio::time::timeout(RUN_DEADLINE, run)
        .await
        .expect("the workflow completes without the killed worker")
        .expect("join")
        .expect("the workflow succeeds");
    assert_eq!(got, want);
    let retried = dispatcher.retries();
    eprintln!("{url} ({prefix}*): {N} calls, worker killed mid-run, {retried} retried");
    retried
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_workflow_survives_a_killed_worker() {
    if let Some(url) = broker(MQTT) {
        killed_worker_is_survived(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_workflow_survives_a_killed_worker() {
    if let Some(url) = broker(AMQP) {
        killed_worker_is_survived(url).await;
    }
}
