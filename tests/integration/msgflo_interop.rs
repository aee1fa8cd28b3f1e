//! Interop with the real MsgFlo Node.js participant (npm `msgflo-nodejs` 0.11.1, the one
//! `msgflo` 0.12.3 installs): one graph of WASM and Node.js participants on each broker,
//! `wasm OUT -> IN node OUT -> IN wasm`, 1,000 messages through, so 1,000 cross from
//! wasmflo to MsgFlo and 1,000 back.
//!
//! The npm packages live in `$WASMFLO_MSGFLO_ORACLE`, else `<repo>/target/msgflo-oracle`,
//! installed there with npm when missing (`.ci/run` installs them in its `oracles`
//! stage). Without node/npm the tests fail under `CI=true` and skip elsewhere.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use wasmflo_host::message::Message;
use wasmflo_host::transport::{Binding, BindingKind};

use crate::brokers::{AMQP, MQTT, Running, broker, client, consume, next, participant, role};
use crate::support::repo;

const MESSAGES: u64 = 1000;
const PACKAGES: [&str; 4] = [
    "msgflo@0.12.3",
    "msgflo-nodejs@0.11.1",
    "mqtt@2",
    "amqplib@0.5",
];

fn oracle_dir() -> Option<PathBuf> {
    // Tests run in parallel: two concurrent `npm install`s into one folder break it.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = std::env::var_os("WASMFLO_MSGFLO_ORACLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target").join("msgflo-oracle"));
    let unavailable = |why: String| {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the MsgFlo oracle is required in CI: {why}");
        }
        eprintln!("notice: skipping MsgFlo interop: {why}");
        None
    };
    let installed = ["msgflo-nodejs", "amqplib", "mqtt"].iter().all(|p| {
        dir.join("node_modules")
            .join(p)
            .join("package.json")
            .exists()
    });
    if !installed {
        std::fs::create_dir_all(&dir).expect("oracle dir");
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .args(PACKAGES)
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => return unavailable(format!("npm install {PACKAGES:?} failed: {other:?}")),
        }
    }
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        return unavailable("`node` is not available".into());
    }
    Some(dir)
}

/// MsgFlo's own example Repeat participant, run by `msgflo-nodejs` as `role`.
fn node_repeat(dir: &std::path::Path, url: &str, role: &str) -> Running {
    let modules = dir.join("node_modules");
    let mut cmd = Command::new(modules.join(".bin").join("msgflo-nodejs"));
    cmd.args(["--name", role, "--broker", url])
        .arg(modules.join("msgflo-nodejs/examples/Repeat.coffee"))
        .env("MSGFLO_DISCOVERY_PERIOD", "1");
    Running::spawn(cmd)
}

