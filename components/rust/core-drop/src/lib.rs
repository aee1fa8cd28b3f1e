//! `core/Drop`: acks and discards every message on `in`.

use wasmflo_guest::prelude::*;

/// The participant; stateless, no outports.
#[derive(Debug, Default)]
pub struct Drop;

impl Participant for Drop {
    fn definition() -> Definition {
        Definition::new("core/Drop")
            .label("Discards its input")
            .icon("trash")
            .inport(Port::new("in", "any").description("Any message, discarded"))
    }

    fn process(&mut self, _ctx: &mut Context, _port: &str, _msg: Message) -> Result<(), Nack> {
        Ok(())
    }
}

wasmflo_guest::export!(Drop);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discards() -> Result<(), Nack> {
        let mut ctx = Context::recording_for(&Drop::definition());
        Drop.process(&mut ctx, "in", Message::from_json(&1)?)?;
        assert!(ctx.effects().is_empty());
        Ok(())
    }
}
