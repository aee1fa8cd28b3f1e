//! Batched delivery: a run of messages in one guest call (`process-batch`, the
//! `batched-participant` world's optional export).
//!
//! Entering a guest costs more than most participants' work on a message: `process`
//! enters it six times (`cabi_realloc` for the port, content type, payload and metadata,
//! the call, its post-return). A run of messages that arrived one after another on one
//! inport with the same content type and metadata goes in one call instead, its payloads
//! back to back in one list: seven entries for the whole run.
//!
//! The guest does not call the `send` import during a run: it returns the run's sends with
//! the outcomes (outport index, content type, length, the pairs it set; the payloads back
//! to back in one list), so the host lifts four lists per run instead of a port name and
//! a message per send, and every output's payload is a slice of one buffer. The guest
//! refuses sends as `send` would (unknown outport, more than the per-message number of
//! sends, a payload over the size limit; it gets both limits as parameters) and reports
//! the first refusal; the host checks the result against its limits all the same.
//!
//! The semantics stay those of one `process` call per message: the guest reports per
//! message how many of its sends it made and whether it acks or nacks, so a nacked
//! message's outputs are dropped with it; the shared metadata is added to every output
//! (a pair the guest set wins). A run that fails as a whole (a trap, the CPU deadline,
//! the memory cap, a refused send, a broken host limit, results that do not add up, a
//! call of `send` during the run) publishes nothing: the caller recreates the instance
//! and delivers the run's messages one by one, which finds the one at fault and gives
//! every other message its ordinary outcome. The CPU deadline of a run is the
//! per-message deadline times its length.

use super::instance::{blocking, borrowed, classify, nack_kind};
use super::{CallOutcome, Instance, wit};
use crate::fault::FaultKind;
use crate::message::Message;

/// `process-batch`'s parameters: port, content type, metadata, the payloads back to
/// back, their lengths, the sends allowed per message and the largest payload allowed.
pub(super) type Params<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [u8],
    &'a [u32],
    u32,
    u32,
);

/// `process-batch`'s result.
pub(super) type Results = (RunResult,);

/// The world's `batch-outcome`.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
pub(super) struct Outcome {
    sent: u32,
    result: Result<(), wit::Nack>,
}

/// The world's `batch-send`: a message sent during the run, its payload in
/// [`RunResult::payloads`].
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
pub(super) struct Sent {
    port: u32,
    #[component(name = "content-type")]
    content_type: String,
    length: u32,
    metadata: Vec<(String, String)>,
}

/// The world's `batch-result`.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
pub(super) struct RunResult {
    outcomes: Vec<Outcome>,
    sends: Vec<Sent>,
    payloads: Vec<u8>,
    violation: Option<String>,
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
        let (max_sends, max_size) = {
            let s = self.store.data();
            // A payload over 4 GiB cannot be lifted anyway.
            (
                s.max_sends,
                u32::try_from(s.max_message).unwrap_or(u32::MAX),
            )
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
                    max_sends,
                    max_size,
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
        let imported = std::mem::take(&mut s.outputs);
        let timers = std::mem::take(&mut s.timers);
        let violation = s.violation.take();
        let result = match (called, violation) {
            (_, Some(v)) => return BatchCall::Failed(FaultKind::LimitExceeded, v),
            (Err(e), None) => {
                let (kind, detail) = classify(&self.store, &e);
                return BatchCall::Failed(kind, detail);
            }
            (Ok((result,)), None) => result,
        };
        if !imported.is_empty() {
            return BatchCall::Failed(
                FaultKind::Internal,
                "called `send` during process-batch, whose sends go in its result".into(),
            );
        }
        let s = self.store.data();
        let limits = RunLimits {
            messages: msgs.len(),
            outports: s.definition.outports.len(),
            max_sends,
            max_message: s.max_message,
        };
        split(result, timers, &first.metadata, &limits)
    }
}

/// What the host checks a run's result against.
struct RunLimits {
    messages: usize,
    outports: usize,
    max_sends: u32,
    max_message: usize,
}

/// Checks a run's result against the host's limits: the guest enforces them itself, but
/// is not trusted to.
fn check(result: &RunResult, limits: &RunLimits) -> Result<(), (FaultKind, String)> {
    if let Some(v) = &result.violation {
        return Err((FaultKind::LimitExceeded, v.clone()));
    }
    let internal = |detail: String| Err((FaultKind::Internal, detail));
    let over = |detail: String| Err((FaultKind::LimitExceeded, detail));
    if result.outcomes.len() != limits.messages {
        return internal(format!(
            "process-batch returned {} outcomes for {} messages",
            result.outcomes.len(),
            limits.messages
        ));
    }
    let claimed: u64 = result.outcomes.iter().map(|o| u64::from(o.sent)).sum();
    if claimed != result.sends.len() as u64 {
        return internal(format!(
            "process-batch accounted for {claimed} sends and returned {}",
            result.sends.len()
        ));
    }
    let lengths: u64 = result.sends.iter().map(|s| u64::from(s.length)).sum();
    if lengths != result.payloads.len() as u64 {
        return internal(format!(
            "process-batch returned {} payload bytes for sends of {lengths}",
            result.payloads.len()
        ));
    }
    if let Some(o) = result.outcomes.iter().find(|o| o.sent > limits.max_sends) {
        return over(format!(
            "sent {} messages in one call, more than the {} allowed",
            o.sent, limits.max_sends
        ));
    }
    for sent in &result.sends {
        if sent.port as usize >= limits.outports {
            return over(format!("sent on undeclared outport #{}", sent.port));
        }
        if sent.length as usize > limits.max_message {
            return over(format!(
                "sent {} bytes, more than the {} allowed",
                sent.length, limits.max_message
            ));
        }
    }
    Ok(())
}

