//! `wasmflo run GRAPH --broker URL` as a coordinator, on the real RabbitMQ and Mosquitto:
//! external participants (a process with no `.wasm`) bound when they appear, late, from
//! their discovery; `msgflo/RoundRobin` nodes and their `DEADLETTER` port.

use serde_json::{Value, json};
use wasmflo_host::message::Message;

use crate::brokers::{
    AMQP, MQTT, Running, broker, cli, client, consume, hostile, next, participant, role, scratch,
    wait_line,
};

/// `a -> x -> b` where `x` names no component file: `run` runs `a` and `b`, warns that
/// `x` has not announced itself, keeps `b` working, and binds `x` (and sends its IIP)
/// once a `wasmflo participant` started later announces it.
async fn external_participant_joins_late(url: &str) {
    let (a, x, b) = (role("exa"), role("exx"), role("exb"));
    let graph = scratch(&a).join("external.fbp");
    std::fs::write(
        &graph,
        format!(
            "{a}(core/Repeat) OUT -> IN {x}(elsewhere/Late) OUT -> IN {b}(core/Repeat)\n\
             '7' -> IN {x}\n"
        ),
    )
    .expect("write graph");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{b}.OUT")).await;

    let mut cmd = cli();
    cmd.arg("run")
        .arg(&graph)
        .args(["--broker", url, "--external-timeout", "300ms"]);
    let mut run = Running::spawn(cmd);
    run.stderr_line(&format!(
        "process '{x}' (elsewhere/Late): no discovery from role '{x}' within 300ms"
    ))
    .await;
    // The rest of the graph runs meanwhile.
    t.send_to_queue(&format!("{b}.IN"), Message::json_text("1"))
        .await
        .expect("send");
    assert_eq!(&next(&mut out).await.data[..], b"1");

    let mut late = participant(url, &[format!("{x}=core/Repeat")]);
    late.stdout_line(&format!("ready {x}")).await;
    for line in [
        format!("PUBSUB: {a}.OUT -> {x}.IN"),
        format!("PUBSUB: {x}.OUT -> {b}.IN"),
    ] {
        let seen = wait_line(&mut run.stdout, |l| l == line).await;
        assert!(seen.is_some(), "run prints '{line}'");
    }
    assert_eq!(
        &next(&mut out).await.data[..],
        br#""7""#,
        "x's IIP, sent on arrival (an .fbp IIP is a string)"
    );
    t.send_to_queue(&format!("{a}.IN"), Message::json_text("2"))
        .await
        .expect("send");
    assert_eq!(&next(&mut out).await.data[..], b"2", "a -> x -> b");
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_run_binds_an_external_participant_when_it_appears() {
    if let Some(url) = broker(AMQP) {
        external_participant_joins_late(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_run_binds_an_external_participant_when_it_appears() {
    if let Some(url) = broker(MQTT) {
        external_participant_joins_late(url).await;
    }
}

/// `a OUT -> IN rr(msgflo/RoundRobin) OUT -> IN h; rr DEADLETTER -> IN d`, all run by
/// `run --broker` itself: h gets a's messages, d gets h's dead letters; `wasmflo
/// bindings` lists them until `run` stops.
async fn run_makes_roundrobin_and_deadletter_bindings(url: &str) -> Value {
    let (a, h, d, e) = (role("rra"), role("rrh"), role("rrd"), role("rre"));
    let graph = scratch(&a).join("rr.json");
    let edge = |sp: &str, s: &str, tp: &str, t: &str| json!({"src": {"process": sp, "port": s}, "tgt": {"process": tp, "port": t}});
    let g = json!({
        "processes": {
            a.as_str(): {"component": "core/Repeat"},
            "rr": {"component": "msgflo/RoundRobin"},
            h.as_str(): {"component": hostile()},
            d.as_str(): {"component": "core/Repeat"},
            e.as_str(): {"component": "core/Drop"},
        },
        "connections": [
            edge(&a, "out", "rr", "in"),
            edge("rr", "out", &h, "in"),
            edge("rr", "deadletter", &d, "in"),
            edge(&d, "out", &e, "in"),
        ],
    });
    std::fs::write(&graph, g.to_string()).expect("write graph");
    let t = client(url).await;
    let mut echoed = consume(&t, &format!("{h}.OUT")).await;
    let mut dead = consume(&t, &format!("{d}.OUT")).await;

    let mut cmd = cli();
    cmd.arg("run").arg(&graph).args(["--broker", url]);
    let mut run = Running::spawn(cmd);
    run.stdout_line(&format!("ROUNDROBIN: {a}.OUT -> {h}.IN"))
        .await;
    run.stdout_line(&format!("DEADLETTER: dead-{h}.IN -> {d}.IN"))
        .await;
    run.stderr_line("running").await;

    // `wasmflo bindings` lists them, with the plain edge the network made itself.
    let listed = listing(url, &graph, true).await.expect("listed");
    let mut lines: Vec<String> = listed["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .map(|b| {
            format!(
                "{} {} -> {}",
                b["type"].as_str().unwrap(),
                b["src"].as_str().unwrap(),
                b["tgt"].as_str().unwrap()
            )
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            format!("deadletter dead-{h}.IN -> {d}.IN"),
            format!("pubsub {d}.OUT -> {e}.IN"),
            format!("roundrobin {a}.OUT -> {h}.IN"),
        ],
        "{listed}"
    );
    assert_eq!(listed["command"], "run");

    t.send_to_queue(&format!("{a}.IN"), Message::json_text("5"))
        .await
        .expect("send");
    let v: Value = serde_json::from_slice(&next(&mut echoed).await.data).expect("JSON");
    assert_eq!(v["echo"], json!(5));
    t.send_to_queue(&format!("{a}.IN"), Message::json_text(r#""nack""#))
        .await
        .expect("send");
    let dead = serde_json::from_slice(&next(&mut dead).await.data).expect("JSON");

    // A clean stop removes the list.
    assert!(run.interrupt().success());
    assert!(listing(url, &graph, false).await.is_none());
    dead
}

/// The binding list `wasmflo bindings --json` shows for `graph`, polled until it is
/// there (`present`) or gone.
async fn listing(url: &str, graph: &std::path::Path, present: bool) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + crate::support::DEADLINE;
    loop {
        let out = cli()
            .args(["bindings", "--json", "--broker", url])
            .output()
            .expect("bindings runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lists: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON array");
        let found = lists
            .into_iter()
            .find(|l| l["graph"] == json!(graph.display().to_string()));
        if found.is_some() == present || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_run_makes_roundrobin_and_deadletter_bindings() {
    if let Some(url) = broker(AMQP) {
        let dead = run_makes_roundrobin_and_deadletter_bindings(url).await;
        assert_eq!(dead, json!("nack"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_run_makes_roundrobin_and_deadletter_bindings() {
    if let Some(url) = broker(MQTT) {
        // MQTT dead letters carry their queue and reason around the payload.
        let dead = run_makes_roundrobin_and_deadletter_bindings(url).await;
        assert_eq!(dead["payload"], json!("nack"), "{dead}");
        assert!(
            dead["reason"].as_str().is_some_and(|r| r.contains("nack")),
            "{dead}"
        );
    }
}

/// `a -> f -> b` where `f` is a foreign participant declared in MsgFlo's YAML (mapped by
/// the library): `run` announces it on its behalf and binds its own topics.
async fn foreign_participant_from_yaml(url: &str) {
    let (a, f, b) = (role("fa"), role("ff"), role("fb"));
    let dir = scratch(&f);
    std::fs::write(
        dir.join("lamp.yaml"),
        "component: dev/Lamp\nlabel: a lamp on existing topics\n\
         inports:\n  in:\n    queue: lamps/#ROLE/set\n    type: boolean\n\
         outports:\n  state:\n    queue: lamps/#ROLE/state\n    type: boolean\n",
    )
    .expect("write yaml");
    std::fs::write(
        dir.join("msgflo.json"),
        r#"{"components": {"dev/Lamp": "lamp.yaml"}}"#,
    )
    .expect("write library");
    let graph = dir.join("foreign.fbp");
    std::fs::write(
        &graph,
        format!("{a}(core/Repeat) OUT -> IN {f}(dev/Lamp) STATE -> IN {b}(core/Repeat)\n"),
    )
    .expect("write graph");
    let t = client(url).await;
    let mut set = consume(&t, &format!("lamps/{f}/set")).await;
    let mut out = consume(&t, &format!("{b}.OUT")).await;
    // Every discovery message, on AMQP too, where the run's coordinator consumes `fbp`
    // at the same time (see `Transport::discoveries`).
    let mut fbp = Some(t.discoveries().await.expect("fbp"));

    let mut cmd = cli();
    cmd.arg("run").arg(&graph).args(["--broker", url]);
    let mut run = Running::spawn(cmd);
    run.stdout_line(&format!("PUBSUB: {a}.OUT -> lamps/{f}/set"))
        .await;
    run.stdout_line(&format!("PUBSUB: lamps/{f}/state -> {b}.IN"))
        .await;
    if let Some(fbp) = fbp.as_mut() {
        loop {
            let d = next(fbp).await;
            let Ok(p) = wasmflo_host::discovery::Participant::parse(&d.data) else {
                continue;
            };
            if p.role == f {
                assert_eq!(p.component, "dev/Lamp");
                assert_eq!(
                    p.inport_queue("in"),
                    Some(format!("lamps/{f}/set").as_str())
                );
                break;
            }
        }
    }
    run.stderr_line("running").await;
    t.send_to_queue(&format!("{a}.IN"), Message::json_text("true"))
        .await
        .expect("send");
    assert_eq!(&next(&mut set).await.data[..], b"true");
    let lamp = t
        .publisher(&format!("lamps/{f}/state"))
        .await
        .expect("publisher");
    lamp.publish(Message::json_text("false"))
        .await
        .expect("publish");
    assert_eq!(&next(&mut out).await.data[..], b"false");
}

/// Several coordinators on one broker each see every discovery message: on AMQP, where
/// consumers of queue `fbp` share its messages, through the relay of
/// `Transport::discoveries`; on MQTT `fbp` is a topic.
async fn every_coordinator_sees_every_discovery(url: &str) {
    const N: usize = 30;
    let prefix = role("dsc");
    let (a, b, sender) = (client(url).await, client(url).await, client(url).await);
    let mut subs = [
        a.discoveries().await.expect("discoveries a"),
        b.discoveries().await.expect("discoveries b"),
    ];
    let roles: Vec<String> = (0..N).map(|i| format!("{prefix}-{i}")).collect();
    for r in &roles {
        let p = json!({
            "protocol": "discovery",
            "command": "participant",
            "payload": {"role": r, "id": r, "component": "test/Seen",
                        "inports": [], "outports": []},
        });
        sender
            .announce(Message::json_text(p.to_string()))
            .await
            .expect("announce");
    }
    for (which, sub) in subs.iter_mut().enumerate() {
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < N {
            let d = next(sub).await;
            let Ok(p) = wasmflo_host::discovery::Participant::parse(&d.data) else {
                continue;
            };
            if p.role.starts_with(&format!("{prefix}-")) {
                assert!(seen.insert(p.role.clone()), "{} seen twice", p.role);
            }
        }
        assert_eq!(
            seen,
            roles.iter().cloned().collect(),
            "coordinator {which} saw every discovery"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_every_coordinator_sees_every_discovery() {
    if let Some(url) = broker(AMQP) {
        every_coordinator_sees_every_discovery(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_every_coordinator_sees_every_discovery() {
    if let Some(url) = broker(MQTT) {
        every_coordinator_sees_every_discovery(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_run_announces_and_binds_a_foreign_participant() {
    if let Some(url) = broker(AMQP) {
        foreign_participant_from_yaml(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_run_announces_and_binds_a_foreign_participant() {
    if let Some(url) = broker(MQTT) {
        foreign_participant_from_yaml(url).await;
    }
}

/// `wasmflo register` announces a foreign participant from its YAML, as msgflo-register
/// does; `setup --discover --forever` binds it from that discovery and publishes its
/// binding list, which `wasmflo bindings` shows as the setup's.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_register_announces_a_foreign_participant_and_setup_lists_its_binding() {
    let Some(url) = broker(MQTT) else { return };
    let (f, b) = (role("rgf"), role("rgb"));
    let dir = scratch(&f);
    let yaml = dir.join("sensor.yaml");
    std::fs::write(
        &yaml,
        "component: dev/Sensor\noutports:\n  value:\n    queue: sensors/#ROLE/value\n",
    )
    .expect("write yaml");
    let graph = dir.join("register.fbp");
    std::fs::write(
        &graph,
        format!("{f}(dev/Sensor) VALUE -> IN {b}(core/Repeat)\n"),
    )
    .expect("write graph");
    let t = client(url).await;
    let mut out = consume(&t, &format!("{b}.OUT")).await;
    let mut p = participant(url, &[format!("{b}=core/Repeat")]);
    p.stdout_line(&format!("ready {b}")).await;
    let mut cmd = cli();
    cmd.args(["register", "--role"])
        .arg(format!("{f}:{}", yaml.display()))
        .args(["--broker", url]);
    let mut register = Running::spawn(cmd);
    register.stdout_line(&format!("ready {f}")).await;

    let mut cmd = cli();
    cmd.arg("setup")
        .arg(&graph)
        .args(["--broker", url, "--discover", "--forever"]);
    let mut setup = Running::spawn(cmd);
    setup
        .stdout_line(&format!("PUBSUB: sensors/{f}/value -> {b}.IN"))
        .await;
    let listed = listing(url, &graph, true).await.expect("listed");
    assert_eq!(listed["command"], "setup");
    assert_eq!(
        listed["bindings"],
        json!([{"src": format!("sensors/{f}/value"), "tgt": format!("{b}.IN"), "type": "pubsub"}])
    );
    let sensor = t
        .publisher(&format!("sensors/{f}/value"))
        .await
        .expect("publisher");
    sensor
        .publish(Message::json_text("21.5"))
        .await
        .expect("publish");
    assert_eq!(&next(&mut out).await.data[..], b"21.5");
}

/// A one-shot `setup` on AMQP leaves its bindings on the broker when it exits, so it
/// leaves its list too: `wasmflo bindings` shows it (never stale), and running the setup
/// again replaces the list instead of adding one.
#[tokio::test(flavor = "multi_thread")]
async fn amqp_one_shot_setup_lists_its_bindings() {
    let Some(url) = broker(AMQP) else { return };
    let (a, b) = (role("osa"), role("osb"));
    let dir = scratch(&a);
    let graph = dir.join("oneshot.fbp");
    std::fs::write(
        &graph,
        format!("{a}(core/Repeat) OUT -> IN {b}(core/Repeat)\n"),
    )
    .expect("write graph");
    let lists_for_graph = || {
        let out = cli()
            .args(["bindings", "--json", "--broker", url])
            .output()
            .expect("bindings runs");
        let lists: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON array");
        lists
            .into_iter()
            .filter(|l| l["graph"] == json!(graph.display().to_string()))
            .collect::<Vec<_>>()
    };
    for _ in 0..2 {
        let out = cli()
            .arg("setup")
            .arg(&graph)
            .args(["--broker", url])
            .output()
            .expect("setup runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = listing(url, &graph, true).await.expect("listed");
        assert_eq!(listed["command"], "setup");
        assert_eq!(listed["period_ms"], 0, "a one-shot list never goes stale");
        assert_eq!(
            listed["bindings"],
            json!([{"src": format!("{a}.OUT"), "tgt": format!("{b}.IN"), "type": "pubsub"}])
        );
        assert_eq!(lists_for_graph().len(), 1, "replaced, not added");
    }
    // The binding it listed is real: a message published on a's outport reaches b's inport.
    let t = client(url).await;
    let mut inbox = consume(&t, &format!("{b}.IN")).await;
    t.publisher(&format!("{a}.OUT"))
        .await
        .expect("publisher")
        .publish(Message::json_text("1"))
        .await
        .expect("publish");
    assert_eq!(&next(&mut inbox).await.data[..], b"1");

    // Forgetting it removes the list (tests must not leave permanent lists behind).
    let key = lists_for_graph()[0]["coordinator"]
        .as_str()
        .expect("key")
        .to_string();
    let out = cli()
        .args(["bindings", "--forget", &key, "--broker", url])
        .output()
        .expect("bindings --forget runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing(url, &graph, false).await.is_none());
}
