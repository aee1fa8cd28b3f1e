//! One long-lived participant instance: its store, its guest, and the calls into it.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, InstancePre};

use super::bindings::{Participant, ParticipantIndices};
use super::limits::MemoryLimiter;
use super::{EPOCH_TICK, Limits, wit};
use crate::fault::FaultKind;
use crate::message::Message;

/// A component's self-description, as returned by its `definition` export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Definition {
    /// Component name, e.g. `core/Repeat`.
    pub component: String,
    /// One line for humans.
    pub label: String,
    /// Font Awesome icon name.
    pub icon: String,
    /// Inports in declaration order.
    pub inports: Vec<PortDef>,
    /// Outports in declaration order.
    pub outports: Vec<PortDef>,
}

impl Definition {
    /// The inport named `id`, compared case-insensitively as `.fbp` lowercases ports.
    pub fn inport(&self, id: &str) -> Option<&PortDef> {
        self.inports.iter().find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// The index of outport `id`, compared case-insensitively.
    pub fn outport_index(&self, id: &str) -> Option<usize> {
        self.outports
            .iter()
            .position(|p| p.id.eq_ignore_ascii_case(id))
    }
}

/// One port of a [`Definition`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortDef {
    /// Port name.
    pub id: String,
    /// FBP data type (`any`, `number`, ...).
    #[serde(rename = "type")]
    pub type_: String,
    /// One line for humans.
    pub description: String,
    /// Optional JSON schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Whether this inport is a run-time parameter.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub parameter: bool,
}

/// A timer change the guest asked for during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerCommand {
    /// Arm timer `id`.
    Set {
        /// Timer id chosen by the guest.
        id: u32,
        /// Delay before the first expiry.
        after: Duration,
        /// Re-fire every `after`.
        repeat: bool,
    },
    /// Disarm timer `id`.
    Cancel(u32),
}

/// What one guest call produced.
#[derive(Debug)]
pub struct CallOutcome {
    /// Messages sent, as (outport index, message), in send order. Empty if the call failed:
    /// a failed message publishes nothing.
    pub outputs: Vec<(usize, Message)>,
    /// Timer changes, in order.
    pub timers: Vec<TimerCommand>,
    /// `Err` when the call failed; the instance must be recreated if the kind
    /// [poisons](FaultKind::poisons_instance) it.
    pub result: Result<(), (FaultKind, String)>,
}

/// The store data of one instance: what the host interface reads and writes.
pub(crate) struct InstanceState {
    pub(crate) process: Arc<str>,
    pub(crate) definition: Arc<Definition>,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) max_sends: u32,
    pub(crate) max_message: usize,
    /// Metadata of the message being processed, inherited by every output.
    pub(crate) input_metadata: Vec<(String, String)>,
    pub(crate) outputs: Vec<(usize, Message)>,
    pub(crate) timers: Vec<TimerCommand>,
    pub(crate) sends: u32,
    /// The first host limit the guest broke during this call.
    pub(crate) violation: Option<String>,
    /// Sends refused after the first violation in this call.
    pub(crate) refused: u32,
    /// WASI context, for components that import WASI.
    pub(crate) wasi: Option<super::wasi::WasiState>,
}

/// A component ready to instantiate: wasmtime's `InstancePre`, the world's export
/// indices (looked up once, not per instance), and the optional state exports of the
/// `stateful-participant` world.
#[derive(Clone)]
pub(crate) struct Prepared {
    pre: InstancePre<InstanceState>,
    indices: ParticipantIndices,
    snapshot: Option<ComponentExportIndex>,
    restore: Option<ComponentExportIndex>,
    batch: Option<ComponentExportIndex>,
}

impl Prepared {
    /// Fails when the component lacks an export of the participant world.
    pub(crate) fn new(pre: InstancePre<InstanceState>) -> wasmtime::Result<Self> {
        let indices = ParticipantIndices::new(&pre)?;
        let component = pre.component();
        let snapshot = component.get_export_index(None, "snapshot");
        let restore = component.get_export_index(None, "restore");
        let batch = component.get_export_index(None, "process-batch");
        Ok(Prepared {
            pre,
            indices,
            snapshot,
            restore,
            batch,
        })
    }