/// Hands each message its own outputs, in send order, with the run's metadata added;
/// the run's timer changes go with its last message (they are applied whatever the
/// messages' outcomes).
fn split(
    result: RunResult,
    mut timers: Vec<super::TimerCommand>,
    metadata: &[(String, String)],
    limits: &RunLimits,
) -> BatchCall {
    if let Err((kind, detail)) = check(&result, limits) {
        return BatchCall::Failed(kind, detail);
    }
    // One buffer for the whole run: every output's payload is a slice of it.
    let payloads = bytes::Bytes::from(result.payloads);
    let mut at = 0usize;
    let mut sends = result.sends.into_iter();
    let last = result.outcomes.len().saturating_sub(1);
    let done = result
        .outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let mine = sends.by_ref().take(o.sent as usize).map(|s| {
                let end = at + s.length as usize;
                let mut msg = Message {
                    content_type: s.content_type,
                    data: payloads.slice(at..end),
                    metadata: s.metadata,
                };
                at = end;
                msg.inherit_metadata(metadata);
                (s.port as usize, msg)
            });
            let (outputs, result) = match o.result {
                Ok(()) => (mine.collect(), Ok(())),
                Err(nack) => {
                    // Still walked, so the next message's payloads start in the right place.
                    mine.for_each(drop);
                    (Vec::new(), Err((nack_kind(nack.kind), nack.reason)))
                }
            };
            CallOutcome {
                outputs,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(port: u32, length: u32) -> Sent {
        Sent {
            port,
            content_type: String::new(),
            length,
            metadata: Vec::new(),
        }
    }

    fn result(sent_per_message: &[u32], sends: Vec<Sent>, payload_bytes: usize) -> RunResult {
        RunResult {
            outcomes: sent_per_message
                .iter()
                .map(|&sent| Outcome {
                    sent,
                    result: Ok(()),
                })
                .collect(),
            sends,
            payloads: vec![b'x'; payload_bytes],
            violation: None,
        }
    }

    const LIMITS: RunLimits = RunLimits {
        messages: 2,
        outports: 1,
        max_sends: 2,
        max_message: 10,
    };

    fn kind(r: &RunResult) -> Option<String> {
        check(r, &LIMITS).err().map(|(k, _)| k.to_string())
    }

    #[test]
    fn a_result_that_adds_up_passes() {
        let r = result(&[1, 1], vec![sent(0, 3), sent(0, 4)], 7);
        assert_eq!(kind(&r), None);
    }

    /// The guest enforces the limits itself, but a result that breaks one fails the run
    /// all the same.
    #[test]
    fn a_result_breaking_a_limit_fails_the_run() {
        let unknown_port = result(&[1, 1], vec![sent(0, 3), sent(1, 4)], 7);
        let too_large = result(&[1, 1], vec![sent(0, 3), sent(0, 11)], 14);
        let too_many = result(&[3, 0], vec![sent(0, 1), sent(0, 1), sent(0, 1)], 3);
        let mut refused = result(&[0, 0], Vec::new(), 0);
        refused.violation = Some("sent on undeclared outport 'x'".into());
        for r in [unknown_port, too_large, too_many, refused] {
            assert_eq!(kind(&r).as_deref(), Some("limit-exceeded"));
        }
    }

    #[test]
    fn a_result_that_does_not_add_up_fails_the_run() {
        let outcomes = result(&[1], vec![sent(0, 3)], 3);
        let sends = result(&[1, 1], vec![sent(0, 3)], 3);
        let bytes = result(&[1, 1], vec![sent(0, 3), sent(0, 4)], 8);
        for r in [outcomes, sends, bytes] {
            assert_eq!(kind(&r).as_deref(), Some("internal"));
        }
    }

    #[test]
    fn outputs_are_split_by_message_and_nacked_ones_dropped() {
        let mut r = result(&[1, 1], vec![sent(0, 3), sent(0, 4)], 0);
        r.payloads = b"abcdefg".to_vec();
        r.sends[1].metadata = vec![("k".into(), "mine".into())];
        let meta = [
            ("k".to_string(), "run".to_string()),
            ("c".into(), "1".into()),
        ];
        let BatchCall::Done(done) = split(r, Vec::new(), &meta, &LIMITS) else {
            panic!("the result adds up");
        };
        assert_eq!(&done[0].outputs[0].1.data[..], b"abc");
        assert_eq!(&done[1].outputs[0].1.data[..], b"defg");
        assert_eq!(done[0].outputs[0].1.metadata, meta.to_vec());
        assert_eq!(
            done[1].outputs[0].1.metadata,
            vec![("k".into(), "mine".into()), ("c".into(), "1".into())]
        );

        let mut r = result(&[1, 1], vec![sent(0, 3), sent(0, 4)], 0);
        r.payloads = b"abcdefg".to_vec();
        r.outcomes[0].result = Err(wit::Nack {
            kind: wit::NackKind::Internal,
            reason: "no".into(),
        });
        let BatchCall::Done(done) = split(r, Vec::new(), &[], &LIMITS) else {
            panic!("the result adds up");
        };
        assert!(done[0].outputs.is_empty() && done[0].result.is_err());
        assert_eq!(&done[1].outputs[0].1.data[..], b"defg");
    }
}
