//! Loading components: read, check, compile (with an on-disk cache), pre-instantiate.
//!
//! A [`Loader`] turns a `.wasm` file into a [`LoadedComponent`]: the file's content hash,
//! its [`Definition`], and an `InstancePre` from which participant instances are created
//! in microseconds. Compiled code is cached on disk keyed by content hash and engine, so
//! a component is compiled once per machine, not once per run.

mod cache;
mod resolve;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};

pub use cache::DiskCache;
pub use resolve::{ResolveError, Resolver, components_dir};

use crate::fault::FaultKind;
use crate::runtime::{Definition, Instance, InstanceState, Limits, Participant, Prepared, Runtime};

/// The world version this host implements.
pub const WORLD: &str = "wasmflo:participant@0.1.0";
const PROVIDED: [&str; 2] = [
    "wasmflo:participant/host@0.1.0",
    "wasmflo:participant/types@0.1.0",
];
/// The WASI 0.2 interface families linked for guests that import WASI.
const WASI_PROVIDED: [&str; 6] = [
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];
const EXPORTS: [&str; 4] = ["definition", "start", "process", "on-timer"];
/// Most ports a definition may declare.
pub const MAX_PORTS: usize = 256;
/// Most text (names, labels, descriptions, schemas) a definition may hold.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;

/// Compiled versions a [`Loader`] keeps in memory while nothing uses them. Live coding
/// loads a new version on every save; the recent ones stay (switching back costs
/// nothing), older unused ones are dropped so an endless stream of edits does not grow
/// memory. A dropped version that is loaded again comes from the disk cache.
pub const KEEP_UNUSED_VERSIONS: usize = 16;

/// The loader's compiled versions by content hash, with when each was last asked for.
#[derive(Default)]
struct Versions {
    entries: HashMap<String, (Arc<LoadedComponent>, u64)>,
    clock: u64,
}

impl Versions {
    fn get(&mut self, hash: &str) -> Option<Arc<LoadedComponent>> {
        self.clock += 1;
        let (loaded, used) = self.entries.get_mut(hash)?;
        *used = self.clock;
        Some(loaded.clone())
    }

    fn insert(&mut self, hash: String, loaded: Arc<LoadedComponent>) {
        self.clock += 1;
        self.entries.insert(hash, (loaded, self.clock));
        // Unused: only this map holds it (instances keep their own code alive anyway).
        let mut unused: Vec<(u64, String)> = self
            .entries
            .iter()
            .filter(|(_, (loaded, _))| Arc::strong_count(loaded) == 1)
            .map(|(hash, (_, used))| (*used, hash.clone()))
            .collect();
        if unused.len() > KEEP_UNUSED_VERSIONS {
            unused.sort_unstable();
            let excess = unused.len() - KEEP_UNUSED_VERSIONS;
            for (_, hash) in unused.into_iter().take(excess) {
                self.entries.remove(&hash);
            }
        }
    }
}

