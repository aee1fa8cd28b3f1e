//! `test/BigDefinition`: a definition with 1,000 inports, which the host must refuse
//! at load time (it bounds ports and definition text).

use wasmflo_guest::prelude::*;

/// The participant.
#[derive(Debug, Default)]
pub struct Big;

impl Participant for Big {
    fn definition() -> Definition {
        (0..1000).fold(Definition::new("test/BigDefinition"), |d, i| {
            d.inport(Port::new(format!("in{i}"), "any"))
        })
    }

    fn process(&mut self, _ctx: &mut Context, _port: &str, _msg: Message) -> Result<(), Nack> {
        Ok(())
    }
}

wasmflo_guest::export!(Big);
