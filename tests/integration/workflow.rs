//! Workflows over real task components in-process: the seeds' examples, Celery's
//! semantics against Broccoli's, a property test against the reference evaluator,
//! failures, timeouts with retries, and concurrent workflows.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wasmflo_host::component::{Resolver, components_dir};
use wasmflo_host::workflow::dispatch::CORRELATION_ID;
use wasmflo_host::workflow::random::{self, Rng};
use wasmflo_host::workflow::reference::{builtin, evaluate};
use wasmflo_host::workflow::{DispatchOptions, LocalWorkflows, WorkflowError, parse};

use crate::support::*;

async fn workflows(options: DispatchOptions) -> LocalWorkflows {
    let resolver = Resolver::new(components_dir(), repo());
    LocalWorkflows::start(Arc::clone(loader()), resolver, options)
        .await
        .expect("workflows start")
}

async fn run(w: &mut LocalWorkflows, expr: &str) -> Result<Value, WorkflowError> {
    tokio::time::timeout(DEADLINE, w.run_expr(expr))
        .await
        .expect("the workflow ends within the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_seed_examples_give_the_seeds_answers() {
    let mut w = workflows(DispatchOptions::default()).await;
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
        // Celery, not Broccoli: prepend, keep falsy results.
        ("sub(10, 2) | sub(1)".to_string(), json!(7)),
        ("sub(2, 2) | add(5)".to_string(), json!(5)),
    ];
    for (expr, expected) in cases {
        assert_eq!(run(&mut w, &expr).await.expect(&expr), expected, "{expr}");
    }
    // 100 pairs in chunks of 10: 10 lists of 10; chunks of 25: 4 lists.
    let tens = run(&mut w, "add.chunks(zip(range(100), range(100)), 10)")
        .await
        .expect("chunks of 10");
    let tens = tens.as_array().expect("a list");
    assert_eq!(tens.len(), 10);
    assert!(tens.iter().all(|c| c.as_array().map(Vec::len) == Some(10)));
    assert_eq!(tens[0], json!([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]));
    let fours = run(&mut w, "chunks(add, zip(range(100), range(100)), 25)")
        .await
        .expect("chunks of 25");
    assert_eq!(fours.as_array().map(Vec::len), Some(4));
    w.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_dispatcher_agrees_with_the_reference_evaluator() {
    let mut w = workflows(DispatchOptions::default()).await;
    let mut rng = Rng::new(0x5eed_0010);
    let (mut compared, mut calls, mut canvases) = (0, 0, 0);
    for _ in 0..300 {
        let sig = random::workflow(&mut rng, 4);
        let text = sig.to_string();
        calls += text.matches('(').count();
        canvases += text.matches("chord(").count() + text.matches("group(").count();
        let expected = evaluate(&sig, &builtin).expect("generated trees do not fail");
        let got = tokio::time::timeout(DEADLINE, w.run(&sig))
            .await
            .expect("within the deadline")
            .unwrap_or_else(|e| panic!("{sig}: {e}"));
        assert_eq!(got, expected, "{sig}");
        compared += 1;
    }
    assert_eq!(compared, 300);
    // The trees are not trivial: thousands of calls, hundreds of groups and chords.
    assert!(
        calls > 2_000 && canvases > 200,
        "{calls} calls, {canvases} groups/chords"
    );
    w.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_dispatcher_fails_where_the_reference_evaluator_fails() {
    let mut w = workflows(DispatchOptions::default()).await;
    let mut rng = Rng::with_failures(0x5eed_f411, 12);
    let (mut failed, mut succeeded) = (0, 0);
    for _ in 0..200 {
        let sig = random::workflow(&mut rng, 4);
        let expected = evaluate(&sig, &builtin);
        let got = tokio::time::timeout(DEADLINE, w.run(&sig))
            .await
            .expect("within the deadline");
        match (&got, &expected) {
            (Ok(g), Ok(e)) => {
                assert_eq!(g, e, "{sig}");
                succeeded += 1;
            }
            (Err(g), Err(e)) => {
                // A chord names the member that failed first in time, which the
                // sequential reference cannot know; everything else fails in call order.
                if !sig.to_string().contains("chord(") {
                    assert_eq!(g.failing_task(), e.failing_task(), "{sig}");
                }
                failed += 1;
            }
            _ => panic!("{sig}: dispatcher {got:?}, reference {expected:?}"),
        }
    }
    assert!(
        failed > 20 && succeeded > 20,
        "{failed} failed, {succeeded} succeeded"
    );
    w.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_failures_name_the_task_and_fail_the_chord() {
    let mut w = workflows(DispatchOptions::default()).await;
    let err = run(&mut w, "add(1, 1) | add(\"x\") | mul(2)")
        .await
        .unwrap_err();
    assert_eq!(err.failing_task(), Some("add(2, \"x\")"), "{err}");
    assert!(err.to_string().contains("invalid-input"), "{err}");
    let err = run(
        &mut w,
        "chord(group(add(1, 1), mul([1], 2), add(2, 2)), tsum())",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, WorkflowError::Chord(_)), "{err}");
    assert_eq!(err.failing_task(), Some("mul([1], 2)"), "{err}");
    // Roles keep working after a failure.
    assert_eq!(run(&mut w, "mul(3, 3)").await.unwrap(), json!(9));
    w.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_lost_task_times_out_then_succeeds_on_retry() {
    let options = DispatchOptions {
        timeout: Duration::from_millis(300),
        retries: 2,
        backoff: Duration::from_millis(10),
        ..DispatchOptions::default()
    };
    let mut w = workflows(options).await;
    w.map_task("flaky", wasmflo_tests::guests::FLAKY);
    assert_eq!(run(&mut w, "flaky(21) | mul(2)").await.unwrap(), json!(42));
    assert_eq!(w.dispatcher().retries(), 1);
    w.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_task_of_a_node_that_dies_is_redone_elsewhere() {
    let options = DispatchOptions {
        backoff: Duration::from_millis(10),
        ..DispatchOptions::default()
    };
    let mut w = workflows(options).await;
    w.ensure_roles(&parse("mul(1, 1)").unwrap()).await.unwrap();
    // A node serving `add` takes the call and dies with it, before any other serves `add`.
    let mut node = w.network().transport().subscribe("add.IN").await.unwrap();
    let d = w.dispatcher().clone();
    let sig = parse("add(1, 2) | mul(3)").unwrap();
    let run = tokio::spawn(async move { d.run(&sig).await });
    let taken = tokio::time::timeout(DEADLINE, node.next())
        .await
        .unwrap()
        .unwrap();
    let call = taken.message.to_json().unwrap();
    assert_eq!(
        (&call["args"], &call["kwargs"]),
        (&json!([1, 2]), &json!({}))
    );
    assert_eq!(
        call["id"].as_str(),
        taken.message.meta(CORRELATION_ID),
        "the id travels in the body and in metadata"
    );
    drop(taken);
    drop(node);
    // Another node serves `add`: the retried call is done there.
    w.ensure_roles(&parse("add(0, 0)").unwrap()).await.unwrap();
    let result = tokio::time::timeout(DEADLINE, run).await.unwrap().unwrap();
    assert_eq!(result.unwrap(), json!(9));
    assert_eq!(w.dispatcher().retries(), 1);
    w.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_without_an_answer_times_out_naming_the_task() {
    let options = DispatchOptions {
        timeout: Duration::from_millis(100),
        retries: 1,
        backoff: Duration::from_millis(10),
        ..DispatchOptions::default()
    };
    let mut w = workflows(options).await;
    // core/Drop serves `ghost`: it takes every call and never answers.
    w.map_task("ghost", "core/Drop");
    let err = run(&mut w, "add(1, 1) | ghost()").await.unwrap_err();
    assert!(
        matches!(err, WorkflowError::TimedOut { attempts: 2, .. }),
        "{err}"
    );
    assert_eq!(err.failing_task(), Some("ghost(2)"));
    w.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_concurrent_runs_never_mix_results() {
    let mut w = workflows(DispatchOptions::default()).await;
    let a = parse("group(add.starmap(zip(range(200), range(200))), add(1, 1) | mul(3))").unwrap();
    let b = parse("group(add.starmap(zip(range(200), range(1000, 1200))), add(5, 5) | mul(7))")
        .unwrap();
    w.ensure_roles(&a).await.unwrap();
    let d = w.dispatcher().clone();
    let runs = (0..8).map(|i| {
        let (d, sig) = (d.clone(), if i % 2 == 0 { a.clone() } else { b.clone() });
        tokio::spawn(async move { (i, d.run(&sig).await) })
    });
    let want_a = evaluate(&a, &builtin).unwrap();
    let want_b = evaluate(&b, &builtin).unwrap();
    for r in futures_util::future::join_all(runs).await {
        let (i, got) = r.unwrap();
        let want = if i % 2 == 0 { &want_a } else { &want_b };
        assert_eq!(&got.unwrap(), want, "run {i}");
    }
    w.shutdown(DEADLINE).await;
}

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmflo-test-cli"));
    c.env(
        "WASMFLO_CACHE_DIR",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmflo-cache"),
    );
    c.env_remove("WASMFLO_COMPONENTS_DIR");
    c
}

#[test]
fn workflow_cli_prints_one_json_line_and_names_failures() {
    let out = cli()
        .args(["task", "add(4,4) | mul(8) | mul(10)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "640\n");

    let out = cli()
        .args(["task", "add(1, 1) | sub(\"x\")"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(error.contains("task sub(2, \"x\") failed"), "{stderr}");

    let out = cli().args(["task", "add(4, 4) |"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("column 12: expected a task call"),
        "{stderr}"
    );

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("workflow-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("chord.json");
    let chord = parse("chord(group(add(2, 2), add(4, 4)), tsum())").unwrap();
    std::fs::write(&file, chord.to_json().to_string()).unwrap();
    let out = cli()
        .args(["task", "--json", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "12\n");

    // A huge range is one line, refused before anything is allocated.
    let out = cli()
        .args(["task", "xsum(range(10000000))"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("column 11: expected at most 1,000,000 items from range() and zip()"),
        "{stderr}"
    );
}
