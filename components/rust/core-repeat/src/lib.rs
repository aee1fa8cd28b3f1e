//! `core/Repeat`: sends every message from `in` on `out` unchanged.

use wasmflo_guest::prelude::*;

/// The participant; stateless.
#[derive(Debug, Default)]
pub struct Repeat;

impl Participant for Repeat {
    fn definition() -> Definition {
        Definition::new("core/Repeat")
            .label("Repeats input unchanged")
            .icon("forward")
            .inport(Port::new("in", "any").description("Any message"))
            .outport(Port::new("out", "any").description("The same message"))
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        ctx.send("out", msg)
    }
}

wasmflo_guest::export!(Repeat);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_unchanged() -> Result<(), Nack> {
        let mut ctx = Context::recording_for(&Repeat::definition());
        let msg = Message::bytes("text/plain", "hi").with_metadata("k", "v");
        Repeat.process(&mut ctx, "in", msg.clone())?;
        assert_eq!(ctx.sent(), vec![("out", &msg)]);
        Ok(())
    }
}
