//! Workflows over task roles: Celery's Canvas (chain, group, chord, map, starmap, chunks)
//! with Celery's semantics, dispatched to participants through any [`Transport`].
//!
//! - [`signature`]: the signature tree, partial application, Celery's JSON dict form;
//! - [`parse`]: the expression language (`add(4, 4) | mul(8)`), pure;
//! - [`reference`]: the reference evaluator over plain Rust functions, pure;
//! - [`dispatch`]: the [`Dispatcher`] running a signature over a transport: correlation
//!   ids, a private reply queue per workflow, timeouts, retries with backoff;
//! - [`local`]: [`LocalWorkflows`], in-process task roles started from the components.
//!
//! A task role `NAME` is a participant with inport `in` (queue `NAME.IN`) receiving
//! `{"args": [...], "kwargs": {...}}` and outport `out` answering the result as JSON; a
//! failure is a nack. The shipped tasks are components `task/Add`, `task/Sub`,
//! `task/Mul`, `task/Xsum` and `task/Tsum` (see [`component_for`]).
//!
//! [`Transport`]: crate::transport::Transport

pub mod dispatch;
pub mod local;
pub mod parse;
pub mod random;
pub mod reference;
pub mod signature;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use dispatch::{DispatchOptions, Dispatcher};
pub use local::LocalWorkflows;
pub use parse::{ParseError, parse};
pub use signature::{Signature, SignatureError, TaskCall};

use crate::network::NetworkError;
use crate::transport::TransportError;

/// Why a workflow failed. Task failures name the task call (`add(1, "x")`).
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The expression does not parse.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The signature is not a valid workflow.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// A task answered with a failure (its nack's reason).
    #[error("task {task} failed: {reason}")]
    TaskFailed {
        /// The call, as expression text.
        task: String,
        /// Why.
        reason: String,
    },
    /// A task got no answer within its timeout, on every attempt.
    #[error("task {task} timed out: no answer within {timeout:?} in {attempts} attempts")]
    TimedOut {
        /// The call, as expression text.
        task: String,
        /// Attempts made.
        attempts: u32,
        /// Per-attempt timeout.
        timeout: Duration,
    },
    /// A chord's header member failed, so its body never ran (Celery's `ChordError`).
    #[error("chord failed: a header member failed: {0}")]
    Chord(Box<WorkflowError>),
    /// No task of that name exists.
    #[error("unknown task '{name}'")]
    UnknownTask {
        /// The name.
        name: String,
    },
    /// A task role could not be started.
    #[error("cannot start task role '{task}' ({component}): {source}")]
    Role {
        /// The task name.
        task: String,
        /// The component it maps to.
        component: String,
        /// Why.
        #[source]
        source: Box<NetworkError>,
    },
    /// The transport failed.
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The dispatcher was shut down while the workflow ran.
    #[error("the dispatcher stopped while the workflow ran")]
    Stopped,
}

impl WorkflowError {
    /// The task call whose failure failed the workflow, if a task failed.
    pub fn failing_task(&self) -> Option<&str> {
        match self {
            WorkflowError::TaskFailed { task, .. } | WorkflowError::TimedOut { task, .. } => {
                Some(task)
            }
            WorkflowError::Chord(inner) => inner.failing_task(),
            _ => None,
        }
    }
}

/// The component serving task `name`: `task/` and the name with its first letter
/// upper-cased (`add` -> `task/Add`, `xsum` -> `task/Xsum`).
pub fn component_for(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("task/{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => "task/".to_string(),
    }
}
