//! Batched delivery: a run of messages in one guest call (`process-batch`, the
//! `batched-participant` world's optional export).
//!
//! Entering a guest costs more than most participants' work on a message: `process`
//! enters it six times (`cabi_realloc` for the port, content type, payload and metadata,
//! the call, its post-return). A run of messages that arrived one after another on one
//! inport with the same content type and metadata goes in one call instead, its payloads
//! back to back in one list: seven entries for the whole run.
//!
//! The semantics stay those of one `process` call per message: the guest reports per
//! message how many of its sends it made and whether it acks or nacks, so a nacked
//! message's outputs are dropped with it; the shared metadata is copied onto every output.
//! A run that fails as a whole (a trap, the CPU deadline, the memory cap, a broken host
//! limit, outcomes that do not add up) publishes nothing: the caller recreates the
//! instance and delivers the run's messages one by one, which finds the one at fault and
//! gives every other message its ordinary outcome. The CPU deadline of a run is the
//! per-message deadline times its length, and a message may make at most the per-message
//! number of sends.

use super::instance::{blocking, borrowed, classify, nack_kind};
use super::{CallOutcome, Instance, wit};
use crate::fault::FaultKind;
use crate::message::Message;

/// `process-batch`'s parameters: port, content type, metadata, the payloads back to
/// back and their lengths.
pub(super) type Params<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [u8],
    &'a [u32],
);

/// `process-batch`'s result: one outcome per payload.
pub(super) type Results = (Vec<Outcome>,);

/// The world's `batch-outcome`.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
pub(super) struct Outcome {
    sent: u32,
    result: Result<(), wit::Nack>,
}

/// Buffers for a run's payloads and lengths, kept by the instance between runs.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    payloads: Vec<u8>,
    lengths: Vec<u32>,
}

/// What delivering a run of messages in one call gave.
#[derive(Debug)]
pub enum BatchCall {
    /// The component has no `process-batch` export: deliver the messages one by one.
    Unsupported,
    /// The call failed as a whole and published nothing. Recreate the instance and
    /// deliver the messages one by one: that finds the one at fault.
    Failed(FaultKind, String),
    /// One outcome per message, in order, as `process` gives it.
    Done(Vec<CallOutcome>),
}

impl Instance {
    /// Whether the component takes runs of messages in one call.
    pub fn batches(&self) -> bool {
        self.batch.is_some()
    }

    /// Delivers `msgs`, which arrived in this order on inport `port` and share the first
    /// one's content type and metadata (the caller groups them), in one call.
    pub fn process_batch(&mut self, port: &str, msgs: &[&Message]) -> BatchCall {
        let Some(index) = self.batch else {
            return BatchCall::Unsupported;
        };
        let Some(first) = msgs.first() else {
            return BatchCall::Done(Vec::new());
        };
        debug_assert!(
            msgs.iter()
                .all(|m| m.content_type == first.content_type && m.metadata == first.metadata)
        );
        let n = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
        let pairs = borrowed(&first.metadata);
        // Reused from run to run: a busy participant allocates nothing here.
        let mut payloads = std::mem::take(&mut self.scratch.payloads);
        let mut lengths = std::mem::take(&mut self.scratch.lengths);
        payloads.clear();
        lengths.clear();
        for m in msgs {
            payloads.extend_from_slice(&m.data);
            // A message over 4 GiB cannot be a payload of any call.
            lengths.push(u32::try_from(m.data.len()).unwrap_or(u32::MAX));
        }
        self.begin_call(&first.metadata, n);
        let per_message_sends = {
            let s = self.store.data_mut();
            let per_message = s.max_sends;
            s.max_sends = per_message.saturating_mul(n);
            per_message
        };
        let called = match self
            .raw
            .get_typed_func::<Params<'_>, Results>(&mut self.store, index)
        {
            Ok(func) => {
                let params = (
                    port,
                    first.content_type.as_str(),
                    &pairs[..],
                    &payloads[..],
                    &lengths[..],
                );
                if self.uses_wasi {
                    blocking(|| func.call(&mut self.store, params))
                } else {
                    func.call(&mut self.store, params)
                }
            }
            Err(e) => Err(e),
        };
        self.scratch = Scratch { payloads, lengths };
        let s = self.store.data_mut();
        s.max_sends = per_message_sends;
        let outputs = std::mem::take(&mut s.outputs);
        let timers = std::mem::take(&mut s.timers);
        let violation = s.violation.take();
        let outcomes = match (called, violation) {
            (_, Some(v)) => return BatchCall::Failed(FaultKind::LimitExceeded, v),
            (Err(e), None) => {
                let (kind, detail) = classify(&self.store, &e);
                return BatchCall::Failed(kind, detail);
            }
            (Ok((outcomes,)), None) => outcomes,
        };
        split(outcomes, outputs, timers, msgs.len(), per_message_sends)
    }
}

/// Hands each message its own outputs, in send order; the run's timer changes go with
/// its last message (they are applied whatever the messages' outcomes).
fn split(
    outcomes: Vec<Outcome>,
    outputs: Vec<(usize, Message)>,
    mut timers: Vec<super::TimerCommand>,
    messages: usize,
    per_message_sends: u32,
) -> BatchCall {
    if outcomes.len() != messages {
        return BatchCall::Failed(
            FaultKind::Internal,
            format!(
                "process-batch returned {} outcomes for {messages} messages",
                outcomes.len()
            ),
        );
    }
    let claimed: u64 = outcomes.iter().map(|o| u64::from(o.sent)).sum();
    if claimed != outputs.len() as u64 {
        return BatchCall::Failed(
            FaultKind::Internal,
            format!(
                "process-batch accounted for {claimed} sends, the host took {}",
                outputs.len()
            ),
        );
    }
    if let Some(over) = outcomes.iter().find(|o| o.sent > per_message_sends) {
        return BatchCall::Failed(
            FaultKind::LimitExceeded,
            format!(
                "sent {} messages in one call, more than the {per_message_sends} allowed",
                over.sent
            ),
        );
    }
    let last = outcomes.len().saturating_sub(1);
    let mut outputs = outputs.into_iter();
    let done = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let mut mine: Vec<(usize, Message)> = outputs.by_ref().take(o.sent as usize).collect();
            let result = match o.result {
                Ok(()) => Ok(()),
                Err(nack) => {
                    mine.clear();
                    Err((nack_kind(nack.kind), nack.reason))
                }
            };
            CallOutcome {
                outputs: mine,
                timers: if i == last {
                    std::mem::take(&mut timers)
                } else {
                    Vec::new()
                },
                result,
            }
        })
        .collect();
    BatchCall::Done(done)
}
