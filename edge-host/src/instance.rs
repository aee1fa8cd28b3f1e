//! Loading a component on wasmi ([`Component`]) and calling a live instance of it
//! ([`Instance`]): executing the linking plan of `unpack`, lowering arguments into guest
//! memory, lifting results, post-return, fuel and fault classification.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use wasmi::{Extern, Func, Memory, Module, Store, TrapCode, Val};

use crate::abi::{AbiError, Guest};
use crate::definition::Definition;
use crate::error::LoadError;
use crate::fault::{Fault, FaultKind};
use crate::host::{self, State};
use crate::limits::Limits;
use crate::message::{CallOutcome, Message};
use crate::unpack::{self, CoreFunc, CoreInstance, ExportRef, Lifted, Plan};

/// The wasmi engine shared by every component of an edge host: fuel metering on, custom
/// page sizes accepted.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: wasmi::Engine,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

/// When wasmi translates a guest function into its own bytecode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Translation {
    /// On its first call (wasmi's default): loading is fast, but wasmi keeps a copy of
    /// every function body until it is translated, and functions never called (most of
    /// a guest's code) are never translated.
    #[default]
    Lazy,
    /// All functions at load time: nothing of the original bytes is kept.
    Eager,
}

impl Engine {
    /// An engine with the edge host's configuration (lazy translation).
    pub fn new() -> Self {
        Self::with_translation(Translation::Lazy)
    }

    /// An engine translating guest code as `translation` says.
    pub fn with_translation(translation: Translation) -> Self {
        let mut config = wasmi::Config::default();
        config.consume_fuel(true);
        config.wasm_custom_page_sizes(true);
        config.compilation_mode(match translation {
            Translation::Lazy => wasmi::CompilationMode::LazyTranslation,
            Translation::Eager => wasmi::CompilationMode::Eager,
        });
        Engine {
            inner: wasmi::Engine::new(&config),
        }
    }
}

/// A component unpacked, its core modules compiled, and its definition read.
#[derive(Debug)]
pub struct Component {
    engine: wasmi::Engine,
    plan: Plan,
    modules: Vec<Module>,
    definition: Arc<Definition>,
}

/// Why instantiation failed: the guest faulted, or the component cannot be linked.
#[derive(Debug)]
enum InstantiateError {
    Fault(Fault),
    Link(String),
}

impl Component {
    /// Unpacks, compiles and checks the component in `bytes`, and reads its definition
    /// from a probe instance (on a throwaway engine, so the code it translates is freed).
    /// `bytes` may live in flash: nothing borrows it afterwards.
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<Self, LoadError> {
        let plan = unpack::unpack(bytes)?;
        // The probe runs on an engine and modules of its own, dropped with it: wasmi keeps
        // the bytecode it translates for as long as its engine lives, and the code only
        // `definition` reaches (the SDK's definition builders) would otherwise stay in RAM
        // for good (36 KiB on x86_64 for the formatter) though never called again.
        let probe_engine = wasmi::Engine::new(engine.inner.config());
        let mut component = Component {
            modules: compile(&probe_engine, &plan, bytes)?,
            engine: probe_engine,
            plan,
            definition: Arc::new(Definition::default()),
        };
        let start = |f: Fault| LoadError::Start {
            kind: f.kind,
            detail: f.detail,
        };
        let mut probe = match component.instantiate_inner(&Limits::default()) {
            Ok(probe) => probe,
            Err(InstantiateError::Fault(f)) => return Err(start(f)),
            Err(InstantiateError::Link(detail)) => return Err(LoadError::Invalid { detail }),
        };
        let definition = probe.definition().map_err(start)?;
        check_definition(&definition)?;
        drop(probe);
        // The probe's modules go before the kept ones are compiled, so the two sets never
        // coexist.
        component.modules = Vec::new();
        component.engine = engine.inner.clone();
        component.modules = compile(&engine.inner, &component.plan, bytes)?;
        component.definition = Arc::new(definition);
        Ok(component)
    }

    /// What the component says it is.
    pub fn definition(&self) -> &Arc<Definition> {
        &self.definition
    }

    /// How many core modules the component holds.
    pub fn module_count(&self) -> usize {
        self.modules.len()
    }

    /// Creates a new instance under `limits` (does not call `start`).
    pub fn instantiate(&self, limits: &Limits) -> Result<Instance, Fault> {
        self.instantiate_inner(limits).map_err(|e| match e {
            InstantiateError::Fault(f) => f,
            InstantiateError::Link(detail) => Fault::new(FaultKind::Trap, detail),
        })
    }

