//! The only module that touches the generated bindings: conversions, host calls and the
//! generic `Guest` implementation that `export!` registers.

use core::any::Any;
use core::cell::Cell;
use core::marker::PhantomData;

use crate::__private::bindings::wasmflo::participant::{host, types as wit};
use crate::{Context, Definition, LogLevel, Message, Nack, NackKind, Participant, Port, SendError};

impl From<Message> for wit::Message {
    fn from(msg: Message) -> Self {
        Self {
            content_type: msg.content_type,
            data: msg.data,
            metadata: msg.metadata,
        }
    }
}

impl From<wit::Message> for Message {
    fn from(msg: wit::Message) -> Self {
        Self {
            content_type: msg.content_type,
            data: msg.data,
            metadata: msg.metadata,
        }
    }
}

impl From<Port> for wit::Port {
    fn from(port: Port) -> Self {
        Self {
            id: port.id,
            type_: port.ty,
            description: port.description,
            schema: port.schema,
            parameter: port.parameter,
        }
    }
}

impl From<Definition> for wit::Definition {
    fn from(def: Definition) -> Self {
        Self {
            component: def.component,
            label: def.label,
            icon: def.icon,
            inports: def.inports.into_iter().map(Into::into).collect(),
            outports: def.outports.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Nack> for wit::Nack {
    fn from(nack: Nack) -> Self {
        let (kind, reason) = nack.into_parts();
        let kind = match kind {
            NackKind::InvalidInput => wit::NackKind::InvalidInput,
            NackKind::Unavailable => wit::NackKind::Unavailable,
            NackKind::Internal => wit::NackKind::Internal,
        };
        Self { kind, reason }
    }
}

pub(crate) fn send(port: &str, msg: Message) -> Result<(), SendError> {
    #[cfg(not(feature = "device"))]
    let msg = match run::send(port, msg) {
        Ok(taken) => return taken,
        Err(msg) => msg,
    };
    host::send(port, &msg.into()).map_err(|err| match err {
        wit::SendError::UnknownPort => SendError::UnknownPort,
        wit::SendError::TooLarge => SendError::TooLarge,
        wit::SendError::TooMany => SendError::TooMany,
    })
}

pub(crate) fn log(level: LogLevel, text: &str) {
    let level = match level {
        LogLevel::Trace => wit::LogLevel::Trace,
        LogLevel::Debug => wit::LogLevel::Debug,
        LogLevel::Info => wit::LogLevel::Info,
        LogLevel::Warn => wit::LogLevel::Warn,
        LogLevel::Error => wit::LogLevel::Error,
    };
    host::log(level, text);
}

pub(crate) fn set_timer(id: u32, after_ms: u32, repeat: bool) {
    host::set_timer(id, after_ms, repeat);
}

pub(crate) fn cancel_timer(id: u32) {
    host::cancel_timer(id);
}

std::thread_local! {
    /// The participant of this instance. A component instance is single-threaded and its
    /// exports are never re-entered, so a cell taken for the duration of a call suffices.
    static INSTANCE: Cell<Option<Box<dyn Any>>> = const { Cell::new(None) };
}

/// Runs `f` on this instance's participant, creating it with `Default` on first use.
fn with_instance<P: Participant, R>(f: impl FnOnce(&mut P, &mut Context) -> R) -> R {
    let mut participant = INSTANCE
        .take()
        .and_then(|any| any.downcast::<P>().ok())
        .unwrap_or_default();
    let result = f(&mut participant, &mut Context::host());
    INSTANCE.set(Some(participant));
    result
}

/// Implements the generated `Guest` trait for participant `P`; `export!` names it.
#[derive(Debug)]
pub struct Exports<P>(PhantomData<P>);

impl<P: Participant> crate::__private::bindings::Guest for Exports<P> {
    fn definition() -> wit::Definition {
        P::definition().into()
    }

    fn start() -> Result<(), wit::Nack> {
        with_instance(|p: &mut P, ctx| p.start(ctx)).map_err(Into::into)
    }

    fn process(port: String, msg: wit::Message) -> Result<(), wit::Nack> {
        with_instance(|p: &mut P, ctx| p.process(ctx, &port, msg.into())).map_err(Into::into)
    }

    fn on_timer(id: u32) -> Result<(), wit::Nack> {
        with_instance(|p: &mut P, ctx| p.on_timer(ctx, id)).map_err(Into::into)
    }

    #[cfg(not(feature = "device"))]
    fn process_batch(
        port: String,
        content_type: String,
        metadata: Vec<(String, String)>,
        payloads: Vec<u8>,
        lengths: Vec<u32>,
        max_sends: u32,
        max_size: u32,
    ) -> crate::__private::bindings::BatchResult {
        run::begin::<P>(
            &metadata,
            max_sends,
            max_size,
            lengths.len(),
            payloads.len(),
        );
        let outcomes = with_instance(|p: &mut P, ctx| {
            let mut at = 0usize;
            lengths
                .into_iter()
                .map(|len| {
                    let end = at.saturating_add(len as usize);
                    let data = payloads.get(at..end).map(run::buffer);
                    at = end;
                    run::next_message();
                    let result = match data {
                        Some(data) => {
                            let msg = Message {
                                content_type: content_type.clone(),
                                data,
                                metadata: metadata.clone(),
                            };
                            p.process(ctx, &port, msg).map_err(Into::into)
                        }
                        None => {
                            Err(Nack::internal("process-batch: lengths exceed the payloads").into())
                        }
                    };
                    crate::__private::bindings::BatchOutcome {
                        sent: run::sent(),
                        result,
                    }
                })
                .collect()
        });
        run::finish(outcomes)
    }

    fn snapshot() -> Option<Vec<u8>> {
        with_instance(|p: &mut P, _| p.snapshot())
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        with_instance(|p: &mut P, _| p.restore(&state))
    }
}

/// The sends of a `process-batch` call, kept in the guest and returned with its outcomes
/// instead of going through the `send` import one by one.
#[cfg(not(feature = "device"))]
mod run {
    use core::cell::{OnceCell, RefCell};

    use crate::__private::bindings::{BatchOutcome, BatchResult, BatchSend};
    use crate::{Message, Participant, SendError};

    /// The current run's sends and limits.
    struct Run {
        max_sends: u32,
        max_size: u32,
        /// The run's metadata: a send carrying exactly these pairs returns none, as the
        /// host adds them to every output anyway.
        metadata: Vec<(String, String)>,
        /// Sends of the message being processed.
        current: u32,
        sends: Vec<BatchSend>,
        payloads: Vec<u8>,
        violation: Option<String>,
        /// A payload buffer a kept send gave back, for the next message: a participant
        /// passing messages on then allocates no buffer per message.
        spare: Option<Vec<u8>>,
    }

    std::thread_local! {
        /// Set during a `process-batch` call.
        static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
        /// The component's outport names, in definition order: a send's port index.
        static OUTPORTS: OnceCell<Vec<String>> = const { OnceCell::new() };
    }

    /// Starts a run: sends are kept until [`finish`].
    ///
    /// The buffers start with room for one send per message and the run's own payload
    /// bytes, what a participant passing messages on needs, so they do not grow send by
    /// send.
    pub(super) fn begin<P: Participant>(
        metadata: &[(String, String)],
        max_sends: u32,
        max_size: u32,
        messages: usize,
        bytes: usize,
    ) {
        OUTPORTS.with(|o| {
            o.get_or_init(|| {
                P::definition()
                    .outports()
                    .iter()
                    .map(|p| p.id().to_owned())
                    .collect()
            });
        });
        RUN.set(Some(Run {
            max_sends,
            max_size,
            metadata: metadata.to_vec(),
            current: 0,
            sends: Vec::with_capacity(messages),
            payloads: Vec::with_capacity(bytes),
            violation: None,
            spare: None,
        }));
    }

    /// A message's payload: `bytes` in the spare buffer if there is one.
    pub(super) fn buffer(bytes: &[u8]) -> Vec<u8> {
        let spare = RUN.with_borrow_mut(|run| run.as_mut().and_then(|r| r.spare.take()));
        match spare {
            Some(mut data) => {
                data.extend_from_slice(bytes);
                data
            }
            None => bytes.to_vec(),
        }
    }

    /// The next message of the run begins.
    pub(super) fn next_message() {
        RUN.with_borrow_mut(|run| {
            if let Some(run) = run {
                run.current = 0;
            }
        });
    }

    /// Sends made while processing the current message.
    pub(super) fn sent() -> u32 {
        RUN.with_borrow(|run| run.as_ref().map_or(0, |r| r.current))
    }

    /// Ends the run, handing its sends to the host.
    pub(super) fn finish(outcomes: Vec<BatchOutcome>) -> BatchResult {
        let run = RUN.take();
        let (sends, payloads, violation) = run.map_or((Vec::new(), Vec::new(), None), |r| {
            (r.sends, r.payloads, r.violation)
        });
        BatchResult {
            outcomes,
            sends,
            payloads,
            violation,
        }
    }

    /// Keeps `msg` when a run is in progress (`Ok` with what `send` would have said), or
    /// gives it back (`Err`) for the `send` import.
    pub(super) fn send(port: &str, msg: Message) -> Result<Result<(), SendError>, Message> {
        RUN.with_borrow_mut(|run| match run {
            Some(run) => {
                Ok(OUTPORTS.with(|o| run.keep(o.get().map_or(&[], Vec::as_slice), port, msg)))
            }
            None => Err(msg),
        })
    }

    /// The largest payload buffer kept for reuse within a run.
    const SPARE_MAX: usize = 64 * 1024;

    impl Run {
        /// Refuses a send as the host would and remembers the first refusal: the host
        /// then fails the run and delivers its messages one by one.
        fn refuse(
            &mut self,
            err: SendError,
            why: impl FnOnce() -> String,
        ) -> Result<(), SendError> {
            if self.violation.is_none() {
                self.violation = Some(why());
            }
            Err(err)
        }

        fn keep(&mut self, outports: &[String], port: &str, msg: Message) -> Result<(), SendError> {
            let Some(index) = outports.iter().position(|p| p.eq_ignore_ascii_case(port)) else {
                return self.refuse(SendError::UnknownPort, || {
                    format!("sent on undeclared outport '{port}'")
                });
            };
            let len = msg.data.len();
            if len > self.max_size as usize {
                let max = self.max_size;
                return self.refuse(SendError::TooLarge, || {
                    format!("sent {len} bytes on '{port}', more than the {max} allowed")
                });
            }
            if self.current >= self.max_sends {
                let max = self.max_sends;
                return self.refuse(SendError::TooMany, || {
                    format!("sent more than {max} messages in one call")
                });
            }
            self.current += 1;
            let Message {
                content_type,
                mut data,
                metadata,
            } = msg;
            self.payloads.extend_from_slice(&data);
            let metadata = if metadata == self.metadata {
                Vec::new()
            } else {
                metadata
            };
            self.sends.push(BatchSend {
                port: u32::try_from(index).unwrap_or(u32::MAX),
                content_type,
                length: u32::try_from(len).unwrap_or(u32::MAX),
                metadata,
            });
            // Small buffers only: a run must not keep a large one alive until its end.
            if data.capacity() <= SPARE_MAX {
                data.clear();
                self.spare = Some(data);
            }
            Ok(())
        }
    }
}
