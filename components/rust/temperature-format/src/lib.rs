//! `temperature/Format`: turns a temperature in °C into `"Temperature: 22.3 C"`.
//!
//! One decimal, rounded half away from zero; a value that rounds to zero prints as `0.0`
//! (never `-0.0`). See [`temperature_units::one_decimal`].
//!
//! The device build (`wasmflo_guest::DEVICE`) reads and writes JSON with the SDK's
//! serde-free helpers (`Message::json_f64`, `json_string`, `Context::send_json_str`):
//! the same values, outputs and nack kinds, shorter nack reasons, and a component a few
//! times smaller, which on a device is RAM (the interpreter copies every function body).
//! Texts are joined with `wasmflo_guest::concat` rather than `format!` on every path the
//! device build takes: `core::fmt` is code the interpreter would translate and keep.

use temperature_units::Unit;
use wasmflo_guest::prelude::*;
use wasmflo_guest::{DEVICE, concat};

/// Parses a temperature message: a finite JSON number in °C.
pub fn parse_celsius(msg: &Message) -> Result<f64, Nack> {
    let value = if DEVICE {
        msg.json_f64()
    } else {
        msg.json::<f64>()
    };
    value.map_err(|n| {
        Nack::invalid_input(concat(&[
            "expected a temperature in °C as a JSON number: ",
            n.reason(),
        ]))
    })
}

/// Parses a `unit` parameter: the JSON string `"C"`, `"F"` or `"K"`.
pub fn parse_unit(msg: &Message) -> Result<Unit, Nack> {
    let symbol = if DEVICE {
        msg.json_string()
    } else {
        msg.json::<String>()
    };
    let symbol = symbol.map_err(|n| {
        Nack::invalid_input(concat(&[
            "unit must be the JSON string \"C\", \"F\" or \"K\": ",
            n.reason(),
        ]))
    })?;
    Unit::parse(&symbol).ok_or_else(|| {
        Nack::invalid_input(concat(&[
            "unknown unit \"",
            &symbol,
            "\": expected \"C\", \"F\" or \"K\"",
        ]))
    })
}

/// The text for `celsius` in `unit`, or an invalid-input nack if it is not finite there.
pub fn format(celsius: f64, unit: Unit) -> Result<String, Nack> {
    let Some(text) = temperature_units::display(celsius, unit) else {
        // The device build names no value: printing an f64 takes core::fmt's float code.
        return Err(Nack::invalid_input(if DEVICE {
            concat(&["temperature is not finite in ", unit.symbol()])
        } else {
            format!("temperature {celsius} °C is not finite in {unit}")
        }));
    };
    Ok(concat(&["Temperature: ", &text]))
}

/// Sends `text` as a JSON string on `port`.
fn send_text(ctx: &mut Context, port: &str, text: &str) -> Result<(), Nack> {
    if DEVICE {
        ctx.send_json_str(port, text)
    } else {
        ctx.send_json(port, text)
    }
}

/// The participant: the unit of one instance.
#[derive(Debug, Default)]
pub struct Format {
    unit: Unit,
}

impl Participant for Format {
    fn definition() -> Definition {
        Definition::new("temperature/Format")
            .label("Formats a temperature as text")
            .icon("font")
            .inport(Port::new("in", "number").description("Temperature in °C"))
            .inport(
                Port::new("unit", "string")
                    .description("\"C\" (default), \"F\" or \"K\"")
                    .parameter(),
            )
            .outport(Port::new("out", "string").description("\"Temperature: 22.3 C\""))
            .outport(
                Port::new("error", "object")
                    .description("{\"error\": reason, \"port\": port} for each refused message"),
            )
    }

    fn process(&mut self, ctx: &mut Context, port: &str, msg: Message) -> Result<(), Nack> {
        match port {
            "in" => {
                let text = format(parse_celsius(&msg)?, self.unit)?;
                send_text(ctx, "out", &text)
            }
            "unit" => {
                self.unit = parse_unit(&msg)?;
                Ok(())
            }
            other => Err(Nack::invalid_input(concat(&[
                "unknown inport `",
                other,
                "`",
            ]))),
        }
    }
}

