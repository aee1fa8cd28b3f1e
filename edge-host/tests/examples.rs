//! The example components on the edge host give the server host's outputs, call by call.
#![allow(
    clippy::needless_update,
    reason = "the server host's RuntimeConfig gains fields; defaults fill them"
)]

mod common;

use common::{Call, component, edge_component, process, run_edge, run_server};
use wasmflo_edge::Limits;

fn same_on_both(name: &str, calls: &[Call]) -> Vec<common::Seen> {
    let path = component(name);
    let expected = run_server(&path, calls);
    let got = run_edge(&edge_component(&path), calls, &Limits::default());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "{name}: call {i} ({:?})", calls[i]);
    }
    assert_eq!(got.len(), expected.len());
    got
}

#[test]
fn format_matches_the_server_host() {
    let seen = same_on_both(
        "temperature/Format",
        &[
            Call::Start,
            process("in", "22.3333"),
            process("in", "-0.04"),
            process("in", "\"hot\""),
            process("unit", "\"F\""),
            process("in", "22.3333"),
            process("unit", "\"R\""),
            process("in", "1e308"),
            process("nope", "1"),
        ],
    );
    assert_eq!(seen[1].outputs[0].2, b"\"Temperature: 22.3 C\"");
    assert_eq!(seen[5].outputs[0].2, b"\"Temperature: 72.2 F\"");
    assert!(seen[3].result.is_err());
}

#[test]
fn definitions_match_the_server_host() {
    for name in [
        "core/Repeat",
        "core/Drop",
        "core/Output",
        "temperature/Sensor",
        "temperature/Format",
        "temperature/Display",
        "temperature/Combine",
    ] {
        let path = component(name);
        let bytes = std::fs::read(&path).expect("read");
        let edge = wasmflo_edge::Component::new(&wasmflo_edge::Engine::new(), &bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let loader = wasmflo_host::component::Loader::new(
            wasmflo_host::runtime::Runtime::new(&wasmflo_host::runtime::RuntimeConfig {
                max_instances: 4,
                max_memory: 64 << 20,
                pooling: false,
                ..Default::default()
            })
            .expect("runtime"),
            None,
        );
        let server = loader.load(&path).expect("load");
        let d = edge.definition();
        let s = &server.definition;
        assert_eq!(d.component, s.component, "{name}");
        assert_eq!(d.label, s.label);
        assert_eq!(d.icon, s.icon);
        let ports = |p: &[wasmflo_edge::PortDef]| {
            p.iter()
                .map(|p| {
                    (
                        p.id.clone(),
                        p.type_.clone(),
                        p.description.clone(),
                        p.schema.clone(),
                        p.parameter,
                    )
                })
                .collect::<Vec<_>>()
        };
        let server_ports = |p: &[wasmflo_host::runtime::PortDef]| {
            p.iter()
                .map(|p| {
                    (
                        p.id.clone(),
                        p.type_.clone(),
                        p.description.clone(),
                        p.schema.clone(),
                        p.parameter,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ports(&d.inports), server_ports(&s.inports), "{name}");
        assert_eq!(ports(&d.outports), server_ports(&s.outports), "{name}");
    }
}

fn meta(msg: wasmflo_edge::Message, pairs: &[(&str, &str)]) -> wasmflo_edge::Message {
    wasmflo_edge::Message {
        metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..msg
    }
}

#[test]
fn repeat_carries_bytes_content_types_and_metadata() {
    let binary = wasmflo_edge::Message {
        content_type: "application/octet-stream".into(),
        data: vec![0, 159, 146, 150, 255],
        metadata: vec![("correlation-id".into(), "42".into())],
    };
    let big = "x".repeat(100_000);
    let seen = same_on_both(
        "core/Repeat",
        &[
            Call::Start,
            process("in", "{\"a\":[1,2,3]}"),
            Call::Process("in".into(), binary),
            Call::Process(
                "in".into(),
                meta(
                    wasmflo_edge::Message::json_text("1"),
                    &[("reply-to", "me"), ("ü", "ß"), ("", "")],
                ),
            ),
            process("in", ""),
            process("in", format!("\"{big}\"")),
            Call::Timer(7),
        ],
    );
    assert_eq!(seen[2].outputs[0].2, [0, 159, 146, 150, 255]);
    assert_eq!(seen[3].outputs[0].3.len(), 3);
    assert_eq!(seen[5].outputs[0].2.len(), 100_002);
}

#[test]
fn sensor_timers_and_parameters_match() {
    let seen = same_on_both(
        "temperature/Sensor",
        &[
            Call::Start,
            Call::Timer(0),
            Call::Timer(0),
            Call::Timer(1),
            process("interval", "250"),
            process("interval", "\"1000\""),
            process("interval", "0"),
            process("interval", "-1"),
            process("base", "-5"),
            process("base", "\"warm\""),
            process("trigger", "null"),
            Call::Timer(0),
        ],
    );
    assert_eq!(seen[0].timers, [(0, Some((1000, true)))]);
    assert_eq!(seen[1].outputs[0].2, b"21.166666666666668");
    assert_eq!(seen[6].timers, [(0, None)]);
}

#[test]
fn output_display_and_combine_match() {
    same_on_both(
        "core/Output",
        &[
            process("in", "\"hello\""),
            Call::Process(
                "in".into(),
                wasmflo_edge::Message {
                    content_type: "image/png".into(),
                    data: vec![137, 80, 78, 71],
                    metadata: vec![],
                },
            ),
        ],
    );
    same_on_both(
        "temperature/Display",
        &[process("in", "\"Temperature: 22.3 C\""), process("in", "3")],
    );
    same_on_both(
        "temperature/Combine",
        &[
            process("inside", "22.25"),
            process("outside", "-5.55"),
            process("outside", "[]"),
            process("elsewhere", "1"),
            process("inside", "1e308"),
        ],
    );
}

#[test]
fn output_logs_reach_the_edge_caller() {
    let component = edge_component(&component("core/Output"));
    let mut instance = component.instantiate(&Limits::default()).expect("instance");
    let outcome = instance.process("in", &wasmflo_edge::Message::json_text("\"hi\""));
    assert_eq!(
        outcome.logs,
        [(wasmflo_edge::LogLevel::Info, "\"hi\"".to_string())]
    );
    assert!(outcome.fuel > 0);
}

#[test]
fn components_hold_the_modules_wit_component_makes() {
    // The main module, the shim and the fixup module.
    let component = edge_component(&component("temperature/Format"));
    assert_eq!(component.module_count(), 3);
}
