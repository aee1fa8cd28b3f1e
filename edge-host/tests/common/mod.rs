//! Runs the same component on both hosts and reduces their outcomes to one comparable form.
#![allow(dead_code, reason = "each test binary uses part of the harness")]
#![allow(clippy::expect_used, clippy::panic, reason = "test harness")]
#![allow(
    clippy::needless_update,
    reason = "the server host's RuntimeConfig gains fields; defaults fill them"
)]

pub mod device;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wasmflo_edge as edge;
use wasmflo_host::component::Loader;
use wasmflo_host::runtime::{Runtime, RuntimeConfig};

/// One message sent: (outport index, content type, payload, metadata).
pub type Sent = (usize, String, Vec<u8>, Vec<(String, String)>);

/// A call's effects in a host-independent form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The messages sent, in order.
    pub outputs: Vec<Sent>,
    /// (timer id, Some((after ms, repeat)) for set, None for cancel).
    pub timers: Vec<(u32, Option<(u64, bool)>)>,
    /// Ok, or the fault kind and, for nacks and limit violations, the detail.
    pub result: Result<(), (String, Option<String>)>,
}

/// One call to make on both hosts.
#[derive(Debug, Clone)]
pub enum Call {
    Start,
    Process(String, edge::Message),
    Timer(u32),
}

pub fn process(port: &str, payload: impl Into<Vec<u8>>) -> Call {
    Call::Process(port.into(), edge::Message::json_text(payload))
}

/// Where the server host's build put the example components.
pub fn component(name: &str) -> PathBuf {
    wasmflo_guest_build::component_path(&wasmflo_host::component::components_dir(), name)
}

/// The test guests of `tests/guests`, built once per test binary.
pub fn test_guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let out = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = wasmflo_guest_build::workspace_target_dir(&root);
        let out = target.join("edge-test-components");
        let opts = wasmflo_guest_build::BuildOptions::new(&root, &out)
            .target_dir(&target)
            .search(root.join("tests/guests"));
        wasmflo_guest_build::build_components(&opts).expect("build the test guests");
        out
    });
    wasmflo_guest_build::component_path(out, name)
}

fn loader() -> &'static Loader {
    static LOADER: OnceLock<Loader> = OnceLock::new();
    LOADER.get_or_init(|| {
        let runtime = Runtime::new(&RuntimeConfig {
            max_instances: 64,
            max_memory: 256 << 20,
            pooling: false,
            ..Default::default()
        })
        .expect("runtime");
        Loader::new(runtime, None)
    })
}

fn server_kind(kind: wasmflo_host::fault::FaultKind) -> String {
    kind.as_str().to_string()
}

/// Whether a fault's detail comes from the guest or the host's limits (and so must match)
/// rather than from the engine (trap messages differ between wasmtime and wasmi).
fn detail_matters(kind: &str) -> bool {
    matches!(
        kind,
        "invalid-input" | "unavailable" | "internal" | "limit-exceeded"
    )
}

fn result(kind: Option<(String, String)>) -> Result<(), (String, Option<String>)> {
    match kind {
        None => Ok(()),
        Some((kind, detail)) => {
            let detail = detail_matters(&kind).then_some(detail);
            Err((kind, detail))
        }
    }
}

/// Runs `calls` on one fresh server-host instance.
pub fn run_server(path: &Path, calls: &[Call]) -> Vec<Seen> {
    run_server_with(path, calls, &wasmflo_host::runtime::Limits::default())
}

pub fn run_server_with(
    path: &Path,
    calls: &[Call],
    limits: &wasmflo_host::runtime::Limits,
) -> Vec<Seen> {
    let loaded = loader()
        .load(path)
        .expect("server host loads the component");
    let mut instance = loaded
        .instantiate(Arc::from("test"), limits)
        .expect("server host instantiates");
    calls
        .iter()
        .map(|call| {
            let outcome = match call {
                Call::Start => instance.start(),
                Call::Process(port, m) => {
                    let msg = wasmflo_host::message::Message {
                        content_type: m.content_type.clone(),
                        data: m.data.clone().into(),
                        metadata: m.metadata.clone(),
                    };
                    instance.process(port, &msg)
                }
                Call::Timer(id) => instance.on_timer(*id),
            };
            Seen {
                outputs: outcome
                    .outputs
                    .into_iter()
                    .map(|(i, m)| (i, m.content_type, m.data.to_vec(), m.metadata))
                    .collect(),
                timers: outcome
                    .timers
                    .into_iter()
                    .map(|t| match t {
                        wasmflo_host::runtime::TimerCommand::Set { id, after, repeat } => {
                            (id, Some((after.as_millis() as u64, repeat)))
                        }
                        wasmflo_host::runtime::TimerCommand::Cancel(id) => (id, None),
                    })
                    .collect(),
                result: result(outcome.result.err().map(|(k, d)| (server_kind(k), d))),
            }
        })
        .collect()
}

pub fn edge_seen(outcome: edge::CallOutcome) -> Seen {
    Seen {
        outputs: outcome
            .outputs
            .into_iter()
            .map(|(i, m)| (i, m.content_type, m.data, m.metadata))
            .collect(),
        timers: outcome
            .timers
            .into_iter()
            .map(|t| match t {
                edge::TimerCommand::Set {
                    id,
                    after_ms,
                    repeat,
                } => (id, Some((u64::from(after_ms), repeat))),
                edge::TimerCommand::Cancel(id) => (id, None),
            })
            .collect(),
        result: result(
            outcome
                .result
                .err()
                .map(|f| (f.kind.as_str().to_string(), f.detail)),
        ),
    }
}

pub fn edge_component(path: &Path) -> edge::Component {
    let bytes = std::fs::read(path).expect("read component");
    edge::Component::new(&edge::Engine::new(), &bytes).expect("edge host loads the component")
}

/// Runs `calls` on one fresh edge-host instance.
pub fn run_edge(component: &edge::Component, calls: &[Call], limits: &edge::Limits) -> Vec<Seen> {
    let mut instance = component
        .instantiate(limits)
        .expect("edge host instantiates");
    calls
        .iter()
        .map(|call| {
            edge_seen(match call {
                Call::Start => instance.start(),
                Call::Process(port, m) => instance.process(port, m),
                Call::Timer(id) => instance.on_timer(*id),
            })
        })
        .collect()
}
