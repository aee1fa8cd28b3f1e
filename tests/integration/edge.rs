//! The edge host (`wasmflo-edge`, here under the name `wasmflo-edge-test-cli`) as a MsgFlo
//! participant on the real Mosquitto, side by side with the server host's
//! `wasmflo participant`: the same inputs give the same outputs, dead letters and
//! discovery; faults are dead-lettered and the edge host keeps serving; signed
//! deployments from `wasmflo deploy` swap its code, and bad ones are rejected.
//!
//! Every expected value comes from the server host, run in the same test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::{Value, json};
use wasmflo_host::deploy::{SigningKey, deliver};
use wasmflo_host::discovery::Participant;
use wasmflo_host::message::Message;
use wasmflo_host::transport::{BrokerUrl, MqttTransport, Subscription, Transport};

use crate::brokers::{
    MQTT, Running, broker, cli, client, consume, hostile, next, participant, role, scratch,
};
use crate::support::DEADLINE;

pub(crate) fn edge(spec: &str, extra: &[&str]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflo-edge-test-cli"));
    cmd.arg(spec).args(["--broker", MQTT]).args(extra);
    cmd.env("MSGFLO_DISCOVERY_PERIOD", "1");
    Running::spawn(cmd)
}

pub(crate) fn component(name: &str) -> PathBuf {
    wasmflo_host::component::components_dir().join(format!("{name}.wasm"))
}

/// What one participant published, in order per topic, with its role replaced by `R`.
#[derive(Debug, PartialEq)]
struct Published {
    out: Vec<Value>,
    error: Vec<Value>,
    /// Per inport, in the order given to [`Probes::new`].
    dead: Vec<Vec<Value>>,
}

/// Probes of one role's `out` and `error` ports and its inports' dead-letter topics.
struct Probes {
    role: String,
    ports: Vec<String>,
    out: Subscription,
    error: Subscription,
    dead: Vec<Subscription>,
}

impl Probes {
    async fn new(t: &Arc<dyn Transport>, role: &str, inports: &[&str]) -> Probes {
        let mut dead = Vec::new();
        for port in inports {
            dead.push(consume(t, &format!("dead-{role}.{}", port.to_ascii_uppercase())).await);
        }
        Probes {
            role: role.to_string(),
            ports: inports.iter().map(|p| p.to_string()).collect(),
            out: consume(t, &format!("{role}.OUT")).await,
            error: consume(t, &format!("{role}.ERROR")).await,
            dead,
        }
    }

    /// Everything published up to and including the output for `sentinel` (sent on
    /// `role.IN`; `done` recognises its output) and the dead letters of `refused[i]`, a
    /// payload inport `i` refuses: each participant publishes a port's outputs, and
    /// settles a queue's deliveries, in order, so what came before has arrived by then.
    async fn drain(
        &mut self,
        t: &Arc<dyn Transport>,
        sentinel: &str,
        done: impl Fn(&Value) -> bool,
        refused: &[&str],
    ) -> Published {
        t.send_to_queue(
            &format!("{}.IN", self.role),
            Message::json_text(sentinel.to_string()),
        )
        .await
        .expect("send sentinel");
        let mut out = Vec::new();
        loop {
            let v = normalise(&self.role, &next(&mut self.out).await);
            let last = done(&v);
            out.push(v);
            if last {
                break;
            }
        }
        let mut dead = Vec::new();
        for ((port, sub), payload) in self.ports.iter().zip(&mut self.dead).zip(refused) {
            t.send_to_queue(
                &format!("{}.{}", self.role, port.to_ascii_uppercase()),
                Message::json_text(payload.to_string()),
            )
            .await
            .expect("send refused");
            let want: Value = serde_json::from_str(payload)
                .unwrap_or_else(|_| Value::String(payload.to_string()));
            let mut letters = Vec::new();
            loop {
                let v = normalise(&self.role, &next(sub).await);
                let last = v["payload"] == want;
                letters.push(v);
                if last {
                    break;
                }
            }
            dead.push(letters);
        }
        let mut error = take_ready(&self.role, &mut self.error);
        // Each inport is its own queue: failures of different ports interleave as they
        // arrive, on either host. Compared per port, in order within each.
        error.sort_by(|a, b| a["port"].as_str().cmp(&b["port"].as_str()));
        Published { out, error, dead }
    }
}

/// The messages already received on `sub` (none is awaited).
fn take_ready(role: &str, sub: &mut Subscription) -> Vec<Value> {
    let mut all = Vec::new();
    while let Some(Some(d)) = sub.next().now_or_never() {
        all.push(normalise(role, &d.message));
        d.ack();
    }
    all
}

