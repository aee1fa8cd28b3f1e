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
    host::send(port, &msg.into()).map_err(|err| match err {
        wit::SendError::UnknownPort => SendError::UnknownPort,
        wit::SendError::TooLarge => SendError::TooLarge,
        wit::SendError::TooMany => SendError::TooMany,
    })?;
    SENT.set(SENT.get().wrapping_add(1));
    Ok(())
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
    /// Sends the host accepted in this instance: `process-batch` tells the host how many
    /// belong to each message.
    static SENT: Cell<u32> = const { Cell::new(0) };

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
    ) -> Vec<crate::__private::bindings::BatchOutcome> {
        with_instance(|p: &mut P, ctx| {
            let mut at = 0usize;
            lengths
                .into_iter()
                .map(|len| {
                    let end = at.saturating_add(len as usize);
                    let data = payloads.get(at..end).map(<[u8]>::to_vec);
                    at = end;
                    let before = SENT.get();
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
                        sent: SENT.get().wrapping_sub(before),
                        result,
                    }
                })
                .collect()
        })
    }

    fn snapshot() -> Option<Vec<u8>> {
        with_instance(|p: &mut P, _| p.snapshot())
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        with_instance(|p: &mut P, _| p.restore(&state))
    }
}