wasmflo_guest::export!(Format);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &mut Format, port: &str, payload: &str) -> Result<Vec<String>, Nack> {
        let mut ctx = Context::recording_for(&Format::definition());
        f.process(&mut ctx, port, Message::bytes("", payload))?;
        ctx.sent().iter().map(|(_, m)| m.json::<String>()).collect()
    }

    #[test]
    fn formats_celsius_by_default() -> Result<(), Nack> {
        let mut f = Format::default();
        assert_eq!(run(&mut f, "in", "22.3333333")?, ["Temperature: 22.3 C"]);
        assert_eq!(run(&mut f, "in", "22.25")?, ["Temperature: 22.3 C"]);
        assert_eq!(run(&mut f, "in", "-5.55")?, ["Temperature: -5.6 C"]);
        assert_eq!(run(&mut f, "in", "-0.01")?, ["Temperature: 0.0 C"]);
        assert_eq!(run(&mut f, "in", "21")?, ["Temperature: 21.0 C"]);
        Ok(())
    }

    #[test]
    fn unit_parameter_converts() -> Result<(), Nack> {
        let mut f = Format::default();
        assert!(run(&mut f, "unit", "\"F\"")?.is_empty());
        assert_eq!(run(&mut f, "in", "22.3333333")?, ["Temperature: 72.2 F"]);
        run(&mut f, "unit", "\"K\"")?;
        assert_eq!(run(&mut f, "in", "22.3333333")?, ["Temperature: 295.5 K"]);
        Ok(())
    }

    #[test]
    fn unknown_unit_names_it() {
        let mut f = Format::default();
        let nack = run(&mut f, "unit", "\"R\"").err();
        assert_eq!(
            nack.as_ref().map(|n| (n.kind(), n.reason())),
            Some((
                NackKind::InvalidInput,
                "unknown unit \"R\": expected \"C\", \"F\" or \"K\""
            ))
        );
        assert_eq!(f.unit, Unit::Celsius);
    }

    #[test]
    fn non_numbers_are_invalid_input() {
        let mut f = Format::default();
        for payload in ["\"hot\"", "null", "{}", "NaN", "1e999"] {
            let nack = run(&mut f, "in", payload).err();
            assert_eq!(
                nack.map(|n| n.kind()),
                Some(NackKind::InvalidInput),
                "{payload}"
            );
        }
    }

    /// The device build's helpers give the standard build's values, verdicts and output
    /// bytes (the SDK's `lite` tests compare them with serde_json at length).
    #[test]
    fn device_helpers_agree_with_serde() -> Result<(), Nack> {
        let payloads = [
            "22.3333333",
            " -5.55 ",
            "1e999",
            "-0",
            "NaN",
            "\"F\"",
            "\"\\u0046\"",
            "null",
            "18446744073709551616.25",
            "1.7976931348623157e308",
            "2e-400",
            "1.",
            "",
        ];
        for payload in payloads {
            let msg = Message::bytes("", payload);
            let standard = msg.json::<f64>().map(f64::to_bits).map_err(|n| n.kind());
            let device = msg.json_f64().map(f64::to_bits).map_err(|n| n.kind());
            assert_eq!(device, standard, "{payload}");
            let standard = msg.json::<String>().map_err(|n| n.kind());
            assert_eq!(
                msg.json_string().map_err(|n| n.kind()),
                standard,
                "{payload}"
            );
            if let Ok(celsius) = msg.json::<f64>() {
                for unit in [Unit::Celsius, Unit::Fahrenheit, Unit::Kelvin] {
                    if let Ok(text) = format(celsius, unit) {
                        assert_eq!(Message::from_json_str(&text), Message::from_json(&text)?);
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn overflow_in_target_unit_is_invalid_input() {
        let nack = format(f64::MAX, Unit::Fahrenheit).err();
        assert_eq!(nack.map(|n| n.kind()), Some(NackKind::InvalidInput));
    }
}