/// Why a component file could not be loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read component: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("{path}: not a WebAssembly component (no `\\0asm` header)")]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// A core module rather than a component.
    #[error(
        "{path}: is a core WebAssembly module, not a component; build it for the {WORLD} world (wit-component turns a module into a component)"
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// wasmtime rejected the bytes.
    #[error("{path}: invalid component: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// wasmtime's first line.
        detail: String,
    },
    /// The component targets another world or another version of ours.
    #[error("{path}: does not implement the {WORLD} world: {detail}")]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// What is missing or extra.
        detail: String,
    },
    /// The component's `definition` or a first instantiation failed.
    #[error("{path}: fails while starting ({kind}): {detail}")]
    Start {
        /// The file.
        path: PathBuf,
        /// Fault kind.
        kind: FaultKind,
        /// Detail.
        detail: String,
    },
    /// The definition is unusable (empty or duplicate port names).
    #[error("{path}: bad definition: {detail}")]
    BadDefinition {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// A compiled, checked component ready to instantiate.
pub struct LoadedComponent {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// sha256 of the file, hex: the component's version.
    pub hash: String,
    /// File size in bytes.
    pub size: usize,
    /// What the component says it is.
    pub definition: Arc<Definition>,
    /// The component's imports, as `name` strings.
    pub imports: Vec<String>,
    /// Whether it imports WASI (and so gets a per-instance WASI context from its grants).
    pub uses_wasi: bool,
    pre: Prepared,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("path", &self.path)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl crate::runtime::GuestFactory for LoadedComponent {
    fn definition(&self) -> &Arc<Definition> {
        &self.definition
    }

    fn version(&self) -> &str {
        self.short_hash()
    }

    fn instantiate(
        &self,
        process: Arc<str>,
        limits: &Limits,
    ) -> Result<Box<dyn crate::runtime::Guest>, (FaultKind, String)> {
        Ok(Box::new(LoadedComponent::instantiate(
            self, process, limits,
        )?))
    }
}

impl LoadedComponent {
    /// Creates a new instance for `process` (does not call `start`).
    pub fn instantiate(
        &self,
        process: Arc<str>,
        limits: &Limits,
    ) -> Result<Instance, (FaultKind, String)> {
        Instance::instantiate(
            &self.pre,
            process,
            self.definition.clone(),
            limits,
            self.uses_wasi,
        )
    }

    /// Whether the component exports `snapshot` and `restore` (state handover on a swap).
    pub fn state_exports(&self) -> (bool, bool) {
        self.pre.state_exports()
    }

    /// The first 12 hex digits of the hash, for logs.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }
}

/// Loads components, sharing compiled code between processes that use the same file.
pub struct Loader {
    runtime: Runtime,
    linker: Linker<InstanceState>,
    /// `linker` plus WASI preview 2, for components that import WASI.
    wasi_linker: Linker<InstanceState>,
    cache: Option<DiskCache>,
    loaded: Mutex<Versions>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// A loader on `runtime`, caching compiled code in `cache` when given.
    pub fn new(runtime: Runtime, cache: Option<DiskCache>) -> Self {
        let mut linker = Linker::new(runtime.engine());
        // Cannot fail: a fresh linker has no conflicting definitions.
        let linked = Participant::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s| s);
        debug_assert!(linked.is_ok());
        let mut wasi_linker = linker.clone();
        let linked = wasmtime_wasi::p2::add_to_linker_sync(&mut wasi_linker);
        debug_assert!(linked.is_ok());
        Loader {
            runtime,
            linker,
            wasi_linker,
            cache,
            loaded: Mutex::new(Versions::default()),
        }
    }

    /// The runtime this loader compiles for.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads the component at `path`.
    pub fn load(&self, path: &Path) -> Result<Arc<LoadedComponent>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.into(),
            source,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// Loads a component from `bytes`; `path` names it in errors.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Arc<LoadedComponent>, LoadError> {
        let hash = hash_bytes(bytes);
        if let Some(done) = self.lock().get(&hash) {
            return Ok(done);
        }
        let path_buf = path.to_path_buf();
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm { path: path_buf });
        }
        if !wasmparser::Parser::is_component(bytes) {
            return Err(LoadError::CoreModule { path: path_buf });
        }
        let component = self.compile(path, &hash, bytes)?;
        let imports = self.check_world(path, &component)?;
        let invalid = |e: wasmtime::Error| LoadError::WrongWorld {
            path: path.into(),
            detail: first_line(&e),
        };
        let uses_wasi = imports.iter().any(|i| i.starts_with("wasi:"));
        let linker = if uses_wasi {
            &self.wasi_linker
        } else {
            &self.linker
        };
        let pre = linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = Prepared::new(pre).map_err(invalid)?;
        let definition = probe_definition(path, &pre, uses_wasi)?;
        let loaded = Arc::new(LoadedComponent {
            path: path_buf,
            hash: hash.clone(),
            size: bytes.len(),
            definition: Arc::new(definition),
            imports,
            uses_wasi,
            pre,
        });
        self.lock().insert(hash, loaded.clone());
        Ok(loaded)
    }

    /// Compiled versions held in memory: the ones in use plus at most
    /// [`KEEP_UNUSED_VERSIONS`] recently loaded ones nobody uses.
    pub fn versions_in_memory(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Versions> {
        self.loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn compile(&self, path: &Path, hash: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let engine = self.runtime.engine();
        if let Some(component) = self.cache.as_ref().and_then(|c| c.get(engine, hash)) {
            return Ok(component);
        }
        let invalid = |e: wasmtime::Error| LoadError::Invalid {
            path: path.into(),
            detail: first_line(&e),
        };
        let compiled = engine.precompile_component(bytes).map_err(invalid)?;
        if let Some(cache) = &self.cache {
            cache.put(engine, hash, &compiled);
        }
        // SAFETY-free path: deserialising our own fresh output is what `Component::new`
        // does internally; going through the bytes lets the cache and this share code.
        cache::deserialize(engine, &compiled).map_err(invalid)
    }

    /// Checks imports and exports against the participant world; returns import names.
    fn check_world(&self, path: &Path, component: &Component) -> Result<Vec<String>, LoadError> {
        let engine = self.runtime.engine();
        let ty = component.component_type();
        let wrong = |detail: String| LoadError::WrongWorld {
            path: path.into(),
            detail,
        };
        let mut imports = Vec::new();
        for (name, _) in ty.imports(engine) {
            imports.push(name.to_string());
            if PROVIDED.contains(&name) {
                continue;
            }
            if let Some((_, version)) = name
                .strip_prefix("wasmflo:participant/")
                .and_then(|n| n.split_once('@'))
            {
                return Err(wrong(format!(
                    "built against wasmflo:participant@{version}, this host implements {WORLD}"
                )));
            }
            if name.starts_with("wasi:") {
                // Linked from wasmtime-wasi; what it may reach comes from the grants.
                if WASI_PROVIDED.iter().any(|p| name.starts_with(p)) {
                    continue;
                }
                return Err(wrong(format!(
                    "imports `{name}`, which wasmflo does not provide (it offers {}, each \
                     granted per process)",
                    WASI_PROVIDED.map(|p| p.trim_end_matches('/')).join(", ")
                )));
            }
            return Err(wrong(format!(
                "imports `{name}`, which wasmflo does not provide"
            )));
        }
        let exports: Vec<(String, bool)> = ty
            .exports(engine)
            .map(|(n, item)| {
                (
                    n.to_string(),
                    matches!(item.ty, ComponentItem::ComponentFunc(_)),
                )
            })
            .collect();
        let missing: Vec<&str> = EXPORTS
            .iter()
            .copied()
            .filter(|e| !exports.iter().any(|(n, is_fn)| n == e && *is_fn))
            .collect();
        if !missing.is_empty() {
            let found: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
            return Err(wrong(format!(
                "missing export{} `{}` (exports: {})",
                if missing.len() > 1 { "s" } else { "" },
                missing.join("`, `"),
                if found.is_empty() {
                    "none".into()
                } else {
                    found.join(", ")
                }
            )));
        }
        Ok(imports)
    }
}

fn probe_definition(path: &Path, pre: &Prepared, uses_wasi: bool) -> Result<Definition, LoadError> {
    let start = |(kind, detail)| LoadError::Start {
        path: path.into(),
        kind,
        detail,
    };
    let placeholder = Arc::new(Definition {
        component: String::new(),
        label: String::new(),
        icon: String::new(),
        inports: Vec::new(),
        outports: Vec::new(),
    });
    let mut probe = Instance::instantiate(
        pre,
        Arc::from("<probe>"),
        placeholder,
        &Limits::default(),
        uses_wasi,
    )
    .map_err(start)?;
    let definition = probe.definition().map_err(start)?;
    probe
        .check_state_exports()
        .map_err(|detail| LoadError::WrongWorld {
            path: path.into(),
            detail,
        })?;
    let bad = |detail: String| LoadError::BadDefinition {
        path: path.into(),
        detail,
    };
    // Bounded so a hostile definition cannot make every host-side copy expensive.
    let ports = definition.inports.len() + definition.outports.len();
    if ports > MAX_PORTS {
        return Err(bad(format!(
            "{ports} ports; at most {MAX_PORTS} are allowed"
        )));
    }
    let text: usize = [&definition.component, &definition.label, &definition.icon]
        .iter()
        .map(|s| s.len())
        .sum::<usize>()
        + definition
            .inports
            .iter()
            .chain(&definition.outports)
            .map(|p| {
                p.id.len()
                    + p.type_.len()
                    + p.description.len()
                    + p.schema.as_ref().map_or(0, String::len)
            })
            .sum::<usize>();
    if text > MAX_DEFINITION_BYTES {
        return Err(bad(format!(
            "{text} bytes of text; at most {MAX_DEFINITION_BYTES} are allowed"
        )));
    }
    for (dir, ports) in [
        ("inport", &definition.inports),
        ("outport", &definition.outports),
    ] {
        for (i, p) in ports.iter().enumerate() {
            if p.id.is_empty() {
                return Err(bad(format!("{dir} #{i} has an empty name")));
            }
            if ports[..i].iter().any(|q| q.id.eq_ignore_ascii_case(&p.id)) {
                return Err(bad(format!("{dir} '{}' is declared twice", p.id)));
            }
        }
    }
    Ok(definition)
}

fn first_line(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    text.lines().next().unwrap_or("unknown error").to_string()
}

/// A component's version: the sha256 of its bytes, lower-case hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
