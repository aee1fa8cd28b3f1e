//! The entry point shared by the edge host's fuzz target (`edge-host/fuzz/`) and the test
//! that replays its corpus: arbitrary bytes as a component binary, through the unpacker,
//! the linking plan, the canonical ABI (definition, `start`, `process`, `on-timer`) and
//! the host functions. Any error is fine; a panic is a bug.

#![allow(clippy::panic, reason = "a failed invariant must crash the fuzzer")]

use crate::{Component, Engine, Limits, Message};

/// Loads `data` as a component and, if it loads, runs one instance of it under small
/// limits: its definition, `start`, a message on each inport and a timer.
pub fn component(data: &[u8]) {
    let engine = Engine::new();
    let Ok(component) = Component::new(&engine, data) else {
        return;
    };
    let definition = component.definition().clone();
    // Small budgets: a mutated guest may loop or grow memory; that must be a fault.
    let limits = Limits {
        memory: 4 << 20,
        fuel: 2_000_000,
        max_sends: 100,
        max_message: 64 << 10,
    };
    let Ok(mut instance) = component.instantiate(&limits) else {
        return;
    };
    let _ = instance.definition();
    let mut outcomes = alloc::vec![instance.start()];
    for port in &definition.inports {
        outcomes.push(instance.process(&port.id, &Message::json_text("1")));
    }
    outcomes.push(instance.on_timer(1));
    for outcome in outcomes {
        if outcome.result.is_err() && !outcome.outputs.is_empty() {
            panic!(
                "a failed call published {} message(s)",
                outcome.outputs.len()
            );
        }
        for (port, msg) in &outcome.outputs {
            if *port >= definition.outports.len() {
                panic!("output on outport {port} of {}", definition.outports.len());
            }
            if msg.data.len() > limits.max_message {
                panic!("a {} byte message passed the size limit", msg.data.len());
            }
        }
        if outcome.outputs.len() > limits.max_sends as usize {
            panic!("{} sends passed the limit", outcome.outputs.len());
        }
    }
}
