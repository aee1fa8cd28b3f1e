//! `test/Flaky`: the workflow task `flaky(x) = x` that acks the first call it ever gets
//! without answering (a lost message, as from a node dying mid-task), and answers every
//! later call: a dispatcher's timeout and retry are what make it succeed.

use task_common::{parse_call, positional};
use wasmflo_guest::prelude::*;

/// Counts calls.
#[derive(Debug, Default)]
pub struct Flaky {
    calls: u64,
}

impl Participant for Flaky {
    fn definition() -> Definition {
        Definition::new("test/Flaky")
            .label("Loses its first call")
            .inport(Port::new("in", "object"))
            .outport(Port::new("out", "any"))
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        self.calls += 1;
        let (args, kwargs, _id) = parse_call(&msg)?;
        let [x] = positional::<1>(&args, &kwargs)?;
        if self.calls == 1 {
            return Ok(());
        }
        ctx.send_json("out", x)
    }
}

wasmflo_guest::export!(Flaky);
