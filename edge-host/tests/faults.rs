//! Faults on the edge host get the server host's fault kinds: the hostile test guest's
//! misbehaviours and malformed component files.

mod common;

use std::time::Duration;

use common::{Call, edge_component, process, run_edge, run_server_with, test_guest};
use wasmflo_edge::{Component, Engine, FaultKind, Limits, LoadError};

fn server_limits() -> wasmflo_host::runtime::Limits {
    wasmflo_host::runtime::Limits {
        memory: 4 << 20,
        deadline: Duration::from_millis(200),
        ..Default::default()
    }
}

/// The fuel budget plays the server host's deadline: small enough that `spin` stops soon,
/// large enough that `flood` reaches the send limit first (as it does within the deadline).
fn edge_limits() -> Limits {
    Limits {
        memory: 4 << 20,
        fuel: 200_000_000,
        ..Limits::default()
    }
}

#[test]
fn hostile_guest_faults_match_the_server_host() {
    let path = test_guest("test/Hostile");
    let component = edge_component(&path);
    for command in [
        "trap",
        "spin",
        "hog",
        "deep",
        "smash",
        "nack",
        "flood",
        "{\"x\":1}",
    ] {
        let calls = [
            Call::Start,
            process("param", "7"),
            process("in", format!("\"{command}\"")),
        ];
        let expected = run_server_with(&path, &calls, &server_limits());
        let got = run_edge(&component, &calls, &edge_limits());
        assert_eq!(got, expected, "command {command}");
    }
}