    fn instantiate_inner(&self, limits: &Limits) -> Result<Instance, InstantiateError> {
        let mut store = Store::new(&self.engine, State::new(self.definition.clone(), limits));
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| InstantiateError::Link(e.to_string()))?;
        let mut linking = Linking {
            fuel: limits.fuel,
            plan: &self.plan,
            modules: &self.modules,
            store: &mut store,
            instances: Vec::with_capacity(self.plan.instances.len()),
            lowered: Vec::new(),
        };
        for instance in &self.plan.instances {
            linking.step(instance)?;
        }
        let mut exports = Vec::with_capacity(4);
        for (name, lifted) in unpack::EXPORTS.iter().zip(&self.plan.exports) {
            exports.push(linking.export(name, lifted)?);
        }
        let [definition, start, process, on_timer] = <[Export; 4]>::try_from(exports)
            .map_err(|_| InstantiateError::Link("wrong number of exports".into()))?;
        Ok(Instance {
            store,
            fuel: limits.fuel,
            exports: Exports {
                definition,
                start,
                process,
                on_timer,
            },
        })
    }
}

/// The plan's core modules in `bytes`, compiled on `engine`.
fn compile(engine: &wasmi::Engine, plan: &Plan, bytes: &[u8]) -> Result<Vec<Module>, LoadError> {
    let mut modules = Vec::with_capacity(plan.modules.len());
    for (i, range) in plan.modules.iter().enumerate() {
        let wasm = bytes
            .get(range.clone())
            .ok_or_else(|| LoadError::Malformed {
                offset: range.start,
                detail: "core module extends past the end".into(),
            })?;
        let module = Module::new(engine, wasm).map_err(|e| LoadError::Invalid {
            detail: format!("core module {i}: {e}"),
        })?;
        modules.push(module);
    }
    Ok(modules)
}

fn check_definition(definition: &Definition) -> Result<(), LoadError> {
    for (dir, ports) in [
        ("inport", &definition.inports),
        ("outport", &definition.outports),
    ] {
        for (i, p) in ports.iter().enumerate() {
            if p.id.is_empty() {
                return Err(LoadError::BadDefinition {
                    detail: format!("{dir} #{i} has an empty name"),
                });
            }
            if ports[..i].iter().any(|q| q.id.eq_ignore_ascii_case(&p.id)) {
                return Err(LoadError::BadDefinition {
                    detail: format!("{dir} '{}' is declared twice", p.id),
                });
            }
        }
    }
    Ok(())
}

/// A core instance while linking: a real wasmi instance or a bundle of items.
enum Linked {
    Real(wasmi::Instance),
    Bundle(Vec<(String, Extern)>),
}

struct Linking<'a> {
    fuel: u64,
    plan: &'a Plan,
    modules: &'a [Module],
    store: &'a mut Store<State>,
    instances: Vec<Linked>,
    lowered: Vec<(u32, Func)>,
}

fn link_error(text: String) -> InstantiateError {
    InstantiateError::Link(text)
}

