//! `temperature/Display`: logs each message as text at info level.

use serde::de::IgnoredAny;
use wasmflo_guest::prelude::*;

/// The text to log for `msg`.
///
/// A JSON string prints without quotes; other JSON prints as received (trimmed);
/// a non-JSON UTF-8 payload prints as is. Invalid JSON, or a non-JSON payload that is not
/// UTF-8, is invalid input.
pub fn text(msg: &Message) -> Result<String, Nack> {
    if !msg.is_json() {
        return msg.text().map(str::to_owned);
    }
    let raw = msg.text()?.trim();
    if raw.starts_with('"') {
        return msg.json::<String>();
    }
    msg.json::<IgnoredAny>()?;
    Ok(raw.to_owned())
}

/// The participant; stateless, no outports.
#[derive(Debug, Default)]
pub struct Display;

impl Participant for Display {
    fn definition() -> Definition {
        Definition::new("temperature/Display")
            .label("Shows text in the log")
            .icon("desktop")
            .inport(Port::new("in", "any").description("Text (a JSON string) or any JSON"))
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        ctx.info(text(&msg)?);
        Ok(())
    }
}

wasmflo_guest::export!(Display);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmflo_guest::Effect;

    fn shown(payload: Message) -> Result<Vec<Effect>, Nack> {
        let mut ctx = Context::recording_for(&Display::definition());
        Display.process(&mut ctx, "in", payload)?;
        Ok(ctx.take_effects())
    }

    #[test]
    fn strings_print_without_quotes() -> Result<(), Nack> {
        assert_eq!(
            shown(Message::from_json("Temperature: 22.3 C")?)?,
            [Effect::Log {
                level: LogLevel::Info,
                text: "Temperature: 22.3 C".into()
            }]
        );
        Ok(())
    }

    #[test]
    fn other_json_prints_as_json() -> Result<(), Nack> {
        assert_eq!(
            text(&Message::bytes("", " {\"a\": [1, 2]}\n"))?,
            "{\"a\": [1, 2]}"
        );
        assert_eq!(text(&Message::bytes("", "22.5"))?, "22.5");
        assert_eq!(text(&Message::bytes("text/plain", "plain"))?, "plain");
        Ok(())
    }

    #[test]
    fn invalid_json_is_invalid_input() {
        let nack = text(&Message::bytes("", "{oops")).err();
        assert_eq!(nack.map(|n| n.kind()), Some(NackKind::InvalidInput));
    }
}