async fn wasm_node_wasm(url: &str) {
    let Some(dir) = oracle_dir() else { return };
    let (first, node, last) = (role("wfirst"), role("node"), role("wlast"));
    let t = client(url).await;
    let mut out = consume(&t, &format!("{last}.OUT")).await;

    let mut n = node_repeat(&dir, url, &node);
    n.stdout_line(&format!("{node} connected to {url}")).await;
    let mut w = participant(
        url,
        &[
            format!("{first}=core/Repeat"),
            format!("{last}=core/Repeat"),
        ],
    );
    w.stdout_line(&format!("ready {first}")).await;
    w.stdout_line(&format!("ready {last}")).await;

    // The graph's edges, bound as a coordinator binds them (on MQTT this test process
    // forwards, as MsgFlo's coordinator does).
    for (src, tgt) in [
        (format!("{first}.OUT"), format!("{node}.IN")),
        (format!("{node}.OUT"), format!("{last}.IN")),
    ] {
        t.bind(&Binding {
            src,
            tgt,
            kind: BindingKind::PubSub,
        })
        .await
        .expect("bind");
    }
    for i in 0..MESSAGES {
        t.send_to_queue(
            &format!("{first}.IN"),
            Message::json_text(format!(r#"{{"n":{i}}}"#)),
        )
        .await
        .expect("send");
    }
    let mut seen = BTreeSet::new();
    while seen.len() < MESSAGES as usize {
        let v: serde_json::Value =
            serde_json::from_slice(&next(&mut out).await.data).expect("JSON");
        seen.insert(v["n"].as_u64().expect("n"));
    }
    assert_eq!(seen, (0..MESSAGES).collect::<BTreeSet<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_wasm_and_msgflo_nodejs_in_one_graph() {
    if let Some(url) = broker(AMQP) {
        wasm_node_wasm(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_wasm_and_msgflo_nodejs_in_one_graph() {
    if let Some(url) = broker(MQTT) {
        wasm_node_wasm(url).await;
    }
}

// --- msgflo-python (PyPI msgflo 0.4.1; MQTT only: its AMQP library is Python 2 only) ---

const PYTHON_MESSAGES: u64 = 50;

/// A Python Repeat, as msgflo-python's own example writes it.
const PY_REPEAT: &str = r#"
import msgflo

class Repeat(msgflo.Participant):
    def __init__(self, role):
        d = {'component': 'PythonRepeat', 'label': 'Repeat input data without change'}
        msgflo.Participant.__init__(self, d, role)

    def process(self, inport, msg):
        self.send('out', msg.data)
        self.ack(msg)
"#;

/// A venv with PyPI `msgflo` in `$WASMFLO_MSGFLO_PYTHON`, else `<repo>/target/msgflo-python`.
fn python_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WASMFLO_MSGFLO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target").join("msgflo-python"));
    let unavailable = |why: String| {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("msgflo-python is required in CI: {why}");
        }
        eprintln!("notice: skipping msgflo-python interop: {why}");
        None
    };
    if !dir.join("bin").join("msgflo-python").exists() {
        let venv = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&dir)
            .status();
        if !venv.is_ok_and(|s| s.success()) {
            return unavailable("cannot create a Python venv".into());
        }
        let pip = Command::new(dir.join("bin").join("pip"))
            .args(["install", "-q", "msgflo==0.4.1"])
            .status();
        if !pip.is_ok_and(|s| s.success()) {
            return unavailable("pip install msgflo==0.4.1 failed".into());
        }
    }
    Some(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_wasm_and_msgflo_python_in_one_graph() {
    let Some(url) = broker(MQTT) else { return };
    let Some(venv) = python_dir() else { return };
    let (first, py, last) = (role("wfirst"), role("py"), role("wlast"));
    let t = client(url).await;
    let mut fbp = consume(&t, "fbp").await;
    let mut out = consume(&t, &format!("{last}.OUT")).await;

    let module = std::env::temp_dir().join(format!("{py}_repeat.py"));
    std::fs::write(&module, PY_REPEAT).expect("write module");
    let mut cmd = Command::new(venv.join("bin").join("msgflo-python"));
    cmd.arg(&module).arg(&py).env("MSGFLO_BROKER", url);
    let _python = Running::spawn(cmd);
    // Its discovery is the truth for its queues (msgflo-python names them `role/port`).
    let discovered = loop {
        let msg = next(&mut fbp).await;
        if let Ok(p) = wasmflo_host::discovery::Participant::parse(&msg.data)
            && p.role == py
        {
            break p;
        }
    };
    assert_eq!(
        discovered.inport_queue("in"),
        Some(format!("{py}/in").as_str())
    );

    let mut w = participant(
        url,
        &[
            format!("{first}=core/Repeat"),
            format!("{last}=core/Repeat"),
        ],
    );
    w.stdout_line(&format!("ready {first}")).await;
    w.stdout_line(&format!("ready {last}")).await;
    for (src, tgt) in [
        (
            format!("{first}.OUT"),
            discovered.inport_queue("in").expect("in").to_string(),
        ),
        (
            discovered.outport_queue("out").expect("out").to_string(),
            format!("{last}.IN"),
        ),
    ] {
        t.bind(&Binding {
            src,
            tgt,
            kind: BindingKind::PubSub,
        })
        .await
        .expect("bind");
    }
    for i in 0..PYTHON_MESSAGES {
        t.send_to_queue(&format!("{first}.IN"), Message::json_text(i.to_string()))
            .await
            .expect("send");
    }
    let mut seen = BTreeSet::new();
    while seen.len() < PYTHON_MESSAGES as usize {
        let n: u64 = serde_json::from_slice(&next(&mut out).await.data).expect("number");
        seen.insert(n);
    }
    assert_eq!(seen, (0..PYTHON_MESSAGES).collect::<BTreeSet<_>>());
    let _ = std::fs::remove_file(module);
}

// --- the real msgflo-setup binding wasmflo participants -------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn amqp_msgflo_setup_discover_binds_wasmflo_participants() {
    let Some(url) = broker(AMQP) else { return };
    let Some(dir) = oracle_dir() else { return };
    let (a, b) = (role("msa"), role("msb"));
    let t = client(url).await;
    let mut out = consume(&t, &format!("{b}.OUT")).await;
    let mut w = participant(
        url,
        &[format!("{a}=core/Repeat"), format!("{b}=core/Repeat")],
    );
    w.stdout_line(&format!("ready {a}")).await;
    w.stdout_line(&format!("ready {b}")).await;

    let graph = std::env::temp_dir().join(format!("{a}.fbp"));
    std::fs::write(
        &graph,
        format!("{a}(core/Repeat) OUT -> IN {b}(core/Repeat)\n"),
    )
    .expect("write graph");
    // `--discover` takes a value: without one it would swallow the graph argument.
    let setup = Command::new(dir.join("node_modules/.bin/msgflo-setup"))
        .args(["--broker", url, "--discover", "true", "--timeout", "20"])
        .arg(&graph)
        .output()
        .expect("msgflo-setup runs");
    let stdout = String::from_utf8_lossy(&setup.stdout);
    assert!(
        setup.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    assert!(stdout.contains(&format!("{a}.OUT -> {b}.IN")), "{stdout}");

    t.send_to_queue(
        &format!("{a}.IN"),
        Message::json_text(r#""bound by msgflo""#),
    )
    .await
    .expect("send");
    assert_eq!(&next(&mut out).await.data[..], br#""bound by msgflo""#);
    let _ = std::fs::remove_file(graph);
}