impl Linking<'_> {
    fn step(&mut self, instance: &CoreInstance) -> Result<(), InstantiateError> {
        let linked = match instance {
            CoreInstance::Instantiate { module, args } => {
                let m = self
                    .modules
                    .get(*module as usize)
                    .ok_or_else(|| link_error(format!("unknown core module {module}")))?;
                let mut imports = Vec::new();
                for import in m.imports() {
                    let (_, from) = args
                        .iter()
                        .find(|(name, _)| name == import.module())
                        .ok_or_else(|| {
                            link_error(format!(
                                "core module {module} imports from `{}`, which is not supplied",
                                import.module()
                            ))
                        })?;
                    imports.push(self.export_of(*from, import.name())?);
                }
                let instance = wasmi::Instance::new(&mut *self.store, m, &imports)
                    .map_err(|e| InstantiateError::Fault(classify(self.store, &e, self.fuel)))?;
                Linked::Real(instance)
            }
            CoreInstance::FromExports(items) => {
                let mut bundle = Vec::with_capacity(items.len());
                for (name, kind, index) in items {
                    let item = match kind {
                        wasmparser::ExternalKind::Func => Extern::from(self.func(*index)?),
                        wasmparser::ExternalKind::Memory => Extern::from(self.memory(*index)?),
                        wasmparser::ExternalKind::Table => {
                            self.aliased(&self.plan.tables, *index)?
                        }
                        wasmparser::ExternalKind::Global => {
                            self.aliased(&self.plan.globals, *index)?
                        }
                        wasmparser::ExternalKind::Tag => {
                            return Err(link_error("exception tags are not supported".into()));
                        }
                    };
                    bundle.push((name.clone(), item));
                }
                Linked::Bundle(bundle)
            }
        };
        self.instances.push(linked);
        Ok(())
    }

    fn export_of(&self, instance: u32, name: &str) -> Result<Extern, InstantiateError> {
        let found = match self.instances.get(instance as usize) {
            Some(Linked::Real(i)) => i.get_export(&*self.store, name),
            Some(Linked::Bundle(items)) => {
                items.iter().find(|(n, _)| n == name).map(|(_, item)| *item)
            }
            None => None,
        };
        found.ok_or_else(|| link_error(format!("core instance {instance} has no export `{name}`")))
    }

    fn aliased(&self, space: &[ExportRef], index: u32) -> Result<Extern, InstantiateError> {
        let item = space
            .get(index as usize)
            .ok_or_else(|| link_error(format!("unknown core item {index}")))?;
        self.export_of(item.instance, &item.name)
    }

    fn memory(&self, index: u32) -> Result<Memory, InstantiateError> {
        self.aliased(&self.plan.memories, index)?
            .into_memory()
            .ok_or_else(|| link_error(format!("core memory {index} is not a memory")))
    }

    fn func(&mut self, index: u32) -> Result<Func, InstantiateError> {
        match self.plan.funcs.get(index as usize) {
            Some(CoreFunc::Export(item)) => self
                .export_of(item.instance, &item.name)?
                .into_func()
                .ok_or_else(|| link_error(format!("core function {index} is not a function"))),
            Some(CoreFunc::Lowered { host, memory }) => {
                if let Some((_, f)) = self.lowered.iter().find(|(i, _)| *i == index) {
                    return Ok(*f);
                }
                let memory = memory.map(|m| self.memory(m)).transpose()?;
                let f = host::lower(self.store, *host, memory)
                    .map_err(|e| link_error(e.to_string()))?;
                self.lowered.push((index, f));
                Ok(f)
            }
            Some(CoreFunc::Unsupported(what)) => Err(link_error(format!("uses {what}"))),
            None => Err(link_error(format!("unknown core function {index}"))),
        }
    }

    fn export(&mut self, name: &str, lifted: &Lifted) -> Result<Export, InstantiateError> {
        let memory = lifted
            .memory
            .ok_or_else(|| link_error(format!("export `{name}` is lifted without a memory")))?;
        Ok(Export {
            func: self.func(lifted.func)?,
            memory: self.memory(memory)?,
            realloc: lifted.realloc.map(|r| self.func(r)).transpose()?,
            post_return: lifted.post_return.map(|p| self.func(p)).transpose()?,
        })
    }
}

/// One lifted export with its canonical options resolved.
#[derive(Debug, Clone, Copy)]
struct Export {
    func: Func,
    memory: Memory,
    realloc: Option<Func>,
    post_return: Option<Func>,
}

#[derive(Debug, Clone, Copy)]
struct Exports {
    definition: Export,
    start: Export,
    process: Export,
    on_timer: Export,
}

/// What went wrong inside a call, before classification.
enum CallError {
    Wasm(wasmi::Error),
    Abi(AbiError),
}

impl From<wasmi::Error> for CallError {
    fn from(e: wasmi::Error) -> Self {
        CallError::Wasm(e)
    }
}

impl From<AbiError> for CallError {
    fn from(e: AbiError) -> Self {
        CallError::Abi(e)
    }
}

type Verdict = Result<(), (FaultKind, String)>;

/// A live instance of a participant component.
pub struct Instance {
    store: Store<State>,
    exports: Exports,
    fuel: u64,
}

impl core::fmt::Debug for Instance {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Instance")
            .field("component", &self.store.data().definition.component)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::cast_sign_loss, reason = "canonical ABI: i32 carries u32 bits")]
fn ret_u32(v: &Val) -> Result<u32, CallError> {
    match v {
        Val::I32(v) => Ok(*v as u32),
        _ => Err(CallError::Abi(AbiError("export returned a non-i32".into()))),
    }
}

#[allow(
    clippy::cast_possible_wrap,
    reason = "canonical ABI: i32 carries u32 bits"
)]
fn i32v(v: u32) -> Val {
    Val::I32(v as i32)
}

