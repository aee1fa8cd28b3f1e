//! Batched delivery (`process-batch`): a run of messages in one guest call gives every
//! message exactly what `process` gives it, a fault fails the run as a whole, and a graph
//! fed faster than it drains delivers every message once, in order, with its outcome.

use std::sync::Arc;

use serde_json::json;
use wasmflo_host::message::Message;
use wasmflo_host::runtime::{BatchCall, CallOutcome, Instance, Limits};

use crate::support::*;

fn hostile(limits: &Limits) -> Instance {
    let loaded = loader()
        .load(std::path::Path::new(wasmflo_tests::guests::HOSTILE))
        .expect("test/Hostile loads");
    let mut instance = loaded
        .instantiate(Arc::from("h"), limits)
        .expect("instantiates");
    assert!(instance.start().result.is_ok());
    instance
}

fn msg(json: serde_json::Value) -> Message {
    let mut m = Message::json(&json);
    m.metadata = vec![("correlation-id".into(), "run-7".into())];
    m
}

/// What a call did, comparable across the two ways of calling.
type Seen = (
    Vec<(usize, String, Vec<u8>, Vec<(String, String)>)>,
    Result<(), String>,
);

fn seen(outcome: CallOutcome) -> Seen {
    (
        outcome
            .outputs
            .into_iter()
            .map(|(port, m)| (port, m.content_type, m.data.to_vec(), m.metadata))
            .collect(),
        outcome
            .result
            .map_err(|(kind, detail)| format!("{kind}: {detail}")),
    )
}

#[test]
fn a_run_gives_each_message_what_process_gives_it() {
    let msgs: Vec<Message> = [
        json!("one"),
        json!("sendnack"),
        json!({"n": 2}),
        json!("nack"),
        json!([1, 2, 3]),
        json!("sendnack"),
        json!({"tag": "mine", "pad": "a longer payload than the others around it"}),
        json!("last"),
    ]
    .into_iter()
    .map(msg)
    .collect();

    let mut single = hostile(&Limits::default());
    let expected: Vec<Seen> = msgs.iter().map(|m| seen(single.process("in", m))).collect();

    let mut batched = hostile(&Limits::default());
    assert!(batched.batches(), "Rust components export process-batch");
    let refs: Vec<&Message> = msgs.iter().collect();
    let BatchCall::Done(outcomes) = batched.process_batch("in", &refs) else {
        panic!("the run is delivered in one call");
    };
    let got: Vec<Seen> = outcomes.into_iter().map(seen).collect();
    assert_eq!(got, expected);

    // The nacked messages' sends are dropped with them; the rest carry the metadata,
    // where a pair the guest set wins.
    assert!(got[1].0.is_empty() && got[1].1.is_err());
    assert_eq!(
        got[7].0[0].3,
        vec![("correlation-id".to_string(), "run-7".to_string())]
    );
    assert_eq!(
        got[6].0[0].3,
        vec![("correlation-id".to_string(), "mine".to_string())]
    );
    assert_eq!(got[7].0[0].1, "application/json");
    // State lives across the run as across calls: the last echo counts all eight.
    let last: serde_json::Value = serde_json::from_slice(&got[7].0[0].2).expect("JSON");
    assert_eq!(last["count"], 8);
}

#[test]
fn a_fault_fails_the_run_as_a_whole() {
    let limits = Limits {
        max_message: 1 << 20,
        ..Limits::default()
    };
    let cases = [
        (json!("trap"), "trap"),
        (json!("flood"), "limit-exceeded"),
        (json!("big"), "limit-exceeded"),
        (json!("stray"), "limit-exceeded"),
    ];
    for (command, kind) in cases {
        let mut guest = hostile(&limits);
        let msgs = [
            msg(json!("before")),
            msg(command.clone()),
            msg(json!("after")),
        ];
        let refs: Vec<&Message> = msgs.iter().collect();
        match guest.process_batch("in", &refs) {
            BatchCall::Failed(k, detail) => {
                assert_eq!(k.to_string(), kind, "{command}: {detail}");
            }
            other => panic!("{command}: the run must fail as a whole, got {other:?}"),
        }
    }
}

/// A graph whose participant is kept busy while a mixed stream queues up behind it: the
/// runs it takes give every echo once and in order, and dead-letter exactly the nacked
/// and trapping messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_fed_faster_than_it_drains_loses_nothing() {
    let mut net = start(
        &fbp("h(test/Hostile:deadline=2s,max_message=1MiB)"),
        &test_components(),
    )
    .await
    .expect("graph starts");
    let mut out = net.probe("h.OUT").await;

    // Busy first, so what follows queues up and is taken in runs.
    net.send("h.IN", r#"{"busy": 30000000, "first": true}"#)
        .await;
    let mut sent = Vec::new();
    for i in 0..600u32 {
        let body = match i % 50 {
            7 => json!("nack"),
            19 => json!("sendnack"),
            33 if i < 300 => json!("trap"),
            _ => json!({ "i": i }),
        };
        net.send_msg("h.IN", msg(body.clone())).await;
        sent.push(body);
    }

    assert_eq!(next_json(&mut out).await["echo"]["first"], true);
    let echoes: Vec<&serde_json::Value> = sent.iter().filter(|b| b.get("i").is_some()).collect();
    for want in &echoes {
        let got = next(&mut out).await;
        assert_eq!(
            got.metadata,
            vec![("correlation-id".to_string(), "run-7".to_string())]
        );
        let got: serde_json::Value = serde_json::from_slice(&got.data).expect("JSON");
        assert_eq!(&&got["echo"], want, "every echo once, in order");
    }

    let reports = net.stop().await;
    let failed: Vec<&serde_json::Value> = sent.iter().filter(|b| b.get("i").is_none()).collect();
    let dead = net.transport.dead_letters();
    let dead_bodies: Vec<serde_json::Value> = dead
        .iter()
        .map(|d| serde_json::from_slice(&d.message.data).expect("JSON"))
        .collect();
    assert_eq!(
        dead_bodies.iter().collect::<Vec<_>>(),
        failed,
        "exactly the failing messages are dead-lettered, in order"
    );
    let h = reports.iter().find(|r| &*r.process == "h").expect("report");
    assert_eq!(h.stats.processed as usize, echoes.len() + 1);
    assert_eq!(h.stats.failed as usize, failed.len());
    assert!(
        h.stats.batched > 0,
        "some messages went in runs: {:?}",
        h.stats
    );
}
