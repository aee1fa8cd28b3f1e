//! The seam between a participant's loop and the code it runs.
//!
//! A [`Guest`] is one live instance; a [`GuestFactory`] makes them. Components
//! implement both through wasmtime; the benchmark's native participants implement
//! them in plain Rust, so the two run on the very same loop, queues and transport.

use std::sync::Arc;

use super::{BatchCall, CallOutcome, Definition, Instance, Limits, Restored};
use crate::fault::FaultKind;

/// One live instance of participant code.
pub trait Guest: Send {
    /// Called once after creation.
    fn start(&mut self) -> CallOutcome;
    /// Handles one message on inport `port`.
    fn process(&mut self, port: &str, msg: &crate::message::Message) -> CallOutcome;
    /// Whether [`Guest::process_batch`] takes several messages in one call.
    fn batches(&self) -> bool {
        false
    }
    /// Handles a run of messages that arrived in this order on inport `port` with the
    /// same content type and metadata, in one call (see the `batch` module).
    fn process_batch(&mut self, port: &str, msgs: &[&crate::message::Message]) -> BatchCall {
        let _ = (port, msgs);
        BatchCall::Unsupported
    }
    /// Handles the expiry of timer `id`.
    fn on_timer(&mut self, id: u32) -> CallOutcome;
    /// The state to hand to a newer version of the code; `None` when there is none.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, (FaultKind, String)> {
        Ok(None)
    }
    /// Takes over state from an older version. An `Err` leaves the instance unusable.
    fn restore(&mut self, state: &[u8]) -> Result<Restored, (FaultKind, String)> {
        let _ = state;
        Ok(Restored::Unsupported)
    }
}

/// Makes instances of one participant's code.
pub trait GuestFactory: Send + Sync + std::fmt::Debug {
    /// What the code says it is.
    fn definition(&self) -> &Arc<Definition>;
    /// A version string (content hash) for logs.
    fn version(&self) -> &str;
    /// Creates a new instance for `process`.
    fn instantiate(
        &self,
        process: Arc<str>,
        limits: &Limits,
    ) -> Result<Box<dyn Guest>, (FaultKind, String)>;
}

impl Guest for Instance {
    fn start(&mut self) -> CallOutcome {
        Instance::start(self)
    }

    fn process(&mut self, port: &str, msg: &crate::message::Message) -> CallOutcome {
        Instance::process(self, port, msg)
    }

    fn batches(&self) -> bool {
        Instance::batches(self)
    }

    fn process_batch(&mut self, port: &str, msgs: &[&crate::message::Message]) -> BatchCall {
        Instance::process_batch(self, port, msgs)
    }

    fn on_timer(&mut self, id: u32) -> CallOutcome {
        Instance::on_timer(self, id)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, (FaultKind, String)> {
        Instance::snapshot(self)
    }

    fn restore(&mut self, state: &[u8]) -> Result<Restored, (FaultKind, String)> {
        Instance::restore(self, state)
    }
}
