//! `Nack`: why a participant refused a message.

use core::fmt;

/// The class of a refusal; tells the host whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NackKind {
    /// The message is malformed or of the wrong type; retrying will not help.
    InvalidInput,
    /// A transient condition; the message may succeed later.
    Unavailable,
    /// The participant itself failed.
    Internal,
}

impl NackKind {
    /// The WIT spelling (`invalid-input`, `unavailable`, `internal`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid-input",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for NackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the host dead-letters it with this kind and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    kind: NackKind,
    reason: String,
}

impl Nack {
    /// A refusal of the given kind.
    pub fn new(kind: NackKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }

    /// The message is malformed or of the wrong type.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        Self::new(NackKind::InvalidInput, reason)
    }

    /// A transient condition; the message may succeed later.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(NackKind::Unavailable, reason)
    }

    /// The participant itself failed.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(NackKind::Internal, reason)
    }

    /// The class of this refusal.
    pub fn kind(&self) -> NackKind {
        self.kind
    }

    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub(crate) fn into_parts(self) -> (NackKind, String) {
        (self.kind, self.reason)
    }
}

impl fmt::Display for Nack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.reason)
    }
}

impl std::error::Error for Nack {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_kind_and_reason() {
        let nack = Nack::invalid_input("not a number");
        assert_eq!(nack.kind(), NackKind::InvalidInput);
        assert_eq!(nack.reason(), "not a number");
        assert_eq!(Nack::unavailable("x").kind(), NackKind::Unavailable);
        assert_eq!(Nack::internal("x").kind(), NackKind::Internal);
    }

    #[test]
    fn display_uses_wit_spelling() {
        assert_eq!(Nack::invalid_input("bad").to_string(), "invalid-input: bad");
    }
}