#[test]
fn hostile_kinds_are_the_expected_ones() {
    let path = test_guest("test/Hostile");
    let component = edge_component(&path);
    let kinds: Vec<Option<FaultKind>> = ["trap", "spin", "hog", "deep", "nack", "flood", "1"]
        .iter()
        .map(|c| {
            let mut instance = component.instantiate(&edge_limits()).expect("instance");
            let outcome =
                instance.process("in", &wasmflo_edge::Message::json_text(format!("\"{c}\"")));
            outcome.result.err().map(|f| f.kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Some(FaultKind::Trap),
            Some(FaultKind::Timeout),
            Some(FaultKind::MemoryExhausted),
            Some(FaultKind::StackOverflow),
            Some(FaultKind::Internal),
            Some(FaultKind::LimitExceeded),
            None,
        ]
    );
}

#[test]
fn a_poisoned_instance_is_replaced_and_the_component_keeps_working() {
    let component = edge_component(&test_guest("test/Hostile"));
    let mut instance = component.instantiate(&edge_limits()).expect("instance");
    let outcome = instance.process("in", &wasmflo_edge::Message::json_text("\"trap\""));
    assert!(
        outcome
            .result
            .as_ref()
            .is_err_and(|f| f.kind.poisons_instance())
    );
    assert!(outcome.outputs.is_empty());
    let mut fresh = component.instantiate(&edge_limits()).expect("instance");
    let outcome = fresh.process("in", &wasmflo_edge::Message::json_text("1"));
    assert_eq!(outcome.result, Ok(()));
    assert_eq!(outcome.outputs.len(), 1);
}

fn load(bytes: &[u8]) -> Result<Component, LoadError> {
    Component::new(&Engine::new(), bytes)
}

#[test]
fn malformed_components_are_errors_not_panics() {
    let good = std::fs::read(common::component("temperature/Format")).expect("read");
    assert_eq!(load(b"").err(), Some(LoadError::NotWasm));
    assert_eq!(load(b"hello world").err(), Some(LoadError::NotWasm));
    assert_eq!(load(b"\0asm\x01\0\0\0").err(), Some(LoadError::CoreModule));
    assert!(matches!(
        load(b"\0asm\x0d\0\x01\0\x07").err(),
        Some(LoadError::Malformed { .. })
    ));
    // Every truncation and a spread of single-byte corruptions: errors or working loads.
    // A cut that only drops trailing custom sections (producers, names) leaves a valid
    // component, which must then be the same participant.
    let whole = load(&good).expect("the whole file loads");
    for cut in (0..good.len()).step_by(97) {
        if let Ok(c) = load(&good[..cut]) {
            assert_eq!(c.definition(), whole.definition(), "truncated at {cut}");
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bad = good.clone();
        let at = (seed as usize) % bad.len();
        bad[at] ^= (seed >> 32) as u8 | 1;
        if let Ok(c) = load(&bad) {
            let mut instance = match c.instantiate(&Limits::default()) {
                Ok(i) => i,
                Err(_) => continue,
            };
            let _ = instance.process("in", &wasmflo_edge::Message::json_text("1"));
        }
    }
}

#[test]
fn other_worlds_are_refused_with_the_reason() {
    let loaded = load(&std::fs::read(test_guest_other_world()).expect("read"));
    let err = loaded.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("does not implement"), "{err}");
}

fn test_guest_other_world() -> std::path::PathBuf {
    test_guest("test/OtherWorld")
}

#[test]
fn memory_cap_below_the_initial_memory_fails_instantiation() {
    let component = edge_component(&common::component("temperature/Format"));
    let fault = component
        .instantiate(&Limits {
            memory: 64 << 10,
            ..Limits::default()
        })
        .err();
    assert_eq!(fault.map(|f| f.kind), Some(FaultKind::MemoryExhausted));
}

#[test]
fn wasi_components_are_unsupported_on_the_edge() {
    let loaded = load(&std::fs::read(test_guest("test/WasiProbe")).expect("read"));
    assert!(
        matches!(loaded, Err(LoadError::Unsupported { .. })),
        "{loaded:?}"
    );
}

/// A message larger than the process allows is a broken limit on both hosts, with the
/// same verdict, and the guest's next message is served.
#[test]
fn an_oversized_message_is_the_same_broken_limit_on_both_hosts() {
    let path = test_guest("test/Hostile");
    let component = edge_component(&path);
    let calls = [
        Call::Start,
        process("in", "\"big\""),
        process("in", "{\"x\":1}"),
    ];
    let server = wasmflo_host::runtime::Limits {
        max_message: 1 << 20,
        ..server_limits()
    };
    let edge = Limits {
        max_message: 1 << 20,
        ..edge_limits()
    };
    let expected = run_server_with(&path, &calls, &server);
    let got = run_edge(&component, &calls, &edge);
    assert_eq!(got, expected);
    let Err((kind, detail)) = &got[1].result else {
        panic!("the oversized send was allowed: {got:?}");
    };
    assert_eq!(kind, "limit-exceeded");
    assert!(
        detail.as_deref().is_some_and(|d| d.contains("1048576")),
        "{detail:?}"
    );
    assert!(got[1].outputs.is_empty(), "a failed call publishes nothing");
}

/// A guest whose definition changes between calls changes nothing either host enforces:
/// both read the definition once, at load, so a send on the outport it now claims is a
/// broken limit with the same verdict on both.
#[test]
fn a_definition_that_changes_between_calls_changes_nothing_on_the_edge() {
    let path = test_guest("test/Shifty");
    let component = edge_component(&path);
    let calls: Vec<Call> = ["before", "shift", "after", "sneak", "again"]
        .iter()
        .map(|input| process("in", format!("\"{input}\"")))
        .collect();
    let calls = [vec![Call::Start], calls].concat();
    let expected = run_server_with(&path, &calls, &server_limits());
    let got = run_edge(&component, &calls, &edge_limits());
    assert_eq!(got, expected);
    let Err((kind, detail)) = &got[4].result else {
        panic!("the send on the undeclared outport was allowed: {got:?}");
    };
    assert_eq!(kind, "limit-exceeded");
    assert_eq!(
        detail.as_deref(),
        Some("sent on undeclared outport 'sneaky'")
    );
}