/// The message as JSON with the role replaced by `R`, and engine-specific trap details
/// (wasmtime's and wasmi's messages differ) cut after the fault kind.
fn normalise(role: &str, msg: &Message) -> Value {
    let text = String::from_utf8_lossy(&msg.data).replace(role, "R");
    let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    for key in ["reason", "error"] {
        if let Some(reason) = v.get(key).and_then(Value::as_str) {
            let parts: Vec<&str> = reason.splitn(3, ": ").collect();
            let engine = ["trap", "timeout", "memory-exhausted", "stack-overflow"];
            if parts.len() == 3 && engine.contains(&parts[1]) {
                v[key] = json!(format!("{}: {}", parts[0], parts[1]));
            }
        }
    }
    v
}

/// Sends `(port, payload)` to both roles in order (each send waits for its PUBACK, so
/// both participants see the same order).
async fn send_all(t: &Arc<dyn Transport>, roles: [&str; 2], inputs: &[(&str, &str)]) {
    for (port, payload) in inputs {
        for r in roles {
            t.send_to_queue(
                &format!("{r}.{}", port.to_ascii_uppercase()),
                Message::json_text(payload.to_string()),
            )
            .await
            .expect("send");
        }
    }
}

/// The discovery of `role` seen on `fbp`, parsed by the server host's discovery code.
async fn discovered(fbp: &mut Subscription, role: &str) -> Participant {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no discovery of {role}"
        );
        let msg = next(fbp).await;
        if let Ok(p) = Participant::parse(&msg.data)
            && p.role == role
        {
            return p;
        }
    }
}

