//! WASI participants: nothing outside the sandbox unless the graph grants it.

use std::path::Path;

use serde_json::{Value, json};
use wasmflo_host::graph::{self, Format, ParseOptions};

use crate::support::*;

/// A graph of one `test/WasiProbe` process named `p` with node `metadata`.
fn probe_graph(metadata: Value) -> wasmflo_host::graph::Graph {
    let g = json!({"processes": {"p": {"component": "test/WasiProbe", "metadata": metadata}},
                   "connections": []});
    graph::parse(&g.to_string(), Format::Json, &ParseOptions::default()).expect("graph")
}

/// Runs each command through a probe with `metadata` and returns the answers.
async fn ask(metadata: Value, commands: &[&str]) -> Vec<Value> {
    let mut net = start(&probe_graph(metadata), &test_components())
        .await
        .expect("probe graph starts");
    let mut out = net.probe("p.OUT").await;
    let mut answers = Vec::new();
    for c in commands {
        net.send("p.IN", &json!(c).to_string()).await;
        answers.push(next_json(&mut out).await);
    }
    net.stop().await;
    assert!(net.transport.dead_letters().is_empty());
    answers
}

fn data_dir(test: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("sandbox")
        .join(test);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("probe.txt"), "hello").expect("write");
    let _ = std::fs::remove_file(dir.join("written.txt"));
    dir.to_str().expect("utf8").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_granted_by_default() {
    let a = ask(
        json!({}),
        &["env:CARGO_PKG_NAME", "file", "write", "clock", "net"],
    )
    .await;
    assert_eq!(a[0], json!({"env": null}), "no environment");
    assert_eq!(a[1]["file"], Value::Null, "no filesystem: {}", a[1]);
    assert_eq!(a[2]["write"], json!(false), "no filesystem: {}", a[2]);
    assert_eq!(a[3], json!({"clock": 0}), "no clock");
    assert_eq!(
        a[4]["net"],
        json!("PermissionDenied"),
        "no network: {}",
        a[4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_open_exactly_what_they_name() {
    let dir = data_dir("granted");
    let grants = json!({"env": "CARGO_PKG_NAME", "dir": format!("{dir}:/data"),
                        "network": "true", "clock": "true"});
    let a = ask(
        grants,
        &[
            "env:CARGO_PKG_NAME",
            "env:HOME",
            "file",
            "write",
            "clock",
            "net",
        ],
    )
    .await;
    assert_eq!(a[0], json!({"env": env!("CARGO_PKG_NAME")}));
    assert_eq!(a[1], json!({"env": null}), "only the named variable");
    assert_eq!(a[2]["file"], json!("hello"));
    assert_eq!(a[3]["write"], json!(true), "{}", a[3]);
    assert_eq!(
        std::fs::read_to_string(Path::new(&dir).join("written.txt"))
            .ok()
            .as_deref(),
        Some("x")
    );
    assert!(
        a[4]["clock"].as_u64().is_some_and(|s| s > 1_600_000_000),
        "real clock: {}",
        a[4]
    );
    assert_eq!(
        a[5]["net"],
        json!("refused"),
        "reached the (closed) port: {}",
        a[5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_directories_refuse_writes() {
    let dir = data_dir("readonly");
    let a = ask(
        json!({"dir": format!("{dir}:/data:ro")}),
        &["file", "write"],
    )
    .await;
    assert_eq!(a[0]["file"], json!("hello"));
    assert_eq!(a[1]["write"], json!(false), "{}", a[1]);
    assert!(!Path::new(&dir).join("written.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_cannot_be_given_names_the_process() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox/does-not-exist");
    let graph = probe_graph(json!({"dir": format!("{}:/data", missing.display())}));
    let err = start(&graph, &test_components())
        .await
        .err()
        .expect("refused");
    assert!(err.contains("process 'p': cannot grant"), "{err}");
    let graph = probe_graph(json!({"network": "maybe"}));
    let err = start(&graph, &test_components())
        .await
        .err()
        .expect("refused");
    assert!(err.contains("bad value \"maybe\" for 'network'"), "{err}");
}

#[test]
fn an_oversized_definition_is_refused_at_load() {
    let err = loader()
        .load(std::path::Path::new(wasmflo_tests::guests::BIG_DEFINITION))
        .expect_err("1,000 ports are refused");
    let text = err.to_string();
    assert!(
        text.contains("BigDefinition.wasm"),
        "names the file: {text}"
    );
    assert!(text.contains("1000 ports; at most 256"), "{text}");
}
