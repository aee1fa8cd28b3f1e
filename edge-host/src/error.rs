//! Why a component cannot be loaded on the edge host.

use alloc::string::String;
use core::fmt;

use crate::fault::FaultKind;

/// The world version this host implements.
pub const WORLD: &str = "wasmflo:participant@0.1.0";

/// Why a component could not be loaded. The server host's `LoadError` without the path:
/// the edge host loads bytes (often straight from flash); callers name the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Not WebAssembly at all.
    NotWasm,
    /// A core module rather than a component.
    CoreModule,
    /// The component binary is malformed.
    Malformed {
        /// Byte offset of the problem.
        offset: usize,
        /// The parser's message.
        detail: String,
    },
    /// The component uses a feature this edge host does not implement.
    Unsupported {
        /// What it uses.
        detail: String,
    },
    /// The component targets another world or another version of ours.
    WrongWorld {
        /// What is missing or extra.
        detail: String,
    },
    /// wasmi rejected one of the component's core modules, or linking failed.
    Invalid {
        /// wasmi's message.
        detail: String,
    },
    /// Instantiation or the `definition` call failed.
    Start {
        /// Fault kind.
        kind: FaultKind,
        /// Detail.
        detail: String,
    },
    /// The definition is unusable (empty or duplicate port names).
    BadDefinition {
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotWasm => f.write_str("not a WebAssembly component (no `\\0asm` header)"),
            LoadError::CoreModule => write!(
                f,
                "is a core WebAssembly module, not a component; build it for the {WORLD} world"
            ),
            LoadError::Malformed { offset, detail } => {
                write!(f, "malformed component at byte {offset}: {detail}")
            }
            LoadError::Unsupported { detail } => {
                write!(f, "uses what the edge host does not support: {detail}")
            }
            LoadError::WrongWorld { detail } => {
                write!(f, "does not implement the {WORLD} world: {detail}")
            }
            LoadError::Invalid { detail } => write!(f, "invalid component: {detail}"),
            LoadError::Start { kind, detail } => {
                write!(f, "fails while starting ({kind}): {detail}")
            }
            LoadError::BadDefinition { detail } => write!(f, "bad definition: {detail}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LoadError {}