/// `p` with its role and instance id replaced, to compare two participants.
fn anonymous(p: &Participant) -> Value {
    let text = serde_json::to_string(&Participant {
        id: String::new(),
        ..p.clone()
    })
    .expect("JSON");
    serde_json::from_str(&text.replace(&p.role, "R")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_participant_matches_the_server_host_on_mqtt() {
    let Some(url) = broker(MQTT) else { return };
    let (server, edge_role) = (role("sfmt"), role("efmt"));
    let t = client(url).await;
    let mut fbp = consume(&t, "fbp").await;
    let ports = ["in", "unit"];
    let mut probes = [
        Probes::new(&t, &server, &ports).await,
        Probes::new(&t, &edge_role, &ports).await,
    ];

    let mut s = participant(url, &[format!("{server}=temperature/Format")]);
    let path = component("temperature/Format");
    let mut e = edge(&format!("{edge_role}={}", path.display()), &[]);
    s.stdout_line(&format!("ready {server}")).await;
    e.stdout_line(&format!("ready {edge_role}")).await;

    // The server host's discovery code reads the edge host's announcement, and it says
    // what the server host's says.
    let (seen_s, seen_e) = (
        discovered(&mut fbp, &server).await,
        discovered(&mut fbp, &edge_role).await,
    );
    assert!(
        seen_e.id.starts_with(&format!("{edge_role}-")),
        "{seen_e:?}"
    );
    assert_eq!(
        seen_e.inport_queue("in"),
        Some(format!("{edge_role}.IN").as_str())
    );
    assert_eq!(anonymous(&seen_e), anonymous(&seen_s));

    // Parameter ports are served first, so each unit change goes out with the readings
    // after it, and those are drained before the next change.
    let segments: [&[(&str, &str)]; 4] = [
        &[("in", "22.3333")],
        &[
            ("unit", "\"F\""),
            ("in", "22.3333"),
            ("in", "\"hot\""),
            ("unit", "\"X\""),
            ("in", "-40"),
        ],
        &[
            ("unit", "\"K\""),
            ("in", "-0.04"),
            ("in", "1e308"),
            ("in", "not json"),
        ],
        &[("unit", "\"C\""), ("in", "-0.04")],
    ];
    let ends = [
        "Temperature: 100.0 C",
        "Temperature: 212.0 F",
        "Temperature: 373.1 K",
    ];
    let done = |v: &Value| ends.iter().any(|e| v == e);
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for inputs in segments {
        send_all(&t, [&server, &edge_role], inputs).await;
        let refused = ["\"refused\"", "\"refused\""];
        expected.push(probes[0].drain(&t, "99.99", done, &refused).await);
        got.push(probes[1].drain(&t, "99.99", done, &refused).await);
    }
    assert_eq!(got, expected);
    let outputs: Vec<&Value> = expected.iter().flat_map(|p| &p.out).collect();
    assert_eq!(outputs.len(), 9, "{expected:?}");
    assert_eq!(*outputs[2], json!("Temperature: 72.2 F"));
    // "hot", 1e308 in K and not-JSON refused on `in`, "X" on `unit`, plus the probes'
    // own refused payloads: each dead-lettered and reported on `error`.
    let dead: usize = expected.iter().flat_map(|p| &p.dead).map(Vec::len).sum();
    let errors: usize = expected.iter().map(|p| p.error.len()).sum();
    assert_eq!((dead, errors), (4 + 8, 4 + 8), "{expected:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_participant_dead_letters_faults_and_keeps_serving() {
    let Some(url) = broker(MQTT) else { return };
    let (server, edge_role) = (role("shostile"), role("ehostile"));
    let t = client(url).await;
    let ports = ["in", "param"];
    let mut probes = [
        Probes::new(&t, &server, &ports).await,
        Probes::new(&t, &edge_role, &ports).await,
    ];
    let mut s = participant(url, &[format!("{server}={}", hostile())]);
    let mut e = edge(&format!("{edge_role}={}", hostile()), &[]);
    s.stdout_line(&format!("ready {server}")).await;
    e.stdout_line(&format!("ready {edge_role}")).await;

    // A trap poisons the instance: the next one gets the parameter replayed and its
    // count starts again; a nack is the guest's own decision and keeps the instance.
    let inputs = [
        ("param", "5"),
        ("in", "\"a\""),
        ("in", "\"trap\""),
        ("in", "\"b\""),
        ("in", "\"nack\""),
        ("in", "\"c\""),
        ("in", "\"deep\""),
        ("in", "\"d\""),
    ];
    send_all(&t, [&server, &edge_role], &inputs).await;
    let sentinel = r#"{"sentinel":true}"#;
    let done = |v: &Value| v["echo"] == json!({"sentinel": true});
    let refused = ["not json either", "nope"];
    let expected = probes[0].drain(&t, sentinel, done, &refused).await;
    let got = probes[1].drain(&t, sentinel, done, &refused).await;
    assert_eq!(got, expected);
    assert_eq!(
        expected.out[..4],
        [
            json!({"echo": "a", "param": 5, "count": 1}),
            json!({"echo": "b", "param": 5, "count": 1}),
            json!({"echo": "c", "param": 5, "count": 3}),
            json!({"echo": "d", "param": 5, "count": 1}),
        ]
    );
    assert_eq!(
        expected.dead[0][..3]
            .iter()
            .map(|d| d["reason"].clone())
            .collect::<Vec<_>>(),
        [
            json!("process 'R' port 'in': trap"),
            json!("process 'R' port 'in': internal: hostile: nack requested"),
            json!("process 'R' port 'in': stack-overflow"),
        ]
    );
}

/// `wasmflo deploy` with `args`; (exit code, stdout, stderr).
fn deploy(args: &[&str]) -> (i32, String, String) {
    let out = cli()
        .arg("deploy")
        .args(args)
        .args(["--broker", MQTT, "--timeout", "20s"])
        .output()
        .expect("run wasmflo deploy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn keygen(path: &std::path::Path) -> String {
    let _ = std::fs::remove_file(path);
    let out = cli()
        .args(["deploy", "--keygen"])
        .arg(path)
        .output()
        .expect("keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The output `probe` gets for `input` on `role.IN`.
pub(crate) async fn ask(
    t: &Arc<dyn Transport>,
    out: &mut Subscription,
    role: &str,
    input: &str,
) -> Value {
    t.send_to_queue(&format!("{role}.IN"), Message::json_text(input.to_string()))
        .await
        .expect("send");
    serde_json::from_slice(&next(out).await.data).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_deployments_over_mqtt_swap_the_code_and_bad_ones_are_rejected() {
    let Some(url) = broker(MQTT) else { return };
    let r = role("ota");
    let dir = scratch(&r);
    let (key, stranger) = (dir.join("deploy.key"), dir.join("stranger.key"));
    let public = keygen(&key);
    keygen(&stranger);
    assert_eq!(
        std::fs::read_to_string(dir.join("deploy.key.pub"))
            .expect("pub")
            .trim(),
        public
    );
    let (repeat, format) = (component("core/Repeat"), component("temperature/Format"));
    let format_size = std::fs::metadata(&format).expect("Format.wasm").len();
    let limit = format_size + 4096;

    let t = client(url).await;
    let mut out = consume(&t, &format!("{r}.OUT")).await;
    let mut fbp = consume(&t, "fbp").await;
    let pub_file = dir.join("deploy.key.pub");
    let mut e = edge(
        &format!("{r}={}", repeat.display()),
        &[
            "--trust",
            pub_file.to_str().expect("UTF-8 path"),
            "--max-deploy",
            &limit.to_string(),
        ],
    );
    e.stdout_line(&format!("ready {r}")).await;
    assert_eq!(ask(&t, &mut out, &r, "1").await, json!(1));

    // A good deployment while messages stream in: every message is answered exactly
    // once, by the old code until the swap and by the new one after it.
    const N: u64 = 200;
    let sender = {
        let (t, q) = (t.clone(), format!("{r}.IN"));
        tokio::spawn(async move {
            for i in 0..N {
                t.send_to_queue(&q, Message::json_text(i.to_string()))
                    .await
                    .expect("send");
            }
        })
    };
    let (key_s, format_s, r2) = (
        key.to_str().expect("UTF-8").to_string(),
        format.to_str().expect("UTF-8").to_string(),
        r.clone(),
    );
    let deployed = tokio::task::spawn_blocking(move || {
        deploy(&[
            format_s.as_str(),
            "--to",
            r2.as_str(),
            "--key",
            key_s.as_str(),
            "--sequence",
            "1",
        ])
    });
    let mut answers = Vec::new();
    while answers.len() < N as usize {
        answers.push(serde_json::from_slice::<Value>(&next(&mut out).await.data).expect("JSON"));
    }
    sender.await.expect("sender");
    let (code, stdout, stderr) = deployed.await.expect("deploy");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with(&format!("accepted: {r} ")), "{stdout}");
    assert!(stdout.contains("runs temperature/Format"), "{stdout}");
    e.stderr_line("deployment 1 accepted: now running temperature/Format")
        .await;
    let swapped_at = answers
        .iter()
        .position(Value::is_string)
        .unwrap_or(answers.len());
    for (i, a) in answers.iter().enumerate() {
        let want = if i < swapped_at {
            json!(i)
        } else {
            json!(format!("Temperature: {i}.0 C"))
        };
        assert_eq!(*a, want, "answer {i} (swap after {swapped_at})");
    }
    assert_eq!(
        ask(&t, &mut out, &r, "22.3333").await,
        json!("Temperature: 22.3 C")
    );
    // The new component's own parameter port is subscribed, and it is announced.
    t.send_to_queue(&format!("{r}.UNIT"), Message::json_text("\"F\""))
        .await
        .expect("send");
    assert_eq!(
        ask(&t, &mut out, &r, "22.3333").await,
        json!("Temperature: 72.2 F")
    );
    t.send_to_queue(&format!("{r}.UNIT"), Message::json_text("\"C\""))
        .await
        .expect("send");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let seen = discovered(&mut fbp, &r).await;
        if seen.component == "temperature/Format" {
            assert_eq!(
                seen.inport_queue("unit"),
                Some(format!("{r}.UNIT").as_str())
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new discovery");
    }

    // Rejected, each with the old code still running: too large, signed by an unknown
    // key, a sequence not above the current one, and a deployment for another role.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, vec![0u8; limit as usize + 1]).expect("junk");
    let path = |p: &std::path::Path| p.to_str().expect("UTF-8 path").to_string();
    let cases = [
        (path(&junk), path(&key), "2", "exceeds"),
        (
            path(&format),
            path(&stranger),
            "3",
            "not signed by a trusted key",
        ),
        (path(&repeat), path(&key), "1", "replay"),
    ];
    for (file, signer, sequence, why) in cases {
        let r2 = r.clone();
        let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
            deploy(&[
                file.as_str(),
                "--to",
                r2.as_str(),
                "--key",
                signer.as_str(),
                "--sequence",
                sequence,
            ])
        })
        .await
        .expect("deploy");
        assert_ne!(code, 0, "{stdout}");
        assert!(
            stdout.starts_with(&format!("rejected: {r} ")),
            "{stdout}{stderr}"
        );
        assert!(stdout.contains(why), "{why}: {stdout}");
        e.stderr_line("rejected").await;
        assert_eq!(
            ask(&t, &mut out, &r, "-5.54").await,
            json!("Temperature: -5.5 C")
        );
    }
    let mut mqtt_url = BrokerUrl::parse(url).expect("URL");
    mqtt_url.clean_session = true;
    let sender = MqttTransport::connect(&mqtt_url, &format!("wasmflo-test-{}", role("d")))
        .await
        .expect("connect");
    let signer = SigningKey::read(&key).expect("key");
    let other_role = signer.envelope("elsewhere", 9, &std::fs::read(&repeat).expect("read"));
    let verdict = deliver(&sender, &r, other_role, DEADLINE, 1)
        .await
        .expect("verdict")
        .remove(0);
    assert!(!verdict.accepted);
    assert!(
        verdict
            .reason
            .as_deref()
            .is_some_and(|w| w.contains("for role 'elsewhere'")),
        "{verdict:?}"
    );
    assert_eq!(
        ask(&t, &mut out, &r, "0").await,
        json!("Temperature: 0.0 C")
    );

    // A good one after the rejections is still accepted, and the retained deployment
    // is removed when the test is done.
    let v = deliver(
        &sender,
        &r,
        signer.envelope(&r, 5, &std::fs::read(&repeat).expect("read")),
        DEADLINE,
        1,
    )
    .await
    .expect("verdict")
    .remove(0);
    assert!(v.accepted && v.sequence == Some(5), "{v:?}");
    assert_eq!(ask(&t, &mut out, &r, "7").await, json!(7));
    wasmflo_host::deploy::clear(&sender, &r)
        .await
        .expect("clear");
    assert!(e.interrupt().success(), "stops cleanly on Ctrl-C");
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_participant_timers_publish_what_the_server_hosts_do() {
    let Some(url) = broker(MQTT) else { return };
    let (server, edge_role) = (role("ssensor"), role("esensor"));
    let t = client(url).await;
    let mut outs = [
        consume(&t, &format!("{server}.OUT")).await,
        consume(&t, &format!("{edge_role}.OUT")).await,
    ];
    let _s = participant(url, &[format!("{server}=temperature/Sensor")]);
    let path = component("temperature/Sensor");
    let _e = edge(&format!("{edge_role}={}", path.display()), &[]);
    // `start` arms a repeating timer; each expiry publishes the next reading.
    let mut readings = [Vec::new(), Vec::new()];
    for (out, seen) in outs.iter_mut().zip(&mut readings) {
        for _ in 0..3 {
            seen.push(serde_json::from_slice::<Value>(&next(out).await.data).expect("JSON"));
        }
    }
    assert_eq!(readings[1], readings[0]);
    assert!(readings[0].iter().all(Value::is_number), "{readings:?}");
}

/// Messages/s through the formatter on the edge host's MQTT participant, with the server
/// host's `wasmflo participant` as the baseline in the same run (a measurement, not a
/// check: `cargo test -p wasmflo-tests --test integration edge_mqtt_rate -- --ignored
/// --nocapture`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run by hand"]
async fn edge_mqtt_rate() {
    let Some(url) = broker(MQTT) else { return };
    const N: usize = 5000;
    let (server, edge_role) = (role("ratesfmt"), role("rateefmt"));
    let t = client(url).await;
    let mut outs = [
        consume(&t, &format!("{server}.OUT")).await,
        consume(&t, &format!("{edge_role}.OUT")).await,
    ];
    let mut s = participant(url, &[format!("{server}=temperature/Format")]);
    let path = component("temperature/Format");
    let mut e = edge(&format!("{edge_role}={}", path.display()), &[]);
    s.stdout_line(&format!("ready {server}")).await;
    e.stdout_line(&format!("ready {edge_role}")).await;
    let mut rates = Vec::new();
    for (r, out) in [&server, &edge_role].into_iter().zip(&mut outs) {
        // At most 500 unanswered: Mosquitto drops a client's queued messages beyond
        // `max_queued_messages` (1000 by default).
        // Publishes resolve once queued on the connection (no wait for each PUBACK).
        let input = t.publisher(&format!("{r}.IN")).await.expect("publisher");
        let began = std::time::Instant::now();
        let mut answered = 0;
        for i in 0..N {
            input
                .publish(Message::json_text(format!("{i}.25")))
                .await
                .expect("send");
            if i + 1 - answered >= 500 {
                next(out).await;
                answered += 1;
            }
        }
        while answered < N {
            next(out).await;
            answered += 1;
        }
        rates.push(N as f64 / began.elapsed().as_secs_f64());
    }
    println!(
        "formatter over Mosquitto, {N} messages, at most 500 unanswered: \
         server host {:.0} msg/s, edge host {:.0} msg/s (edge/server {:.2})",
        rates[0],
        rates[1],
        rates[1] / rates[0]
    );
}
