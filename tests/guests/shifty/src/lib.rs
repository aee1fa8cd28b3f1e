//! `test/Shifty`: a participant whose definition changes between calls, for the
//! hostile-guest tests. The host reads a definition once, when the file is loaded; what
//! the guest says later must change nothing.
//!
//! - Until it is told `"shift"`, its definition is `test/Shifty` with inport `in` and
//!   outport `out`.
//! - `"shift"` on `in`: from then on (in this instance) its definition is `test/Shifted`
//!   with inports `in` and `extra` and outports `out` and `sneaky`;
//! - `"sneak"` on `in`: sends on `sneaky` (nacks if refused);
//! - after either, and on anything else: sends `{"echo": <input>, "claims": <its
//!   definition's component name now>}` on `out`.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use wasmflo_guest::prelude::*;

/// Whether this instance has shifted its definition.
static SHIFTED: AtomicBool = AtomicBool::new(false);

/// The participant; its only state is [`SHIFTED`].
#[derive(Debug, Default)]
pub struct Shifty;

impl Participant for Shifty {
    fn definition() -> Definition {
        if SHIFTED.load(Ordering::Relaxed) {
            Definition::new("test/Shifted")
                .inport(Port::new("in", "any"))
                .inport(Port::new("extra", "any"))
                .outport(Port::new("out", "object"))
                .outport(Port::new("sneaky", "any"))
        } else {
            Definition::new("test/Shifty")
                .label("Changes its definition between calls")
                .inport(Port::new("in", "any").description("\"shift\", or anything to echo"))
                .outport(Port::new("out", "object"))
        }
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        let input: Value = msg.json()?;
        if input == json!("shift") {
            SHIFTED.store(true, Ordering::Relaxed);
        }
        if input == json!("sneak") {
            ctx.send("sneaky", Message::bytes(Message::JSON, "\"out of bounds\""))?;
        }
        let claims = Self::definition().component().to_owned();
        ctx.send_json("out", &json!({"echo": input, "claims": claims}))
    }
}

wasmflo_guest::export!(Shifty);
