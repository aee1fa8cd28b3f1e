//! The FBP network protocol (fbp-protocol 0.8, as Flowhub, noflo-ui, fbp-test and
//! fbp-spec speak it) over WebSocket, sub-protocol `noflo`.
//!
//! - [`envelope`]: parsing client messages and writing replies (pure);
//! - [`runtime`]: [`FbpRuntime`], the graph model, its live network and every command;
//! - [`server`]: the WebSocket server: one task owns the runtime, one per client;
//! - [`ui`]: the live web view, a page that speaks the same protocol.
//!
//! Access control (MsgFlo never checked its secret): with a secret configured, a
//! client's messages must carry it; a read secret allows watching (status, edge data,
//! sources) but no change.

pub mod envelope;
pub mod runtime;
pub mod server;
pub mod ui;

pub use envelope::{Envelope, EnvelopeError, Outgoing};
pub use runtime::{FbpRuntime, RuntimeInfo, Snapshot, To};
pub use server::{RuntimeHandle, ServerOptions, serve, spawn_runtime};
pub use ui::serve_ui;

/// What a client may do, from the secret it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything.
    Full,
    /// Watch and read, not change.
    Read,
    /// Only ask what the runtime is.
    None,
}

impl Access {
    /// The access `secret` gives, for the configured `full` and `read` secrets. With no
    /// secret configured, every client has full access.
    pub fn of(secret: Option<&str>, full: Option<&str>, read: Option<&str>) -> Access {
        if full.is_none() && read.is_none() {
            return Access::Full;
        }
        // Once any secret is set, a client without one may only ask what the runtime is.
        match secret {
            Some(s) if Some(s) == full => Access::Full,
            Some(s) if Some(s) == read => Access::Read,
            _ => Access::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_grant_what_they_say() {
        assert_eq!(Access::of(None, None, None), Access::Full);
        assert_eq!(Access::of(Some("s"), Some("s"), Some("r")), Access::Full);
        assert_eq!(Access::of(Some("r"), Some("s"), Some("r")), Access::Read);
        assert_eq!(Access::of(Some("x"), Some("s"), Some("r")), Access::None);
        assert_eq!(Access::of(None, Some("s"), None), Access::None);
        assert_eq!(Access::of(None, None, Some("r")), Access::None);
        assert_eq!(Access::of(Some("r"), None, Some("r")), Access::Read);
    }
}
