//! Unit tests of the pure core: parsing, printing, JSON form, reference semantics.

use serde_json::{Value, json};

use super::random::{self, Rng};
use super::reference::{builtin, evaluate};
use super::{Signature, WorkflowError, parse};

fn eval(expr: &str) -> Result<Value, WorkflowError> {
    let sig = parse(expr)?;
    evaluate(&sig, &builtin)
}

fn ok(expr: &str) -> Value {
    match eval(expr) {
        Ok(v) => v,
        Err(e) => panic!("{expr}: {e}"),
    }
}

#[test]
fn the_seeds_examples_give_the_seeds_answers() {
    assert_eq!(ok("add(4, 4) | mul(8) | mul(10)"), json!(640));
    assert_eq!(ok("chain(add(4, 4), mul(8), mul(10))"), json!(640));
    assert_eq!(ok("group(add(2, 2), add(4, 4))"), json!([4, 8]));
    let chord = format!(
        "chord(group({}), tsum())",
        (0..10)
            .map(|i| format!("add({i}, {i})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(ok(&chord), json!(90));
    assert_eq!(ok("xsum.map([range(10), range(100)])"), json!([45, 4950]));
    assert_eq!(ok("map(xsum, [range(10), range(100)])"), json!([45, 4950]));
    let doubled: Vec<i64> = (0..10).map(|i| 2 * i).collect();
    assert_eq!(ok("add.starmap(zip(range(10), range(10)))"), json!(doubled));
    let chunks = ok("add.chunks(zip(range(100), range(100)), 10)");
    let lists = chunks.as_array().map(Vec::len);
    assert_eq!(lists, Some(10));
    assert_eq!(
        chunks[9],
        json!([180, 182, 184, 186, 188, 190, 192, 194, 196, 198])
    );
}

#[test]
fn celery_semantics_not_broccolis() {
    // Prepended, not appended.
    assert_eq!(ok("sub(10, 2) | sub(1)"), json!(7));
    // A falsy result is kept.
    assert_eq!(ok("sub(2, 2) | add(5)"), json!(5));
    // chunks(n) is the chunk size, not the number of bins.
    let four = ok("chunks(add, zip(range(100), range(100)), 25)");
    assert_eq!(four.as_array().map(Vec::len), Some(4));
    assert_eq!(four[0].as_array().map(Vec::len), Some(25));
    // Immutable signatures get nothing.
    assert_eq!(ok("add(1, 1) | add.si(5, 5)"), json!(10));
    // A group after a step gives the result to every member; a chord's header too.
    assert_eq!(ok("add(1, 1) | group(add(1), mul(10))"), json!([3, 20]));
    assert_eq!(
        ok("add(1, 1) | chord(group(add(1), mul(10)), tsum())"),
        json!(23)
    );
    // A group followed by a step is a chord.
    assert_eq!(ok("group(add(1, 1), add(2, 2)) | tsum()"), json!(6));
    // A one-member group still gives a list; an empty chord header gives [].
    assert_eq!(ok("group(add(1, 1))"), json!([2]));
    assert_eq!(ok("chord(group(), tsum())"), json!(0));
    // map, starmap and chunks are immutable in Celery: the previous result is ignored.
    assert_eq!(ok("add(1, 1) | xsum.map([[1, 2]])"), json!([3]));
}

#[test]
fn failures_name_the_task_and_fail_the_chord() {
    let err = eval("add(1, \"x\") | mul(2)").err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.starts_with("task add(1, \"x\") failed")),
        "{err:?}"
    );
    let err = eval("chord(group(add(1, 1), add(1, \"x\")), tsum())");
    match err {
        Err(e @ WorkflowError::Chord(_)) => {
            assert_eq!(e.failing_task(), Some("add(1, \"x\")"));
            assert!(e.to_string().starts_with("chord failed"), "{e}");
        }
        other => panic!("expected a chord error, got {other:?}"),
    }
    assert!(matches!(
        eval("nope(1)"),
        Err(WorkflowError::UnknownTask { .. })
    ));
}

#[test]
fn syntax_errors_give_the_column_and_what_was_expected() {
    let cases = [
        ("add(4, 4) | ", 13, "a task call"),
        ("add(4, 4", 9, "',' or ')'"),
        ("add(4 4)", 7, "',' or ')'"),
        (
            "chord(add(1, 1), tsum())",
            7,
            "group(...) as the chord's header",
        ),
        ("add.foo(1)", 5, "a method"),
        ("chunks(add, [[1, 2]], 0)", 23, "a chunk size"),
        ("starmap(add, [1, 2])", 14, "a list of argument lists"),
        ("add(x=1, 2)", 10, "a keyword argument"),
        ("range(3)", 1, "a task or workflow"),
        ("chain()", 1, "at least one step"),
        ("add(1) mul(2)", 8, "'|' or the end"),
    ];
    for (text, column, expected) in cases {
        match parse(text) {
            Err(e) => {
                assert_eq!(e.column, column, "{text}: {e}");
                assert!(e.expected.contains(expected), "{text}: {e}");
            }
            Ok(sig) => panic!("{text} parsed as {sig}"),
        }
    }
}

#[test]
fn huge_ranges_are_one_line_errors_not_allocations() {
    // Refused before anything is allocated, however large, alone or together.
    for text in [
        "xsum(range(9223372036854775807))",
        "xsum(range(-9223372036854775807, 9223372036854775807, 1))",
        "group(xsum(range(600000)), xsum(range(600000)))",
        "add.starmap(zip(range(400000), range(400000)))",
    ] {
        let e = parse(text).expect_err(text);
        assert!(
            e.to_string().contains("at most 1,000,000 items"),
            "{text}: {e}"
        );
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    assert!(parse("xsum(range(1000000))").is_ok());
    assert!(parse("xsum(range(10, 0, -1))").is_ok());
}

#[test]
fn values_are_json_with_range_zip_and_kwargs() -> Result<(), WorkflowError> {
    let sig = parse(
        r#"t.si(-1.5e3, "a\"b", null, true, {"k": [range(2, 8, 3)]}, zip([1, 2, 3], ["a", "b"]), n=2)"#,
    )?;
    let Signature::Task(call) = sig else {
        panic!("not a task")
    };
    assert!(call.immutable);
    assert_eq!(
        Value::Array(call.args),
        json!([-1500.0, "a\"b", null, true, {"k": [[2, 5]]}, [[1, "a"], [2, "b"]]])
    );
    assert_eq!(call.kwargs.get("n"), Some(&json!(2)));
    assert_eq!(
        parse("(add(1, 1) | add(1)) | add(1)")?,
        parse("chain(chain(add(1, 1), add(1)), add(1))")?
    );
    Ok(())
}

#[test]
fn random_trees_print_parse_and_convert_back_unchanged() -> Result<(), WorkflowError> {
    let mut rng = Rng::new(7);
    for _ in 0..500 {
        let sig = random::workflow(&mut rng, 4);
        let text = sig.to_string();
        assert_eq!(parse(&text)?, sig, "{text}");
        assert_eq!(Signature::from_json(&sig.to_json())?, sig, "{text}");
        evaluate(&sig, &builtin).map_err(|e| WorkflowError::TaskFailed {
            task: text.clone(),
            reason: format!("a generated tree must not fail: {e}"),
        })?;
    }
    Ok(())
}

#[test]
fn celery_dicts_are_read_with_paths_in_errors() -> Result<(), WorkflowError> {
    let chain = json!({"task": "celery.chain", "args": [], "kwargs": {"tasks": [
        {"task": "proj.tasks.add", "args": [4, 4], "kwargs": {}, "subtask_type": null},
        {"task": "proj.tasks.mul", "args": [8], "kwargs": {}, "immutable": false}
    ]}, "subtask_type": "chain"});
    let sig = Signature::from_json(&chain)?;
    assert_eq!(sig.to_string(), "chain(add(4, 4), mul(8))");
    let bad =
        json!({"subtask_type": "group", "kwargs": {"tasks": [{"task": "add"}, {"args": []}]}});
    let err = Signature::from_json(&bad).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("$.kwargs.tasks[1]: expected a 'task' name (a string)")
    );
    Ok(())
}

#[test]
fn answers_are_read_from_metadata_or_from_the_body() {
    use super::dispatch::{CORRELATION_ID, answer};
    use crate::message::Message;
    use crate::transport::DEAD_LETTER_REASON;

    // A plain result with the id in metadata (in-process, AMQP, any MsgFlo participant).
    let mut plain = Message::json(&json!(8));
    plain.set_meta(CORRELATION_ID, "wf-1.0");
    assert_eq!(answer(&plain), Some(("wf-1.0".into(), Ok(json!(8)))));
    // Celery's result form, no metadata (MQTT 3.1.1).
    let celery = Message::json(&json!({"task_id": "wf-1.1", "status": "SUCCESS", "result": 0}));
    assert_eq!(answer(&celery), Some(("wf-1.1".into(), Ok(json!(0)))));
    // A dead letter on AMQP: the call with the reason in a header.
    let mut dead = Message::json(&json!({"args": [1], "kwargs": {}, "id": "wf-1.2"}));
    dead.set_meta(DEAD_LETTER_REASON, "bad");
    assert_eq!(answer(&dead), Some(("wf-1.2".into(), Err("bad".into()))));
    // A dead letter on MQTT: the call wrapped with its queue and reason.
    let wrapped = Message::json(&json!({
        "queue": "sub.IN", "reason": "worse",
        "payload": {"args": [1], "kwargs": {}, "id": "wf-1.3"},
    }));
    assert_eq!(
        answer(&wrapped),
        Some(("wf-1.3".into(), Err("worse".into())))
    );
    // Without an id anywhere there is nothing to resolve.
    assert_eq!(answer(&Message::json(&json!(8))), None);
}

#[tokio::test]
async fn errors_quote_a_large_call_briefly() {
    use std::sync::Arc;

    use super::{DispatchOptions, Dispatcher};
    use crate::transport::{MemoryTransport, Transport};

    // Nobody serves `add`: the call times out, and the error quotes it cut short.
    let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
    let options = DispatchOptions {
        timeout: std::time::Duration::from_millis(10),
        retries: 0,
        ..DispatchOptions::default()
    };
    let sig = parse("add(range(100000), 1)").expect("parses");
    let err = Dispatcher::new(transport, options)
        .run(&sig)
        .await
        .expect_err("times out");
    let text = err.to_string();
    assert!(text.len() < 1_000, "{} characters", text.len());
    assert!(text.starts_with("task add([0,1,2,"), "{text}");
    assert!(text.contains("characters)"), "{text}");
}
