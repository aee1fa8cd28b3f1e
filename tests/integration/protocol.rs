//! The FBP network protocol runtime: npm `fbp-protocol`'s own conformance suite against
//! `wasmflo run --runtime`, and our own clients checking live edits, errors, secrets and
//! two clients at once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wasmflo_host::component::{Resolver, components_dir};
use wasmflo_host::protocol::{FbpRuntime, RuntimeInfo, ServerOptions, serve, spawn_runtime};
use wasmflo_host::transport::MemoryTransport;

use crate::support::*;

#[test]
fn fbp_protocol_conformance_suite_passes() {
    let oracle = repo().join("target").join("fbp-protocol-oracle");
    let Some(oracle) = npm_oracle(&oracle, "fbp-protocol", "0.9.8") else {
        return;
    };
    let (mut runtime, addr) = runtime_process();
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("a port in {addr}"));

    // fbp-test reads fbp-config.json from $PROJECT_HOME; the runtime is already up.
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fbp-test-{port}"));
    std::fs::create_dir_all(&home).expect("config dir");
    let config = json!({"name": "wasmflo", "command": null, "host": "localhost", "port": port, "collection": "core", "version": "0.7"});
    std::fs::write(home.join("fbp-config.json"), config.to_string()).expect("config");
    let out = Command::new(oracle.join("node_modules/.bin/fbp-test"))
        .current_dir(&oracle)
        .env("PROJECT_HOME", &home)
        .output()
        .expect("fbp-test runs");
    let _ = runtime.kill();
    let _ = runtime.wait();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fbp-test failed:\n{report}");
    assert!(report.contains("22 passing"), "{report}");
    assert!(!report.contains("failing"), "{report}");
}

/// Starts `wasmflo run --runtime 127.0.0.1:0` and returns it with its WebSocket address.
fn runtime_process() -> (std::process::Child, String) {
    let mut runtime = Command::new(env!("CARGO_BIN_EXE_wasmflo-test-cli"))
        .args(["run", "--runtime", "127.0.0.1:0"])
        .env(
            "WASMFLO_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmflo-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runtime starts");
    let mut line = String::new();
    BufReader::new(runtime.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("`listening ws://HOST:PORT`, got {line:?}"))
        .to_string();
    (runtime, addr)
}

