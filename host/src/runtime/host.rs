//! The `host` interface the participant world imports: send, log, timers.

use std::time::Duration;

use super::bindings::wasmflo::participant::host;
use super::instance::{InstanceState, TimerCommand};
use super::wit;
use crate::message::Message;

/// Refused sends a guest may ignore before the host traps it.
const REFUSALS_BEFORE_TRAP: u32 = 100;

impl wit::Host for InstanceState {}

impl InstanceState {
    fn try_send(&mut self, port: String, msg: wit::MessageResult) -> Result<(), wit::SendError> {
        let Some(index) = self.definition.outport_index(&port) else {
            self.violation
                .get_or_insert_with(|| format!("sent on undeclared outport '{port}'"));
            return Err(wit::SendError::UnknownPort);
        };
        if msg.data.len() > self.max_message {
            self.violation.get_or_insert_with(|| {
                format!(
                    "sent {} bytes on '{port}', more than the {} allowed",
                    msg.data.len(),
                    self.max_message
                )
            });
            return Err(wit::SendError::TooLarge);
        }
        if self.sends >= self.max_sends {
            self.violation.get_or_insert_with(|| {
                format!("sent more than {} messages in one call", self.max_sends)
            });
            return Err(wit::SendError::TooMany);
        }
        self.sends += 1;
        let mut out = Message {
            content_type: msg.content_type,
            data: msg.data.into(),
            metadata: msg.metadata,
        };
        out.inherit_metadata(&self.input_metadata);
        self.outputs.push((index, out));
        Ok(())
    }
}

impl host::Host for InstanceState {
    fn send(
        &mut self,
        port: String,
        msg: wit::MessageResult,
    ) -> wasmtime::Result<Result<(), wit::SendError>> {
        if self.violation.is_some() {
            self.refused += 1;
            if self.refused > REFUSALS_BEFORE_TRAP {
                return Err(wasmtime::Error::msg(
                    "guest kept sending after its sends were refused",
                ));
            }
        }
        Ok(self.try_send(port, msg))
    }

    fn log(&mut self, level: wit::LogLevel, text: String) {
        let process = &*self.process;
        match level {
            wit::LogLevel::Trace => tracing::trace!(target: "guest", "[{process}] {text}"),
            wit::LogLevel::Debug => tracing::debug!(target: "guest", "[{process}] {text}"),
            wit::LogLevel::Info => tracing::info!(target: "guest", "[{process}] {text}"),
            wit::LogLevel::Warn => tracing::warn!(target: "guest", "[{process}] {text}"),
            wit::LogLevel::Error => tracing::error!(target: "guest", "[{process}] {text}"),
        }
    }

    fn set_timer(&mut self, id: u32, after_ms: u32, repeat: bool) {
        let after = Duration::from_millis(u64::from(after_ms.max(1)));
        self.timers.push(TimerCommand::Set { id, after, repeat });
    }

    fn cancel_timer(&mut self, id: u32) {
        self.timers.push(TimerCommand::Cancel(id));
    }
}
