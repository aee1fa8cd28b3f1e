//! The `host` interface the participant world imports: send, log, timers, as wasmi host
//! functions over the canonical ABI, with the server host's limits and verdicts.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use wasmi::{Caller, Func, FuncType, Memory, Store, Val, ValType};

use crate::abi::{self, Guest, SendError};
use crate::definition::Definition;
use crate::limits::{Limits, MemoryLimiter};
use crate::message::{LogLevel, Message, TimerCommand};
use crate::unpack::HostFunc;

/// Refused sends a guest may ignore before the host traps it (as the server host).
const REFUSALS_BEFORE_TRAP: u32 = 100;

/// The store data of one instance: what the host functions read and write.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) definition: Arc<Definition>,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) max_sends: u32,
    pub(crate) max_message: usize,
    /// Metadata of the message being processed, inherited by every output.
    pub(crate) input_metadata: Vec<(String, String)>,
    pub(crate) outputs: Vec<(usize, Message)>,
    pub(crate) timers: Vec<TimerCommand>,
    pub(crate) logs: Vec<(LogLevel, String)>,
    pub(crate) sends: u32,
    /// The first host limit the guest broke during this call.
    pub(crate) violation: Option<String>,
    /// Sends refused after the first violation in this call.
    pub(crate) refused: u32,
}

impl State {
    pub(crate) fn new(definition: Arc<Definition>, limits: &Limits) -> Self {
        State {
            definition,
            limiter: MemoryLimiter {
                cap: limits.memory,
                exceeded: false,
            },
            max_sends: limits.max_sends,
            max_message: limits.max_message,
            input_metadata: Vec::new(),
            outputs: Vec::new(),
            timers: Vec::new(),
            logs: Vec::new(),
            sends: 0,
            violation: None,
            refused: 0,
        }
    }

    /// Resets the per-call state before a call delivering a message with `metadata`.
    pub(crate) fn begin_call(&mut self, metadata: &[(String, String)]) {
        self.outputs.clear();
        self.timers.clear();
        self.logs.clear();
        self.input_metadata.clear();
        self.input_metadata.extend_from_slice(metadata);
        self.sends = 0;
        self.violation = None;
        self.refused = 0;
    }

    fn try_send(&mut self, port: String, msg: Message) -> Result<(), SendError> {
        let Some(index) = self.definition.outport_index(&port) else {
            self.violation
                .get_or_insert_with(|| format!("sent on undeclared outport '{port}'"));
            return Err(SendError::UnknownPort);
        };
        if msg.data.len() > self.max_message {
            let (len, max) = (msg.data.len(), self.max_message);
            self.violation.get_or_insert_with(|| {
                format!("sent {len} bytes on '{port}', more than the {max} allowed")
            });
            return Err(SendError::TooLarge);
        }
        if self.sends >= self.max_sends {
            let max = self.max_sends;
            self.violation
                .get_or_insert_with(|| format!("sent more than {max} messages in one call"));
            return Err(SendError::TooMany);
        }
        self.sends += 1;
        let mut out = msg;
        out.inherit_metadata(&self.input_metadata);
        self.outputs.push((index, out));
        Ok(())
    }
}

/// The i32 argument `i` as the u32 the canonical ABI means.
fn arg(params: &[Val], i: usize) -> Result<u32, wasmi::Error> {
    match params.get(i) {
        #[allow(clippy::cast_sign_loss, reason = "canonical ABI: i32 carries u32 bits")]
        Some(Val::I32(v)) => Ok(*v as u32),
        _ => Err(wasmi::Error::new(
            "host function called with a bad signature",
        )),
    }
}

fn abi_trap(e: &abi::AbiError) -> wasmi::Error {
    wasmi::Error::new(format!("canonical ABI: {e}"))
}

