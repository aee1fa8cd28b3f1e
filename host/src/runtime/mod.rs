//! The wasmtime side: one [`Runtime`] (engine, epoch ticker, pooling allocator) per host,
//! the generated bindings, the host interface, and long-lived [`Instance`]s.
//!
//! Each participant instance owns one `Store`. Guest calls are synchronous: the world's
//! imports never block, and a per-message epoch deadline bounds how long a call may run.

mod batch;
mod bindings;
mod fncache;
mod guest;
mod host;
mod instance;
mod limits;
mod wasi;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use batch::BatchCall;
pub(crate) use bindings::Participant;
pub(crate) use bindings::wasmflo::participant::types as wit;
pub use guest::{Guest, GuestFactory};
pub use instance::{CallOutcome, Definition, Instance, PortDef, Restored, TimerCommand};
pub(crate) use instance::{InstanceState, Prepared};
pub use limits::{LimitError, Limits, parse_duration, parse_size};
pub use wasi::{DirGrant, Grants};

/// How often the epoch advances. A deadline is rounded up to whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How many participant instances may exist at once (pool size).
    pub max_instances: u32,
    /// The largest memory any process may be granted (pool slot size).
    pub max_memory: usize,
    /// Use the pooling allocator (falls back to on-demand if the pool cannot be reserved).
    pub pooling: bool,
    /// Bytes of Cranelift's per-function compile cache (0 disables it): a new version of
    /// a component recompiles only the functions that changed.
    pub function_cache: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 1000,
            max_memory: 1 << 30,
            pooling: true,
            function_cache: 64 << 20,
        }
    }
}

/// Errors creating the engine.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(#[source] wasmtime::Error),
}

/// The wasmtime engine shared by every participant of a host, plus its epoch ticker.
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    max_memory: usize,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Creates the engine and starts the epoch ticker thread (stopped when the last
    /// clone of the runtime is dropped).
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = match config
            .pooling
            .then(|| Engine::new(&engine_config(config, true)))
        {
            Some(Ok(engine)) => engine,
            Some(Err(err)) => {
                tracing::warn!("pooling allocator unavailable ({err}); using on-demand allocation");
                Engine::new(&engine_config(config, false)).map_err(RuntimeError::Engine)?
            }
            None => Engine::new(&engine_config(config, false)).map_err(RuntimeError::Engine)?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("wasmflo-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(wasmtime::Error::msg(e.to_string())))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                max_memory: config.max_memory,
                stop,
            }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The largest memory cap a process may ask for.
    pub fn max_memory(&self) -> usize {
        self.inner.max_memory
    }
}

/// Bytes of each pooled memory and table kept resident between instances: enough for
/// a small participant's stack, data and heap (the Rust components use 2-3 pages).
const KEEP_RESIDENT: usize = 256 << 10;

fn engine_config(config: &RuntimeConfig, pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.wasm_custom_page_sizes(true);
    c.memory_init_cow(true);
    // Deep recursion must trap cleanly well before the host thread's own stack ends.
    c.max_wasm_stack(1 << 20);
    if config.function_cache > 0 {
        let cache = Arc::new(fncache::FunctionCache::new(config.function_cache));
        if let Err(e) = c.enable_incremental_compilation(cache) {
            tracing::warn!("no per-function compile cache: {e}");
        }
    }
    if pooling {
        let n = config.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n)
            .total_tables(n.saturating_mul(2))
            .max_memory_size(config.max_memory)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            // A recreated or pooled instance reuses a warm slot: reset its first pages
            // with memset (only the pages it touched, where the kernel can tell) instead
            // of handing them back to the kernel and taking a page fault on each again.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}
