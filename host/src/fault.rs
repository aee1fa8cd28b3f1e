//! Why a message failed: the host-independent fault kinds every host reports.

use std::fmt;

/// The kind of fault that failed one message. The edge host reports the same kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The guest refused the message as malformed (`nack-kind::invalid-input`).
    InvalidInput,
    /// The guest refused the message as transiently unprocessable.
    Unavailable,
    /// The guest reported an internal failure.
    Internal,
    /// The guest trapped (unreachable, out-of-bounds access, panic...).
    Trap,
    /// The guest exceeded its per-message CPU deadline.
    Timeout,
    /// The guest tried to grow its memory past the process's cap.
    MemoryExhausted,
    /// The guest overflowed its stack.
    StackOverflow,
    /// The guest broke a host limit (too many or too large messages sent).
    LimitExceeded,
}

impl FaultKind {
    /// Stable kebab-case name used in logs, dead-letter reasons and the edge host.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::InvalidInput => "invalid-input",
            FaultKind::Unavailable => "unavailable",
            FaultKind::Internal => "internal",
            FaultKind::Trap => "trap",
            FaultKind::Timeout => "timeout",
            FaultKind::MemoryExhausted => "memory-exhausted",
            FaultKind::StackOverflow => "stack-overflow",
            FaultKind::LimitExceeded => "limit-exceeded",
        }
    }

    /// Whether the instance is in an unknown state afterwards and must be recreated.
    /// A nack is the guest's own decision; every other fault interrupted it mid-way.
    pub fn poisons_instance(self) -> bool {
        !matches!(
            self,
            FaultKind::InvalidInput | FaultKind::Unavailable | FaultKind::Internal
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed message: which process and port, what kind of fault, and the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("process '{process}' port '{port}': {kind}: {detail}")]
pub struct Fault {
    /// The graph process (role) whose participant failed.
    pub process: String,
    /// The inport the message arrived on (or `timer:<id>` for a timer call).
    pub port: String,
    /// What kind of fault.
    pub kind: FaultKind,
    /// The guest's reason or the trap message.
    pub detail: String,
}
