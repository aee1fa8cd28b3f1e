//! Why a call failed: the same host-independent fault kinds the server host reports.

use alloc::string::String;
use core::fmt;

/// The kind of fault that failed one call. Names and meanings match
/// `wasmflo_host::fault::FaultKind` one for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The guest refused the message as malformed (`nack-kind::invalid-input`).
    InvalidInput,
    /// The guest refused the message as transiently unprocessable.
    Unavailable,
    /// The guest reported an internal failure.
    Internal,
    /// The guest trapped (unreachable, out-of-bounds access, panic, bad canonical ABI value).
    Trap,
    /// The guest used up its fuel for one call: the edge host's CPU deadline.
    Timeout,
    /// The guest tried to grow its memory past the cap.
    MemoryExhausted,
    /// The guest overflowed its stack.
    StackOverflow,
    /// The guest broke a host limit (too many or too large messages sent).
    LimitExceeded,
}

impl FaultKind {
    /// Stable kebab-case name, identical to the server host's.
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

/// A failed call: what kind of fault and the detail (the guest's reason or the trap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What kind of fault.
    pub kind: FaultKind,
    /// The guest's reason or a one-line description of the trap.
    pub detail: String,
}

impl Fault {
    pub(crate) fn new(kind: FaultKind, detail: impl Into<String>) -> Self {
        Fault {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Fault {}