#[test]
fn fbp_spec_suites_pass_for_every_example_component() {
    let oracle = repo().join("target").join("fbp-spec-oracle");
    let Some(oracle) = npm_oracle(&oracle, "fbp-spec", "0.8.0") else {
        return;
    };
    let suites = repo().join("tests/fbp-spec");
    let cases: usize = std::fs::read_dir(&suites)
        .unwrap()
        .flatten()
        .map(|f| {
            std::fs::read_to_string(f.path())
                .unwrap()
                .lines()
                .filter(|l| l.trim_start().starts_with("name:") && l.starts_with("  "))
                .count()
        })
        .sum();
    let (mut runtime, addr) = runtime_process();
    let out = Command::new(oracle.join("node_modules/.bin/fbp-spec"))
        .arg("--address")
        .arg(&addr)
        .arg(&suites)
        .output()
        .expect("fbp-spec runs");
    let _ = runtime.kill();
    let _ = runtime.wait();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fbp-spec failed:\n{report}");
    assert!(!report.contains('✗'), "{report}");
    assert_eq!(
        report.matches('✓').count(),
        cases,
        "every case ran and passed:\n{report}"
    );
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol runtime served in this process on a free port.
async fn server(options: ServerOptions) -> (String, tokio::sync::oneshot::Sender<()>) {
    server_on(options, Arc::new(MemoryTransport::new())).await
}

/// A protocol runtime on `transport`, served in this process on a free port.
async fn server_on(
    options: ServerOptions,
    transport: Arc<dyn wasmflo_host::transport::Transport>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("ws://{}", listener.local_addr().unwrap());
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let runtime = FbpRuntime::new(
        RuntimeInfo {
            id: "00000000-0000-4000-8000-000000000000".into(),
            label: "test".into(),
        },
        loader().clone(),
        Resolver::new(components_dir(), repo()),
        transport,
        events.clone(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (handle, _owner) = spawn_runtime(runtime, events);
    tokio::spawn(serve(listener, handle, options, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn connect(addr: &str) -> Ws {
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(addr)
            .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "noflo".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "noflo"
    );
    ws
}

async fn send(ws: &mut Ws, protocol: &str, command: &str, payload: Value) {
    let msg = json!({"protocol": protocol, "command": command, "payload": payload});
    ws.send(Frame::text(msg.to_string())).await.unwrap();
}

async fn send_secret(ws: &mut Ws, protocol: &str, command: &str, payload: Value, secret: &str) {
    let msg =
        json!({"protocol": protocol, "command": command, "payload": payload, "secret": secret});
    ws.send(Frame::text(msg.to_string())).await.unwrap();
}

/// The next message matching `protocol:command`, skipping others.
async fn expect(ws: &mut Ws, protocol: &str, command: &str) -> Value {
    loop {
        let frame = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{protocol}:{command} within the deadline"))
            .expect("open")
            .expect("frame");
        let Frame::Text(text) = frame else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["protocol"] == protocol && v["command"] == command {
            return v["payload"].clone();
        }
        assert_ne!(
            v["command"], "error",
            "unexpected error while waiting for {protocol}:{command}: {v}"
        );
    }
}

/// Builds `a`, `b`, `c` (named `{p}a`, ...: unique on a shared broker), exports `a.in`
/// as `in` and `b.out`, `c.out` as `viab`, `viac`, and starts the network.
async fn build_pipeline(ws: &mut Ws, p: &str) {
    send(ws, "graph", "clear", json!({"id": "g", "main": true})).await;
    expect(ws, "graph", "clear").await;
    for id in ["a", "b", "c"] {
        let id = format!("{p}{id}");
        send(
            ws,
            "graph",
            "addnode",
            json!({"id": id, "component": "core/Repeat", "graph": "g"}),
        )
        .await;
        expect(ws, "graph", "addnode").await;
    }
    send(
        ws,
        "graph",
        "addinport",
        json!({"public": "in", "node": format!("{p}a"), "port": "in", "graph": "g"}),
    )
    .await;
    expect(ws, "graph", "addinport").await;
    for (public, node) in [("viab", "b"), ("viac", "c")] {
        send(
            ws,
            "graph",
            "addoutport",
            json!({"public": public, "node": format!("{p}{node}"), "port": "out", "graph": "g"}),
        )
        .await;
        expect(ws, "graph", "addoutport").await;
    }
    send(ws, "network", "start", json!({"graph": "g"})).await;
    expect(ws, "network", "started").await;
}

async fn packet(ws: &mut Ws, n: u64) {
    send(
        ws,
        "runtime",
        "packet",
        json!({"port": "in", "event": "data", "payload": n, "graph": "g"}),
    )
    .await;
    expect(ws, "runtime", "packetsent").await;
}

/// The next exported-outport packet: (port, payload).
async fn next_packet(ws: &mut Ws) -> (String, Value) {
    let p = expect(ws, "runtime", "packet").await;
    (
        p["port"].as_str().unwrap().to_string(),
        p["payload"].clone(),
    )
}

fn edge(src: &str, tgt: &str) -> Value {
    json!({"src": {"node": src, "port": "out"}, "tgt": {"node": tgt, "port": "in"}, "graph": "g"})
}

/// Live edits on `transport`: each takes effect for the next message after its reply.
async fn edits_take_effect(transport: Arc<dyn wasmflo_host::transport::Transport>, p: &str) {
    let (addr, _stop) = server_on(ServerOptions::default(), transport).await;
    let mut ws = connect(&addr).await;
    build_pipeline(&mut ws, p).await;
    let (a, b, c, d) = (
        format!("{p}a"),
        format!("{p}b"),
        format!("{p}c"),
        format!("{p}d"),
    );

    // a -> b: after the reply, the next message reaches b.
    send(&mut ws, "graph", "addedge", edge(&a, &b)).await;
    expect(&mut ws, "graph", "addedge").await;
    packet(&mut ws, 1).await;
    assert_eq!(next_packet(&mut ws).await, ("viab".into(), json!(1)));

    // Rewire a -> c instead: the next message goes to c.
    send(&mut ws, "graph", "removeedge", edge(&a, &b)).await;
    expect(&mut ws, "graph", "removeedge").await;
    send(&mut ws, "graph", "addedge", edge(&a, &c)).await;
    expect(&mut ws, "graph", "addedge").await;
    packet(&mut ws, 2).await;
    assert_eq!(next_packet(&mut ws).await, ("viac".into(), json!(2)));

    // A node added while running works at once; removing it removes its edges.
    send(
        &mut ws,
        "graph",
        "addnode",
        json!({"id": d, "component": "core/Repeat", "graph": "g"}),
    )
    .await;
    expect(&mut ws, "graph", "addnode").await;
    send(&mut ws, "graph", "addedge", edge(&c, &d)).await;
    expect(&mut ws, "graph", "addedge").await;
    send(
        &mut ws,
        "graph",
        "removenode",
        json!({"id": d, "graph": "g"}),
    )
    .await;
    let removed = expect(&mut ws, "graph", "removeedge").await;
    assert_eq!(removed["tgt"]["node"], json!(d));
    expect(&mut ws, "graph", "removenode").await;
    packet(&mut ws, 3).await;
    assert_eq!(next_packet(&mut ws).await, ("viac".into(), json!(3)));

    send(&mut ws, "component", "getsource", json!({"name": "g"})).await;
    let source = expect(&mut ws, "component", "source").await;
    let graph: Value = serde_json::from_str(source["code"].as_str().unwrap()).unwrap();
    assert!(graph["processes"][&c].is_object(), "{graph}");
    assert!(graph["processes"].get(&d).is_none(), "{graph}");
    send(&mut ws, "network", "stop", json!({"graph": "g"})).await;
    expect(&mut ws, "network", "stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_take_effect_in_the_running_network() {
    edits_take_effect(Arc::new(MemoryTransport::new()), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_take_effect_on_mqtt() {
    if let Some(url) = crate::brokers::broker(crate::brokers::MQTT) {
        let p = crate::brokers::role("fbp");
        edits_take_effect(crate::brokers::client(url).await, &p).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_take_effect_on_amqp() {
    if let Some(url) = crate::brokers::broker(crate::brokers::AMQP) {
        let p = crate::brokers::role("fbp");
        edits_take_effect(crate::brokers::client(url).await, &p).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_wrong_messages_get_clear_errors() {
    let (addr, _stop) = server(ServerOptions::default()).await;
    let mut ws = connect(&addr).await;
    ws.send(Frame::text("{not json")).await.unwrap();
    let e = expect(&mut ws, "runtime", "error").await;
    assert!(e["message"].as_str().unwrap().contains("not JSON"), "{e}");
    ws.send(Frame::text(r#"{"protocol":"graph"}"#))
        .await
        .unwrap();
    let e = expect(&mut ws, "graph", "error").await;
    assert!(e["message"].as_str().unwrap().contains("'command'"), "{e}");
    send(&mut ws, "graph", "clear", json!({"id": "g"})).await;
    expect(&mut ws, "graph", "clear").await;
    send(
        &mut ws,
        "graph",
        "addnode",
        json!({"id": "x", "component": "core/Nope", "graph": "g"}),
    )
    .await;
    let e = expect(&mut ws, "graph", "error").await;
    assert!(e["message"].as_str().unwrap().contains("core/Nope"), "{e}");
    send(&mut ws, "graph", "addedge", json!({"src": {"node": "ghost", "port": "out"}, "tgt": {"node": "x", "port": "in"}, "graph": "g"})).await;
    let e = expect(&mut ws, "graph", "error").await;
    assert!(e["message"].as_str().unwrap().contains("ghost"), "{e}");
    send(&mut ws, "bogus", "thing", json!({})).await;
    expect(&mut ws, "bogus", "error").await;
    // Still serving.
    send(&mut ws, "runtime", "getruntime", json!({})).await;
    let rt = expect(&mut ws, "runtime", "runtime").await;
    assert_eq!(rt["type"], "wasmflo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_separate_readers_from_writers_and_both_clients_see_changes() {
    let options = ServerOptions {
        secret: Some("write".into()),
        read_secret: Some("read".into()),
    };
    let (addr, _stop) = server(options).await;
    let mut writer = connect(&addr).await;
    let mut reader = connect(&addr).await;
    let mut stranger = connect(&addr).await;

    send(&mut stranger, "runtime", "getruntime", json!({})).await;
    let rt = expect(&mut stranger, "runtime", "runtime").await;
    assert_eq!(rt["capabilities"], json!([]), "no secret, no capabilities");
    send(&mut stranger, "graph", "clear", json!({"id": "g"})).await;
    let e = expect(&mut stranger, "graph", "error").await;
    assert!(
        e["message"].as_str().unwrap().contains("access denied"),
        "{e}"
    );

    // Clients receive broadcasts once they have shown a secret.
    send_secret(&mut reader, "runtime", "getruntime", json!({}), "read").await;
    let rt = expect(&mut reader, "runtime", "runtime").await;
    assert!(
        !rt["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "protocol:graph")
    );
    send_secret(&mut writer, "graph", "clear", json!({"id": "g"}), "write").await;
    expect(&mut writer, "graph", "clear").await;
    // The reader sees the writer's change broadcast...
    expect(&mut reader, "graph", "clear").await;
    send_secret(
        &mut writer,
        "graph",
        "addnode",
        json!({"id": "r", "component": "core/Repeat", "graph": "g"}),
        "write",
    )
    .await;
    expect(&mut reader, "graph", "addnode").await;
    // ...may read...
    send_secret(
        &mut reader,
        "network",
        "getstatus",
        json!({"graph": "g"}),
        "read",
    )
    .await;
    expect(&mut reader, "network", "status").await;
    // ...but not change anything.
    send_secret(
        &mut reader,
        "graph",
        "removenode",
        json!({"id": "r", "graph": "g"}),
        "read",
    )
    .await;
    let e = expect(&mut reader, "graph", "error").await;
    assert!(e["message"].as_str().unwrap().contains("only read"), "{e}");
    // The stranger never saw the graph: its next message is the answer to its question.
    send(&mut stranger, "runtime", "getruntime", json!({})).await;
    let next = tokio::time::timeout(DEADLINE, stranger.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(next.to_text().unwrap()).unwrap();
    assert_eq!(v["command"], "runtime", "no broadcast leaked: {v}");
}

#[test]
fn the_web_view_shows_counts_rising_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(chromium) = chromium else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "chromium is required in CI"
        );
        eprintln!("notice: skipping the web view test: no chromium");
        return;
    };
    let mut runtime = Command::new(env!("CARGO_BIN_EXE_wasmflo-test-cli"))
        .arg("run")
        .arg(repo().join("graphs/temperature.fbp"))
        .args(["--runtime", "127.0.0.1:0", "--ui", "127.0.0.1:0"])
        .env(
            "WASMFLO_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmflo-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runtime starts");
    let mut stdout = BufReader::new(runtime.stdout.take().expect("stdout"));
    let mut ui = String::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a line");
        if let Some(url) = line.trim().strip_prefix("ui ") {
            ui = url.to_string();
        }
    }
    assert!(ui.starts_with("http://127.0.0.1:"), "{ui}");
    let stderr = runtime.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&dir).expect("dir");
    let shot = dir.join("web-view.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,900",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("{ui}/"))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The page told the server it saw the edge counts rise before its load event ended.
    let saw = loop {
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("the page reports within the deadline");
        if line.contains("ui: a page saw edge counts rise") {
            break line;
        }
    };
    let _ = runtime.kill();
    let _ = runtime.wait();
    assert!(saw.contains("total="), "{saw}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG screenshot at {}",
        shot.display()
    );
    eprintln!("web view screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_source_builds_rust_and_refuses_other_languages() {
    let (addr, _stop) = server(ServerOptions::default()).await;
    let mut ws = connect(&addr).await;
    send(
        &mut ws,
        "component",
        "getsource",
        json!({"name": "core/Repeat"}),
    )
    .await;
    let source = expect(&mut ws, "component", "source").await;
    assert_eq!(source["language"], "rust");
    let code = source["code"].as_str().unwrap().to_string();
    assert!(code.contains("core/Repeat"));

    // The same code back: built with cargo (nothing to recompile) and announced.
    send(
        &mut ws,
        "component",
        "source",
        json!({"name": "Repeat", "library": "core", "language": "rust", "code": code}),
    )
    .await;
    let component = expect(&mut ws, "component", "component").await;
    assert_eq!(component["name"], "core/Repeat");
    assert_eq!(component["inPorts"][0]["id"], "in");

    send(
        &mut ws,
        "component",
        "source",
        json!({"name": "Repeat", "library": "core", "language": "python", "code": "x"}),
    )
    .await;
    let e = expect(&mut ws, "component", "error").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no toolchain for language 'python'"),
        "{e}"
    );
    send(
        &mut ws,
        "component",
        "source",
        json!({"name": "nope/Missing", "language": "rust", "code": "x"}),
    )
    .await;
    let e = expect(&mut ws, "component", "error").await;
    assert!(
        e["message"].as_str().unwrap().contains("nope/Missing"),
        "{e}"
    );
}