/// The core signature of a lowered host function.
fn signature(host: HostFunc) -> FuncType {
    let params: usize = match host {
        // port (2) + message (6) + return pointer for result<_, send-error>.
        HostFunc::Send => 9,
        HostFunc::Log | HostFunc::SetTimer => 3,
        HostFunc::CancelTimer => 1,
    };
    FuncType::new(core::iter::repeat_n(ValType::I32, params), [])
}

/// Creates the wasmi function for a `canon lower` of `host` using `memory`.
pub(crate) fn lower(
    store: &mut Store<State>,
    host: HostFunc,
    memory: Option<Memory>,
) -> Result<Func, wasmi::Error> {
    let ty = signature(host);
    let needs_memory = || wasmi::Error::new("lowered import without a memory option");
    Ok(match host {
        HostFunc::Send => {
            let memory = memory.ok_or_else(needs_memory)?;
            Func::new(&mut *store, ty, move |caller, params, _| {
                send(caller, memory, params)
            })
        }
        HostFunc::Log => {
            let memory = memory.ok_or_else(needs_memory)?;
            Func::new(&mut *store, ty, move |mut caller, params, _| {
                let level = match arg(params, 0)? {
                    0 => LogLevel::Trace,
                    1 => LogLevel::Debug,
                    2 => LogLevel::Info,
                    3 => LogLevel::Warn,
                    4 => LogLevel::Error,
                    n => {
                        return Err(wasmi::Error::new(format!(
                            "canonical ABI: invalid enum discriminant {n}"
                        )));
                    }
                };
                let (mem, state) = memory.data_and_store_mut(&mut caller);
                let text = Guest { mem }
                    .string(arg(params, 1)?, arg(params, 2)?)
                    .map_err(|e| abi_trap(&e))?;
                state.logs.push((level, text));
                Ok(())
            })
        }
        HostFunc::SetTimer => Func::new(
            &mut *store,
            ty,
            move |mut caller: Caller<'_, State>, params, _| {
                let id = arg(params, 0)?;
                let after_ms = arg(params, 1)?.max(1);
                let repeat = arg(params, 2)? != 0;
                caller.data_mut().timers.push(TimerCommand::Set {
                    id,
                    after_ms,
                    repeat,
                });
                Ok(())
            },
        ),
        HostFunc::CancelTimer => Func::new(
            &mut *store,
            ty,
            move |mut caller: Caller<'_, State>, params, _| {
                let id = arg(params, 0)?;
                caller.data_mut().timers.push(TimerCommand::Cancel(id));
                Ok(())
            },
        ),
    })
}

fn send(mut caller: Caller<'_, State>, memory: Memory, params: &[Val]) -> Result<(), wasmi::Error> {
    let mut flat = [0u32; 9];
    for (i, slot) in flat.iter_mut().enumerate() {
        *slot = arg(params, i)?;
    }
    let [port_ptr, port_len, m0, m1, m2, m3, m4, m5, ret] = flat;
    let (mem, state) = memory.data_and_store_mut(&mut caller);
    let guest = Guest { mem: &*mem };
    let port = guest.string(port_ptr, port_len).map_err(|e| abi_trap(&e))?;
    let msg = guest
        .message([m0, m1, m2, m3, m4, m5])
        .map_err(|e| abi_trap(&e))?;
    // The return area must be writable before the host acts on the call.
    guest.bytes(ret, 2).map_err(|e| abi_trap(&e))?;
    if state.violation.is_some() {
        state.refused += 1;
        if state.refused > REFUSALS_BEFORE_TRAP {
            return Err(wasmi::Error::new(
                "guest kept sending after its sends were refused",
            ));
        }
    }
    let bytes = abi::send_result(state.try_send(port, msg));
    let start = ret as usize;
    match mem.get_mut(start..start + 2) {
        Some(area) => area.copy_from_slice(&bytes),
        None => {
            return Err(wasmi::Error::new(
                "canonical ABI: return area out of bounds",
            ));
        }
    }
    Ok(())
}
