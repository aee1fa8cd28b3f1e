//! `core/Output`: logs each payload at info level and sends the message on unchanged.

use wasmflo_guest::prelude::*;

/// The participant; stateless.
#[derive(Debug, Default)]
pub struct Output;

impl Participant for Output {
    fn definition() -> Definition {
        Definition::new("core/Output")
            .label("Logs its input and sends it on")
            .icon("bug")
            .inport(Port::new("in", "any").description("Any message"))
            .outport(Port::new("out", "any").description("The same message"))
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        ctx.info(describe(&msg));
        ctx.send("out", msg)
    }
}

/// The log line for `msg`: its payload as text when it is UTF-8 (JSON as is), otherwise
/// `<N bytes of content/type>`.
pub fn describe(msg: &Message) -> String {
    match msg.text() {
        Ok(text) => text.to_owned(),
        Err(_) => format!("<{} bytes of {}>", msg.data().len(), msg.content_type()),
    }
}

wasmflo_guest::export!(Output);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_then_forwards() -> Result<(), Nack> {
        let mut ctx = Context::recording_for(&Output::definition());
        let msg = Message::from_json("a b")?;
        Output.process(&mut ctx, "in", msg.clone())?;
        assert_eq!(
            ctx.effects()[0],
            wasmflo_guest::Effect::Log {
                level: LogLevel::Info,
                text: r#""a b""#.into()
            }
        );
        assert_eq!(ctx.sent(), vec![("out", &msg)]);
        Ok(())
    }

    #[test]
    fn describes_binary_payloads() {
        let msg = Message::bytes("application/octet-stream", vec![0xff, 0, 1]);
        assert_eq!(describe(&msg), "<3 bytes of application/octet-stream>");
        assert_eq!(describe(&Message::bytes("", "{\"a\":1}")), "{\"a\":1}");
    }
}