impl Instance {
    /// Asks the guest for its definition.
    pub fn definition(&mut self) -> Result<Definition, Fault> {
        let e = self.exports.definition;
        self.store.data_mut().begin_call(&[]);
        self.refuel()?;
        let result = (|| -> Result<Definition, CallError> {
            let mut out = [Val::I32(0)];
            e.func.call(&mut self.store, &[], &mut out)?;
            let ret = ret_u32(&out[0])?;
            let definition = Guest {
                mem: e.memory.data(&self.store),
            }
            .definition(ret)?;
            post_return(&mut self.store, &e, ret)?;
            Ok(definition)
        })();
        result.map_err(|err| self.classify_call(err))
    }

    /// Calls the guest's `start` export.
    pub fn start(&mut self) -> CallOutcome {
        let e = self.exports.start;
        self.call(&[], |store| call_nack_result(store, &e, &[]))
    }

    /// Delivers `msg` on inport `port`.
    pub fn process(&mut self, port: &str, msg: &Message) -> CallOutcome {
        let e = self.exports.process;
        self.call(&msg.metadata, |store| {
            let realloc = e.realloc.ok_or_else(|| {
                CallError::Abi(AbiError("`process` is lifted without realloc".into()))
            })?;
            let mut lower =
                |bytes: &[u8], align: u32| lower_bytes(store, &e, realloc, bytes, align);
            let (p0, p1) = lower(port.as_bytes(), 1)?;
            let (c0, c1) = lower(msg.content_type.as_bytes(), 1)?;
            let (d0, d1) = lower(&msg.data, 1)?;
            let (m0, m1) = lower_pairs(store, &e, realloc, &msg.metadata)?;
            let args = [p0, p1, c0, c1, d0, d1, m0, m1].map(i32v);
            call_nack_result(store, &e, &args)
        })
    }

    /// Tells the guest that timer `id` expired.
    pub fn on_timer(&mut self, id: u32) -> CallOutcome {
        let e = self.exports.on_timer;
        self.call(&[], |store| call_nack_result(store, &e, &[i32v(id)]))
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_size(&self) -> usize {
        self.exports.process.memory.data_size(&self.store)
    }

    fn refuel(&mut self) -> Result<(), Fault> {
        self.store
            .set_fuel(self.fuel)
            .map_err(|e| Fault::new(FaultKind::Trap, e.to_string()))
    }

    fn fuel_used(&self) -> u64 {
        self.fuel
            .saturating_sub(self.store.get_fuel().unwrap_or(self.fuel))
    }

    fn call(
        &mut self,
        metadata: &[(String, String)],
        f: impl FnOnce(&mut Store<State>) -> Result<Verdict, CallError>,
    ) -> CallOutcome {
        self.store.data_mut().begin_call(metadata);
        let called = match self.refuel() {
            Ok(()) => f(&mut self.store),
            Err(fault) => Ok(Err((fault.kind, fault.detail))),
        };
        let fuel = self.fuel_used();
        let s = self.store.data_mut();
        let mut outputs = core::mem::take(&mut s.outputs);
        let timers = core::mem::take(&mut s.timers);
        let logs = core::mem::take(&mut s.logs);
        // A broken host limit outranks the guest's own verdict on the message.
        let violation = s.violation.take();
        let result = match (called, violation) {
            // The host stopped a guest that kept breaking a limit (not an instruction trap).
            (Err(CallError::Wasm(e)), Some(v)) if e.as_trap_code().is_none() => {
                Err(Fault::new(FaultKind::LimitExceeded, v))
            }
            (Err(CallError::Abi(_)), Some(v)) => Err(Fault::new(FaultKind::LimitExceeded, v)),
            (Err(e), _) => Err(self.classify_call(e)),
            (Ok(_), Some(v)) => Err(Fault::new(FaultKind::LimitExceeded, v)),
            (Ok(Err((kind, reason))), None) => Err(Fault::new(kind, reason)),
            (Ok(Ok(())), None) => Ok(()),
        };
        if result.is_err() {
            outputs.clear();
        }
        CallOutcome {
            outputs,
            timers,
            logs,
            fuel,
            result,
        }
    }

    fn classify_call(&self, e: CallError) -> Fault {
        match e {
            CallError::Wasm(e) => classify(&self.store, &e, self.fuel),
            CallError::Abi(e) => {
                if self.store.data().limiter.exceeded {
                    memory_exhausted(&self.store)
                } else {
                    Fault::new(
                        FaultKind::Trap,
                        format!("guest trapped: canonical ABI: {e}"),
                    )
                }
            }
        }
    }
}

fn memory_exhausted(store: &Store<State>) -> Fault {
    Fault::new(
        FaultKind::MemoryExhausted,
        format!(
            "guest exceeded its memory cap of {} bytes",
            store.data().limiter.cap
        ),
    )
}

/// Maps a wasmi error from a guest call to a fault, as the server host maps wasmtime's.
fn classify(store: &Store<State>, e: &wasmi::Error, fuel: u64) -> Fault {
    match e.as_trap_code() {
        Some(TrapCode::OutOfFuel) => Fault::new(
            FaultKind::Timeout,
            format!("guest used up its {fuel} units of fuel for one call"),
        ),
        Some(TrapCode::StackOverflow) => {
            Fault::new(FaultKind::StackOverflow, format!("guest trapped: {e}"))
        }
        _ if store.data().limiter.exceeded => memory_exhausted(store),
        _ => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("guest failed");
            Fault::new(FaultKind::Trap, format!("guest trapped: {line}"))
        }
    }
}