    /// Whether the component can hand its state over (`snapshot`) and take it (`restore`).
    pub(crate) fn state_exports(&self) -> (bool, bool) {
        (self.snapshot.is_some(), self.restore.is_some())
    }
}

/// What became of the state offered to a new instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The instance took the state over.
    Yes,
    /// The component has no `restore` export.
    Unsupported,
    /// The guest refused the state (its `restore` returned an error); it runs fresh.
    Refused(String),
}

/// A long-lived instance of a participant component.
pub struct Instance {
    pub(super) store: Store<InstanceState>,
    guest: Participant,
    pub(super) raw: wasmtime::component::Instance,
    snapshot: Option<ComponentExportIndex>,
    restore: Option<ComponentExportIndex>,
    /// The `batched-participant` world's `process-batch` export, if the component has it.
    pub(super) batch: Option<ComponentExportIndex>,
    pub(super) scratch: super::batch::Scratch,
    pub(super) deadline_ticks: u64,
    pub(super) uses_wasi: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("process", &self.store.data().process)
            .finish()
    }
}

impl Instance {
    /// Instantiates the component for `process` and returns it without calling `start`.
    pub(crate) fn instantiate(
        prepared: &Prepared,
        process: Arc<str>,
        definition: Arc<Definition>,
        limits: &Limits,
        uses_wasi: bool,
    ) -> Result<Self, (FaultKind, String)> {
        let wasi = if uses_wasi {
            let stderr = super::wasi::GuestStderr::default();
            let ctx = limits
                .grants
                .context(&stderr)
                .map_err(|e| (FaultKind::Internal, e))?;
            Some(super::wasi::WasiState {
                ctx,
                table: wasmtime::component::ResourceTable::new(),
                stderr,
            })
        } else {
            None
        };
        let state = InstanceState {
            process,
            definition,
            limiter: MemoryLimiter {
                cap: limits.memory,
                exceeded: false,
                used: 0,
            },
            max_sends: limits.max_sends,
            max_message: limits.max_message,
            input_metadata: Vec::new(),
            outputs: Vec::new(),
            timers: Vec::new(),
            sends: 0,
            violation: None,
            refused: 0,
            wasi,
        };
        let mut store = Store::new(prepared.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        let deadline_ticks =
            limits.deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1;
        store.set_epoch_deadline(deadline_ticks);
        let raw = prepared
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&store, &e))?;
        let guest = prepared
            .indices
            .load(&mut store, &raw)
            .map_err(|e| classify(&store, &e))?;
        Ok(Instance {
            store,
            guest,
            raw,
            snapshot: prepared.snapshot,
            restore: prepared.restore,
            batch: prepared.batch,
            scratch: Default::default(),
            deadline_ticks,
            uses_wasi,
        })
    }

    /// Checks that the optional state exports, when present, have the world's types.
    pub(crate) fn check_state_exports(&mut self) -> Result<(), String> {
        if let Some(index) = &self.snapshot {
            self.raw
                .get_typed_func::<(), (Option<Vec<u8>>,)>(&mut self.store, index)
                .map_err(|e| format!("export `snapshot` has the wrong type: {e}"))?;
        }
        if let Some(index) = &self.restore {
            self.raw
                .get_typed_func::<(&[u8],), (Result<(), String>,)>(&mut self.store, index)
                .map_err(|e| format!("export `restore` has the wrong type: {e}"))?;
        }
        if let Some(index) = &self.batch {
            self.raw
                .get_typed_func::<super::batch::Params<'_>, super::batch::Results>(
                    &mut self.store,
                    index,
                )
                .map_err(|e| format!("export `process-batch` has the wrong type: {e}"))?;
        }
        Ok(())
    }

    /// The instance's state for a newer version (`snapshot` export); `None` when the
    /// component has no such export or keeps no state.
    pub fn snapshot(&mut self) -> Result<Option<Vec<u8>>, (FaultKind, String)> {
        let Some(index) = &self.snapshot else {
            return Ok(None);
        };
        let index = *index;
        self.reset_call_state();
        self.store.set_epoch_deadline(self.deadline_ticks);
        let func = self
            .raw
            .get_typed_func::<(), (Option<Vec<u8>>,)>(&mut self.store, index)
            .map_err(|e| (FaultKind::Internal, e.to_string()))?;
        let called = if self.uses_wasi {
            blocking(|| func.call(&mut self.store, ()))
        } else {
            func.call(&mut self.store, ())
        };
        // Sends and timers belong to messages, not to a snapshot: dropped.
        self.reset_call_state();
        match called {
            Ok((state,)) => Ok(state),
            Err(e) => Err(classify(&self.store, &e)),
        }
    }

    /// Offers an older version's state to this instance (`restore` export).
    pub fn restore(&mut self, state: &[u8]) -> Result<Restored, (FaultKind, String)> {
        let Some(index) = &self.restore else {
            return Ok(Restored::Unsupported);
        };
        let index = *index;
        self.reset_call_state();
        self.store.set_epoch_deadline(self.deadline_ticks);
        let func = self
            .raw
            .get_typed_func::<(&[u8],), (Result<(), String>,)>(&mut self.store, index)
            .map_err(|e| (FaultKind::Internal, e.to_string()))?;
        let called = if self.uses_wasi {
            blocking(|| func.call(&mut self.store, (state,)))
        } else {
            func.call(&mut self.store, (state,))
        };
        self.reset_call_state();
        match called {
            Ok((Ok(()),)) => Ok(Restored::Yes),
            Ok((Err(reason),)) => Ok(Restored::Refused(reason)),
            Err(e) => Err(classify(&self.store, &e)),
        }
    }

    /// Prepares the store for a call delivering `messages` messages with `metadata`: the
    /// metadata outputs inherit, fresh send accounting, and a CPU deadline of one
    /// per-message deadline per message.
    pub(super) fn begin_call(&mut self, metadata: &[(String, String)], messages: u32) {
        let s = self.store.data_mut();
        s.input_metadata.clear();
        s.input_metadata.extend_from_slice(metadata);
        s.sends = 0;
        s.violation = None;
        s.refused = 0;
        self.store
            .set_epoch_deadline(self.deadline_ticks.saturating_mul(u64::from(messages)));
    }

    pub(super) fn reset_call_state(&mut self) {
        let s = self.store.data_mut();
        s.outputs.clear();
        s.timers.clear();
        s.input_metadata.clear();
        s.sends = 0;
        s.violation = None;
        s.refused = 0;
    }

    /// Asks the guest for its definition.
    pub(crate) fn definition(&mut self) -> Result<Definition, (FaultKind, String)> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let d = match self.guest.call_definition(&mut self.store) {
            Ok(d) => d,
            Err(e) => return Err(classify(&self.store, &e)),
        };
        let port = |p: wit::Port| PortDef {
            id: p.id,
            type_: p.type_,
            description: p.description,
            schema: p.schema,
            parameter: p.parameter,
        };
        Ok(Definition {
            component: d.component,
            label: d.label,
            icon: d.icon,
            inports: d.inports.into_iter().map(port).collect(),
            outports: d.outports.into_iter().map(port).collect(),
        })
    }

    /// Bytes of linear memory this instance holds (all its memories together): what
    /// its process's `memory` cap is measured against, per memory.
    pub fn linear_memory(&self) -> usize {
        self.store.data().limiter.used
    }

    /// Calls the guest's `start` export.
    pub fn start(&mut self) -> CallOutcome {
        self.call(&[], |guest, store| guest.call_start(store))
    }

    /// Delivers `msg` on inport `port`.
    pub fn process(&mut self, port: &str, msg: &Message) -> CallOutcome {
        let pairs = borrowed(&msg.metadata);
        let wire = wit::MessageParam {
            content_type: &msg.content_type,
            data: &msg.data,
            metadata: &pairs,
        };
        self.call(&msg.metadata, |guest, store| {
            guest.call_process(store, port, wire)
        })
    }

    /// Tells the guest that timer `id` expired.
    pub fn on_timer(&mut self, id: u32) -> CallOutcome {
        self.call(&[], |guest, store| guest.call_on_timer(store, id))
    }

    fn call(
        &mut self,
        metadata: &[(String, String)],
        f: impl FnOnce(
            &Participant,
            &mut Store<InstanceState>,
        ) -> wasmtime::Result<Result<(), wit::Nack>>,
    ) -> CallOutcome {
        self.begin_call(metadata, 1);
        let called = if self.uses_wasi {
            blocking(|| f(&self.guest, &mut self.store))
        } else {
            f(&self.guest, &mut self.store)
        };
        let s = self.store.data_mut();
        let mut outputs = std::mem::take(&mut s.outputs);
        let timers = std::mem::take(&mut s.timers);
        // A broken host limit outranks the guest's own verdict on the message.
        let violation = s.violation.take();
        let result = match (called, violation) {
            // The host stopped a guest that kept breaking a limit.
            (Err(e), Some(v)) if e.downcast_ref::<wasmtime::Trap>().is_none() => {
                Err((FaultKind::LimitExceeded, v))
            }
            (Err(e), _) => Err(classify(&self.store, &e)),
            (Ok(_), Some(v)) => Err((FaultKind::LimitExceeded, v)),
            (Ok(Err(nack)), None) => Err((nack_kind(nack.kind), nack.reason)),
            (Ok(Ok(())), None) => Ok(()),
        };
        if result.is_err() {
            outputs.clear();
        }
        CallOutcome {
            outputs,
            timers,
            result,
        }
    }
}

