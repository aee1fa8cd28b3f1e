//! `Context`: what a participant can do while handling a call — send, log, arm timers.

use core::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::{Definition, Message, Nack, glue};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the participant handled.
    Warn,
    /// A failure.
    Error,
}

/// Why the host refused a `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendError {
    /// The component did not declare this outport.
    UnknownPort,
    /// The message is larger than the process allows.
    TooLarge,
    /// The guest sent more messages during one call than the process allows.
    TooMany,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownPort => "unknown-port",
            Self::TooLarge => "too-large",
            Self::TooMany => "too-many",
        })
    }
}

impl std::error::Error for SendError {}

/// One side effect recorded by a [`Context::recording`] context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A message sent on an outport.
    Send {
        /// The outport.
        port: String,
        /// The message.
        msg: Message,
    },
    /// A log line.
    Log {
        /// Its severity.
        level: LogLevel,
        /// Its text.
        text: String,
    },
    /// A timer armed.
    SetTimer {
        /// Timer id.
        id: u32,
        /// Delay in milliseconds.
        after_ms: u32,
        /// Whether it repeats every `after_ms`.
        repeat: bool,
    },
    /// A timer disarmed.
    CancelTimer {
        /// Timer id.
        id: u32,
    },
}

#[derive(Debug)]
enum Sink {
    Host,
    Recording {
        outports: Option<Vec<String>>,
        effects: Vec<Effect>,
    },
}

/// The participant's handle to its host during one call.
///
/// Inside a component every method goes straight to the host. [`Context::recording`]
/// makes a context that records effects instead, for native unit tests.
#[derive(Debug)]
pub struct Context {
    sink: Sink,
}

impl Context {
    pub(crate) fn host() -> Self {
        Self { sink: Sink::Host }
    }

    /// A context that records every effect instead of calling a host; accepts any outport.
    pub fn recording() -> Self {
        Self {
            sink: Sink::Recording {
                outports: None,
                effects: Vec::new(),
            },
        }
    }

    /// A recording context that refuses sends on ports `definition` does not declare,
    /// like the host does.
    pub fn recording_for(definition: &Definition) -> Self {
        let outports = definition
            .outports()
            .iter()
            .map(|p| p.id().to_owned())
            .collect();
        Self {
            sink: Sink::Recording {
                outports: Some(outports),
                effects: Vec::new(),
            },
        }
    }

    /// Effects recorded so far; always empty for a host context.
    pub fn effects(&self) -> &[Effect] {
        match &self.sink {
            Sink::Host => &[],
            Sink::Recording { effects, .. } => effects,
        }
    }

