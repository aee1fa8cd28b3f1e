//! Entry points shared by the fuzz targets (`host/fuzz/`) and the test that replays
//! their corpus: each feeds arbitrary bytes to one parser of outside input and checks
//! what must hold for any input. A panic is a bug.

#![allow(clippy::panic, reason = "a failed invariant must crash the fuzzer")]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::component::Loader;
use crate::graph::{self, Format, ParseOptions};
use crate::runtime::{Runtime, RuntimeConfig};

/// `.fbp` text: parsing never panics; a parsed graph validates, prints as JSON, `.fbp`,
/// DOT and SVG, and its `.fbp` form parses again to the same processes and connections.
pub fn fbp_graph(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for case_sensitive in [false, true] {
        let opts = ParseOptions { case_sensitive };
        let Ok(g) = graph::parse(text, Format::Fbp, &opts) else {
            continue;
        };
        let _ = graph::validate(&g);
        let _ = g.to_json();
        let _ = g.to_dot();
        let _ = g.to_svg();
        let printed = g.to_fbp();
        // Printing may not be possible for every parsed graph (unnamed processes), but
        // what it prints must parse.
        if let Err(e) = graph::parse(&printed, Format::Fbp, &opts) {
            panic!("printed .fbp does not parse: {e}\n--- input\n{text}\n--- printed\n{printed}");
        }
    }
}

/// JSON graphs: parsing never panics; a parsed graph's JSON parses again to an equal
/// graph.
pub fn json_graph(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(g) = graph::parse_json(text) else {
        return;
    };
    let _ = graph::validate(&g);
    let _ = g.to_svg();
    let again = graph::parse_json(&g.to_json().to_string())
        .unwrap_or_else(|e| panic!("printed JSON does not parse: {e}"));
    assert_eq!(again.processes.len(), g.processes.len());
    assert_eq!(again.connections.len(), g.connections.len());
}

/// MsgFlo library files: parsing and resolving never panic.
pub fn library(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(lib) = crate::library::Library::parse(Path::new("fuzz/msgflo.json"), text) {
        let _ = format!("{lib:?}");
    }
}

/// FBP protocol frames: reading an envelope never panics, and a read envelope's
/// payload never keeps a secret.
pub fn protocol(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(e) = crate::protocol::Envelope::parse(text) {
        assert!(!e.payload.contains_key("secret"));
        let _ = crate::protocol::Outgoing::error(&e.protocol, "x").to_text();
    }
}

/// Component binaries given to the host: loading never panics; a loaded component's
/// instance starts and handles a message without taking the host down.
pub fn component(data: &[u8]) {
    static LOADER: OnceLock<Arc<Loader>> = OnceLock::new();
    let loader = LOADER.get_or_init(|| {
        let config = RuntimeConfig {
            max_instances: 16,
            max_memory: 64 << 20,
            ..RuntimeConfig::default()
        };
        match Runtime::new(&config) {
            Ok(rt) => Arc::new(Loader::new(rt, None)),
            Err(e) => panic!("engine: {e}"),
        }
    });
    let Ok(c) = loader.load_bytes(Path::new("fuzz.wasm"), data) else {
        return;
    };
    let limits = crate::runtime::Limits::default();
    if let Ok(mut instance) = c.instantiate(Arc::from("fuzz"), &limits) {
        let _ = instance.start();
        if let Some(port) = c.definition.inports.first() {
            let _ = instance.process(
                &port.id,
                &crate::message::Message::json(&serde_json::json!(1)),
            );
        }
    }
}

/// MsgFlo discovery messages from the `fbp` queue: parsing never panics.
pub fn discovery(data: &[u8]) {
    if let Ok(p) = crate::discovery::Participant::parse(data) {
        let _ = format!("{p:?}");
    }
}

/// guv scaling configurations (YAML or JSON): parsing never panics.
pub fn guv_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::scaling::config::ScalingConfig::parse(text);
}

/// Workflow (canvas) expressions: parsing never panics, and a parsed workflow prints
/// to an expression and to Celery's JSON form that both read back to the same workflow.
pub fn canvas(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sig) = crate::workflow::parse(text) else {
        return;
    };
    let printed = sig.to_string();
    match crate::workflow::parse(&printed) {
        Ok(again) => assert_eq!(again, sig, "{text:?} printed as {printed:?}"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    match crate::workflow::Signature::from_json(&sig.to_json()) {
        Ok(again) => assert_eq!(again, sig, "{text:?} through JSON"),
        Err(e) => panic!("{text:?} as JSON does not read back: {e}"),
    }
}
