//! The edge host's message and call-outcome types (the server host's, without `bytes`).

use alloc::string::String;
use alloc::vec::Vec;

use crate::fault::Fault;

/// One message on a port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// MIME type of `data`; empty means `application/json`.
    pub content_type: String,
    /// The payload.
    pub data: Vec<u8>,
    /// String pairs carried along the graph (correlation id, reply-to, ...).
    pub metadata: Vec<(String, String)>,
}

impl Message {
    /// A JSON message from already-serialised JSON text (or any bytes claimed to be JSON).
    pub fn json_text(text: impl Into<Vec<u8>>) -> Self {
        Message {
            content_type: String::new(),
            data: text.into(),
            metadata: Vec::new(),
        }
    }

    /// Copies every pair of `input` that this message does not set itself, as the server
    /// host does for messages sent while processing `input`.
    pub fn inherit_metadata(&mut self, input: &[(String, String)]) {
        for (k, v) in input {
            if !self.metadata.iter().any(|(own, _)| own == k) {
                self.metadata.push((k.clone(), v.clone()));
            }
        }
    }
}

/// Severity of a guest's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `trace`
    Trace,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
}

impl LogLevel {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A timer change the guest asked for during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerCommand {
    /// Arm timer `id`.
    Set {
        /// Timer id chosen by the guest.
        id: u32,
        /// Milliseconds before the first expiry (at least 1, as in the server host).
        after_ms: u32,
        /// Re-fire every `after_ms`.
        repeat: bool,
    },
    /// Disarm timer `id`.
    Cancel(u32),
}

/// What one guest call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// Messages sent, as (outport index, message), in send order. Empty if the call
    /// failed: a failed message publishes nothing.
    pub outputs: Vec<(usize, Message)>,
    /// Timer changes, in order.
    pub timers: Vec<TimerCommand>,
    /// Log lines, in order (the server host writes these to its log instead).
    pub logs: Vec<(LogLevel, String)>,
    /// Fuel the call consumed.
    pub fuel: u64,
    /// `Err` when the call failed; recreate the instance if the kind
    /// [poisons](crate::FaultKind::poisons_instance) it.
    pub result: Result<(), Fault>,
}
