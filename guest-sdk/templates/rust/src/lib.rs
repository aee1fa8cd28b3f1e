//! `{{component}}`: counts the messages on `in` and sends each on `out` with its number.

use wasmflo_guest::prelude::*;

/// The participant: one per process instance.
#[derive(Debug, Default)]
pub struct {{type}} {
    seen: u64,
}

impl Participant for {{type}} {
    fn definition() -> Definition {
        Definition::new("{{component}}")
            .label("Numbers the messages it forwards")
            .icon("cog")
            .inport(Port::new("in", "any").description("Any JSON message"))
            .outport(Port::new("out", "object").description("{\"n\": count, \"message\": the message}"))
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        let message: serde_json::Value = msg.json()?;
        self.seen += 1;
        ctx.send_json("out", &serde_json::json!({"n": self.seen, "message": message}))
    }
}

wasmflo_guest::export!({{type}});