fn post_return(store: &mut Store<State>, e: &Export, ret: u32) -> Result<(), CallError> {
    if let Some(post) = e.post_return {
        post.call(&mut *store, &[i32v(ret)], &mut [])?;
    }
    Ok(())
}

/// Calls an export returning `result<_, nack>` through a return area, lifts the result
/// and runs post-return.
fn call_nack_result(
    store: &mut Store<State>,
    e: &Export,
    args: &[Val],
) -> Result<Verdict, CallError> {
    let mut out = [Val::I32(0)];
    e.func.call(&mut *store, args, &mut out)?;
    let ret = ret_u32(&out[0])?;
    let verdict = Guest {
        mem: e.memory.data(&*store),
    }
    .nack_result(ret)?;
    post_return(store, e, ret)?;
    Ok(verdict)
}

/// `realloc(0, 0, align, size)`, checked for alignment and bounds.
fn alloc(
    store: &mut Store<State>,
    e: &Export,
    realloc: Func,
    size: u32,
    align: u32,
) -> Result<u32, CallError> {
    let mut out = [Val::I32(0)];
    realloc.call(
        &mut *store,
        &[i32v(0), i32v(0), i32v(align), i32v(size)],
        &mut out,
    )?;
    let ptr = ret_u32(&out[0])?;
    if !ptr.is_multiple_of(align) {
        return Err(AbiError(format!("realloc returned {ptr}, not aligned to {align}")).into());
    }
    Guest {
        mem: e.memory.data(&*store),
    }
    .bytes(ptr, size)?;
    Ok(ptr)
}

fn len_u32(len: usize) -> Result<u32, CallError> {
    u32::try_from(len).map_err(|_| AbiError("value larger than 4 GiB".into()).into())
}

/// Copies `bytes` into guest memory allocated with `realloc`; returns (ptr, len).
fn lower_bytes(
    store: &mut Store<State>,
    e: &Export,
    realloc: Func,
    bytes: &[u8],
    align: u32,
) -> Result<(u32, u32), CallError> {
    let len = len_u32(bytes.len())?;
    let ptr = alloc(store, e, realloc, len, align)?;
    e.memory
        .write(&mut *store, ptr as usize, bytes)
        .map_err(|err| AbiError(format!("writing an argument: {err}")))?;
    Ok((ptr, len))
}

/// Lowers `list<tuple<string, string>>`; returns (ptr, len).
fn lower_pairs(
    store: &mut Store<State>,
    e: &Export,
    realloc: Func,
    pairs: &[(String, String)],
) -> Result<(u32, u32), CallError> {
    let len = len_u32(pairs.len())?;
    let size = len
        .checked_mul(16)
        .ok_or_else(|| AbiError("list too long".into()))?;
    let list = alloc(store, e, realloc, size, 4)?;
    for (i, (k, v)) in (0u32..).zip(pairs) {
        let (kp, kl) = lower_bytes(store, e, realloc, k.as_bytes(), 1)?;
        let (vp, vl) = lower_bytes(store, e, realloc, v.as_bytes(), 1)?;
        let mut element = [0u8; 16];
        for (chunk, value) in element.chunks_exact_mut(4).zip([kp, kl, vp, vl]) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        e.memory
            .write(&mut *store, (list + i * 16) as usize, &element)
            .map_err(|err| AbiError(format!("writing an argument: {err}")))?;
    }
    Ok((list, len))
}
