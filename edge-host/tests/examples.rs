//! The example components on the edge host give the server host's outputs, call by call.

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
