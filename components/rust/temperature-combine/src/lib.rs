//! `temperature/Combine`: joins the latest inside and outside temperatures into
//! `"Inside: 22.2 C Outside: -5.5 C"`, once both are known, on every update.

use temperature_units::Unit;
use wasmflo_guest::prelude::*;

/// The line for an inside and an outside temperature (°C), or `None` if one is not finite.
pub fn line(inside: f64, outside: f64) -> Option<String> {
    let inside = temperature_units::display(inside, Unit::Celsius)?;
    let outside = temperature_units::display(outside, Unit::Celsius)?;
    Some(format!("Inside: {inside} Outside: {outside}"))
}

/// The participant: the latest value of each side.
#[derive(Debug, Default)]
pub struct Combine {
    inside: Option<f64>,
    outside: Option<f64>,
}

impl Participant for Combine {
    fn definition() -> Definition {
        Definition::new("temperature/Combine")
            .label("Combines inside and outside temperatures")
            .icon("exchange")
            .inport(Port::new("inside", "number").description("Inside temperature in °C"))
            .inport(Port::new("outside", "number").description("Outside temperature in °C"))
            .outport(Port::new("out", "string").description("\"Inside: 22.2 C Outside: -5.5 C\""))
            .outport(
                Port::new("error", "object")
                    .description("{\"error\": reason, \"port\": port} for each refused message"),
            )
    }

    fn process(&mut self, ctx: &mut Context, port: &str, msg: Message) -> Result<(), Nack> {
        let value: f64 = msg.json().map_err(|n| {
            Nack::invalid_input(format!(
                "port `{port}` expects a temperature in °C as a JSON number: {}",
                n.reason()
            ))
        })?;
        match port {
            "inside" => self.inside = Some(value),
            "outside" => self.outside = Some(value),
            other => return Err(Nack::invalid_input(format!("unknown inport `{other}`"))),
        }
        match (self.inside, self.outside) {
            (Some(inside), Some(outside)) => match line(inside, outside) {
                Some(text) => ctx.send_json("out", &text),
                None => Err(Nack::invalid_input("temperature is not finite")),
            },
            _ => Ok(()),
        }
    }
}

wasmflo_guest::export!(Combine);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_once_both_known_then_on_every_update() -> Result<(), Nack> {
        let mut c = Combine::default();
        let mut ctx = Context::recording_for(&Combine::definition());
        c.process(&mut ctx, "inside", Message::from_json(&22.2)?)?;
        assert!(ctx.sent().is_empty());
        c.process(&mut ctx, "outside", Message::from_json(&-5.5)?)?;
        c.process(&mut ctx, "inside", Message::from_json(&21.96)?)?;
        let lines: Vec<String> = ctx
            .sent()
            .iter()
            .map(|(_, m)| m.json::<String>())
            .collect::<Result<_, _>>()?;
        assert_eq!(
            lines,
            [
                "Inside: 22.2 C Outside: -5.5 C",
                "Inside: 22.0 C Outside: -5.5 C"
            ]
        );
        Ok(())
    }

    #[test]
    fn non_numbers_are_invalid_input_naming_the_port() {
        let mut c = Combine::default();
        let mut ctx = Context::recording();
        let nack = c
            .process(&mut ctx, "outside", Message::bytes("", "\"cold\""))
            .err();
        assert!(
            nack.as_ref()
                .is_some_and(|n| n.kind() == NackKind::InvalidInput
                    && n.reason().starts_with("port `outside` expects"))
        );
    }
}