    /// Takes the recorded effects, leaving none.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        match &mut self.sink {
            Sink::Host => Vec::new(),
            Sink::Recording { effects, .. } => std::mem::take(effects),
        }
    }

    /// Messages sent so far by a recording context, as `(port, message)`.
    pub fn sent(&self) -> Vec<(&str, &Message)> {
        self.effects()
            .iter()
            .filter_map(|e| match e {
                Effect::Send { port, msg } => Some((port.as_str(), msg)),
                _ => None,
            })
            .collect()
    }

    /// Sends `msg` on outport `port`, returning the host's refusal as is.
    pub fn try_send(&mut self, port: &str, msg: Message) -> Result<(), SendError> {
        match &mut self.sink {
            Sink::Host => glue::send(port, msg),
            Sink::Recording { outports, effects } => {
                if let Some(known) = outports
                    && !known.iter().any(|p| p == port)
                {
                    return Err(SendError::UnknownPort);
                }
                effects.push(Effect::Send {
                    port: port.to_owned(),
                    msg,
                });
                Ok(())
            }
        }
    }

    /// Sends `msg` on outport `port`; a refusal becomes an internal nack naming the port.
    pub fn send(&mut self, port: &str, msg: Message) -> Result<(), Nack> {
        self.try_send(port, msg)
            .map_err(|err| Nack::internal(format!("cannot send on outport `{port}`: {err}")))
    }

    /// Sends `value` as a JSON message on outport `port`.
    pub fn send_json<T: Serialize + ?Sized>(&mut self, port: &str, value: &T) -> Result<(), Nack> {
        self.send(port, Message::from_json(value)?)
    }

    /// Sends the JSON string `text` on outport `port`, without serde
    /// ([`Message::from_json_str`]).
    pub fn send_json_str(&mut self, port: &str, text: &str) -> Result<(), Nack> {
        self.send(port, Message::from_json_str(text))
    }

    /// Writes a log line attributed to this process.
    pub fn log(&mut self, level: LogLevel, text: impl fmt::Display) {
        let text = text.to_string();
        match &mut self.sink {
            Sink::Host => glue::log(level, &text),
            Sink::Recording { effects, .. } => effects.push(Effect::Log { level, text }),
        }
    }

    /// Logs at trace level.
    pub fn trace(&mut self, text: impl fmt::Display) {
        self.log(LogLevel::Trace, text);
    }

    /// Logs at debug level.
    pub fn debug(&mut self, text: impl fmt::Display) {
        self.log(LogLevel::Debug, text);
    }

    /// Logs at info level.
    pub fn info(&mut self, text: impl fmt::Display) {
        self.log(LogLevel::Info, text);
    }

    /// Logs at warn level.
    pub fn warn(&mut self, text: impl fmt::Display) {
        self.log(LogLevel::Warn, text);
    }

    /// Logs at error level.
    pub fn error(&mut self, text: impl fmt::Display) {
        self.log(LogLevel::Error, text);
    }

    /// Arms timer `id` to fire once after `after`; re-arming replaces it.
    pub fn set_timer(&mut self, id: u32, after: Duration) {
        self.arm(id, after, false);
    }

    /// Arms timer `id` to fire every `every`; re-arming replaces it.
    pub fn set_repeating_timer(&mut self, id: u32, every: Duration) {
        self.arm(id, every, true);
    }

    /// Disarms timer `id`; a timer that is not armed is ignored.
    pub fn cancel_timer(&mut self, id: u32) {
        match &mut self.sink {
            Sink::Host => glue::cancel_timer(id),
            Sink::Recording { effects, .. } => effects.push(Effect::CancelTimer { id }),
        }
    }

    fn arm(&mut self, id: u32, after: Duration, repeat: bool) {
        // The WIT carries milliseconds as u32 (~49 days); longer delays saturate.
        let after_ms = u32::try_from(after.as_millis()).unwrap_or(u32::MAX);
        match &mut self.sink {
            Sink::Host => glue::set_timer(id, after_ms, repeat),
            Sink::Recording { effects, .. } => effects.push(Effect::SetTimer {
                id,
                after_ms,
                repeat,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Port;

    #[test]
    fn recording_collects_effects_in_order() -> Result<(), Nack> {
        let mut ctx = Context::recording();
        ctx.send_json("out", &1)?;
        ctx.info(format_args!("x = {}", 2));
        ctx.set_repeating_timer(7, Duration::from_millis(250));
        ctx.cancel_timer(7);
        assert_eq!(
            ctx.effects()[1],
            Effect::Log {
                level: LogLevel::Info,
                text: "x = 2".into()
            }
        );
        assert_eq!(
            ctx.effects()[2],
            Effect::SetTimer {
                id: 7,
                after_ms: 250,
                repeat: true
            }
        );
        let sent = ctx.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "out");
        assert_eq!(sent[0].1.data(), b"1");
        assert_eq!(ctx.take_effects().len(), 4);
        assert!(ctx.effects().is_empty());
        Ok(())
    }

    #[test]
    fn recording_for_refuses_unknown_ports() {
        let def = Definition::new("x/Y").outport(Port::new("out", "any"));
        let mut ctx = Context::recording_for(&def);
        assert_eq!(ctx.try_send("out", Message::default()), Ok(()));
        assert_eq!(
            ctx.try_send("nope", Message::default()),
            Err(SendError::UnknownPort)
        );
        let nack = ctx.send("nope", Message::default()).err();
        assert_eq!(
            nack.as_ref().map(Nack::reason),
            Some("cannot send on outport `nope`: unknown-port")
        );
    }

    #[test]
    fn long_timers_saturate() {
        let mut ctx = Context::recording();
        ctx.set_timer(1, Duration::from_secs(u64::MAX));
        assert_eq!(
            ctx.effects()[0],
            Effect::SetTimer {
                id: 1,
                after_ms: u32::MAX,
                repeat: false
            }
        );
    }
}