/// Metadata pairs as the canonical ABI lowers them.
pub(super) fn borrowed(metadata: &[(String, String)]) -> Vec<(&str, &str)> {
    metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Runs a call into a WASI guest. wasmtime-wasi's synchronous bindings block on tokio
/// internally, which a runtime worker may only do inside `block_in_place`.
pub(super) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

pub(super) fn nack_kind(kind: wit::NackKind) -> FaultKind {
    match kind {
        wit::NackKind::InvalidInput => FaultKind::InvalidInput,
        wit::NackKind::Unavailable => FaultKind::Unavailable,
        wit::NackKind::Internal => FaultKind::Internal,
    }
}

/// Maps a wasmtime error from a guest call to a fault kind and a one-line detail.
pub(super) fn classify(store: &Store<InstanceState>, err: &wasmtime::Error) -> (FaultKind, String) {
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    let kind = match trap {
        Some(wasmtime::Trap::Interrupt) => FaultKind::Timeout,
        Some(wasmtime::Trap::StackOverflow) => FaultKind::StackOverflow,
        _ if store.data().limiter.exceeded => FaultKind::MemoryExhausted,
        _ => FaultKind::Trap,
    };
    let detail = match kind {
        FaultKind::Timeout => "guest exceeded its CPU deadline".to_string(),
        FaultKind::MemoryExhausted => {
            let cap = store.data().limiter.cap;
            format!(
                "guest exceeded its memory cap of {} bytes ({} MiB; the process's `memory` \
                 metadata raises it)",
                cap,
                cap >> 20
            )
        }
        _ => match trap {
            // An interpreter's uncaught exception, printed to stderr just before the trap.
            Some(t) => match store
                .data()
                .wasi
                .as_ref()
                .and_then(|w| w.stderr.take_last_line())
            {
                Some(line) => format!("guest trapped: {t}: {line}"),
                None => format!("guest trapped: {t}"),
            },
            None => err
                .to_string()
                .lines()
                .next()
                .unwrap_or("guest failed")
                .to_string(),
        },
    };
    (kind, detail)
}
