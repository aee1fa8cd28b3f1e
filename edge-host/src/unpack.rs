//! Unpacks a component binary into its core modules and a linking plan (pure, no wasmi).
//!
//! A component made by wit-component from a Rust guest holds a main core module, a shim
//! module whose table breaks the cycle "lowered imports need the main module's memory",
//! and a fixup module that fills that table once the main module exists. Rather than
//! guess which module is which, the edge host replays the component's own instructions:
//! it tracks the core and component index spaces section by section and records every
//! core instance (instantiate a module with named argument instances, or bundle exports),
//! every `canon lower` of a host function and every `canon lift` of an export. The
//! [`instance`](crate::instance) module then executes that plan on wasmi.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use wasmparser::{
    CanonicalFunction, CanonicalOption, ComponentAlias, ComponentExternalKind,
    ComponentOuterAliasKind, ComponentTypeRef, Encoding, ExternalKind, Instance, Parser, Payload,
};

use crate::error::{LoadError, WORLD};

/// The host interface this edge host provides.
pub(crate) const HOST_INTERFACE: &str = "wasmflo:participant/host@0.1.0";
const TYPES_INTERFACE: &str = "wasmflo:participant/types@0.1.0";
/// The world's exports, in the order [`Exports`] holds them.
pub(crate) const EXPORTS: [&str; 4] = ["definition", "start", "process", "on-timer"];

/// A function of the `host` interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostFunc {
    Send,
    Log,
    SetTimer,
    CancelTimer,
}

impl HostFunc {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "send" => HostFunc::Send,
            "log" => HostFunc::Log,
            "set-timer" => HostFunc::SetTimer,
            "cancel-timer" => HostFunc::CancelTimer,
            _ => return None,
        })
    }
}

/// An item exported by a core instance, by instance index and export name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportRef {
    pub(crate) instance: u32,
    pub(crate) name: String,
}

/// An entry of the core function index space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CoreFunc {
    /// Aliased from a core instance's exports.
    Export(ExportRef),
    /// `canon lower` of a host function; `memory` indexes the core memory space.
    Lowered { host: HostFunc, memory: Option<u32> },
    /// A canonical built-in the edge host does not implement (resources, async...).
    Unsupported(&'static str),
}

/// One core instance, in definition order: executing them in order links the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CoreInstance {
    /// Instantiate module `module`; imports from module name `name` come from instance
    /// `instance`.
    Instantiate {
        module: u32,
        args: Vec<(String, u32)>,
    },
    /// A bundle of existing items under new names.
    FromExports(Vec<(String, ExternalKind, u32)>),
}

/// A lifted export: the core function and its canonical options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifted {
    pub(crate) func: u32,
    pub(crate) memory: Option<u32>,
    pub(crate) realloc: Option<u32>,
    pub(crate) post_return: Option<u32>,
}

/// Entries of the component function index space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ComponentFunc {
    Host(HostFunc),
    Lifted(Lifted),
    Other,
}

/// Entries of the component instance index space.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ComponentInstance {
    Host,
    Other,
}

/// Everything needed to instantiate the component, minus the compiled modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Byte ranges of the embedded core modules within the component binary.
    pub(crate) modules: Vec<Range<usize>>,
    /// Core instances in definition order.
    pub(crate) instances: Vec<CoreInstance>,
    /// The core function index space.
    pub(crate) funcs: Vec<CoreFunc>,
    /// The core memory, table and global index spaces (all aliased from instances).
    pub(crate) memories: Vec<ExportRef>,
    pub(crate) tables: Vec<ExportRef>,
    pub(crate) globals: Vec<ExportRef>,
    /// `definition`, `start`, `process`, `on-timer`.
    pub(crate) exports: [Lifted; 4],
}

#[derive(Default)]
struct Spaces {
    modules: Vec<Range<usize>>,
    instances: Vec<CoreInstance>,
    funcs: Vec<CoreFunc>,
    memories: Vec<ExportRef>,
    tables: Vec<ExportRef>,
    globals: Vec<ExportRef>,
    component_funcs: Vec<ComponentFunc>,
    component_instances: Vec<ComponentInstance>,
    exports: Vec<(String, ComponentFunc)>,
}

fn unsupported(detail: impl Into<String>) -> LoadError {
    LoadError::Unsupported {
        detail: detail.into(),
    }
}

fn wrong_world(detail: String) -> LoadError {
    LoadError::WrongWorld { detail }
}

fn malformed(e: &wasmparser::BinaryReaderError) -> LoadError {
    LoadError::Malformed {
        offset: e.offset(),
        detail: e.message().to_owned(),
    }
}

/// Reads `bytes` as a participant component and returns its linking plan.
pub(crate) fn unpack(bytes: &[u8]) -> Result<Plan, LoadError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm);
    }
    let mut s = Spaces::default();
    // Depth of core modules being skipped: their payloads are the module's own.
    let mut nested = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| malformed(&e))?;
        if nested > 0 {
            match payload {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => nested += 1,
                Payload::End(_) => nested -= 1,
                _ => {}
            }
            continue;
        }
        s.section(payload, &mut nested)?;
    }
    s.finish()
}

impl Spaces {
    fn section(&mut self, payload: Payload<'_>, nested: &mut usize) -> Result<(), LoadError> {
        match payload {
            Payload::Version { encoding, .. } if encoding != Encoding::Component => {
                return Err(LoadError::CoreModule);
            }
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                self.modules.push(unchecked_range);
                *nested += 1;
            }
            Payload::ComponentSection { .. } => return Err(unsupported("nested components")),
            Payload::ComponentStartSection { .. } => {
                return Err(unsupported("a component start function"));
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(|e| malformed(&e))?;
                    self.import(import.name.0, import.ty)?;
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader {
                    self.alias(alias.map_err(|e| malformed(&e))?)?;
                }
            }
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    self.core_instance(instance.map_err(|e| malformed(&e))?);
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for canon in reader {
                    self.canonical(canon.map_err(|e| malformed(&e))?)?;
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|e| malformed(&e))?;
                    match export.kind {
                        ComponentExternalKind::Func => {
                            let func = self.component_func(export.index)?;
                            self.exports.push((export.name.0.to_owned(), func));
                            // An export introduces a new index for the exported item.
                            self.component_funcs.push(func);
                        }
                        ComponentExternalKind::Instance => {
                            self.component_instances.push(ComponentInstance::Other);
                        }
                        ComponentExternalKind::Module
                        | ComponentExternalKind::Component
                        | ComponentExternalKind::Value => {
                            return Err(wrong_world(format!(
                                "exports `{}`, which is not a function",
                                export.name.0
                            )));
                        }
                        ComponentExternalKind::Type => {}
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader {
                    instance.map_err(|e| malformed(&e))?;
                    self.component_instances.push(ComponentInstance::Other);
                }
            }
            // Types are fixed by the world; custom sections carry names and producers.
            _ => {}
        }
        Ok(())
    }

    fn import(&mut self, name: &str, ty: ComponentTypeRef) -> Result<(), LoadError> {
        // Type imports (`message`, `definition`...) name the world's types; they need nothing.
        if matches!(ty, ComponentTypeRef::Type(_)) {
            return Ok(());
        }
        if name != HOST_INTERFACE && name != TYPES_INTERFACE {
            if let Some((_, version)) = name
                .strip_prefix("wasmflo:participant/")
                .and_then(|n| n.split_once('@'))
            {
                return Err(wrong_world(format!(
                    "built against wasmflo:participant@{version}, this host implements {WORLD}"
                )));
            }
            if name.starts_with("wasi:") {
                return Err(unsupported(format!(
                    "imports `{name}`; the edge host provides no WASI"
                )));
            }
            return Err(wrong_world(format!(
                "imports `{name}`, which wasmflo does not provide"
            )));
        }
        match ty {
            ComponentTypeRef::Instance(_) => {
                self.component_instances.push(if name == HOST_INTERFACE {
                    ComponentInstance::Host
                } else {
                    ComponentInstance::Other
                })
            }
            _ => return Err(wrong_world(format!("imports `{name}` as a non-instance"))),
        }
        Ok(())
    }

    fn alias(&mut self, alias: ComponentAlias<'_>) -> Result<(), LoadError> {
        match alias {
            ComponentAlias::InstanceExport {
                kind,
                instance_index,
                name,
            } => match kind {
                ComponentExternalKind::Func => {
                    let from = self
                        .component_instances
                        .get(instance_index as usize)
                        .ok_or_else(|| unsupported("an alias of an unknown instance"))?;
                    let func = match from {
                        ComponentInstance::Host => {
                            ComponentFunc::Host(HostFunc::from_name(name).ok_or_else(|| {
                                wrong_world(format!(
                                    "imports `{HOST_INTERFACE}#{name}`, which wasmflo does not provide"
                                ))
                            })?)
                        }
                        ComponentInstance::Other => ComponentFunc::Other,
                    };
                    self.component_funcs.push(func);
                }
                ComponentExternalKind::Instance => {
                    self.component_instances.push(ComponentInstance::Other);
                }
                ComponentExternalKind::Module => {
                    return Err(unsupported("core modules imported from instances"));
                }
                ComponentExternalKind::Type
                | ComponentExternalKind::Component
                | ComponentExternalKind::Value => {}
            },
            ComponentAlias::CoreInstanceExport {
                kind,
                instance_index,
                name,
            } => {
                let item = ExportRef {
                    instance: instance_index,
                    name: name.to_owned(),
                };
                match kind {
                    ExternalKind::Func => self.funcs.push(CoreFunc::Export(item)),
                    ExternalKind::Memory => self.memories.push(item),
                    ExternalKind::Table => self.tables.push(item),
                    ExternalKind::Global => self.globals.push(item),
                    ExternalKind::Tag => return Err(unsupported("exception tags")),
                }
            }
            ComponentAlias::Outer { kind, .. } => {
                if kind == ComponentOuterAliasKind::CoreModule {
                    return Err(unsupported("outer aliases of core modules"));
                }
            }
        }
        Ok(())
    }

    fn core_instance(&mut self, instance: Instance<'_>) {
        self.instances.push(match instance {
            Instance::Instantiate { module_index, args } => CoreInstance::Instantiate {
                module: module_index,
                args: args.iter().map(|a| (a.name.to_owned(), a.index)).collect(),
            },
            Instance::FromExports(exports) => CoreInstance::FromExports(
                exports
                    .iter()
                    .map(|e| (e.name.to_owned(), e.kind, e.index))
                    .collect(),
            ),
        });
    }

    fn component_func(&self, index: u32) -> Result<ComponentFunc, LoadError> {
        self.component_funcs
            .get(index as usize)
            .copied()
            .ok_or_else(|| unsupported(format!("a reference to unknown function {index}")))
    }

    fn canonical(&mut self, canon: CanonicalFunction) -> Result<(), LoadError> {
        match canon {
            CanonicalFunction::Lift {
                core_func_index,
                options,
                ..
            } => {
                let o = options_of(&options)?;
                self.component_funcs.push(ComponentFunc::Lifted(Lifted {
                    func: core_func_index,
                    memory: o.memory,
                    realloc: o.realloc,
                    post_return: o.post_return,
                }));
            }
            CanonicalFunction::Lower {
                func_index,
                options,
            } => {
                let o = options_of(&options)?;
                let func = match self.component_func(func_index)? {
                    ComponentFunc::Host(host) => CoreFunc::Lowered {
                        host,
                        memory: o.memory,
                    },
                    _ => CoreFunc::Unsupported("lowering a function the host does not provide"),
                };
                self.funcs.push(func);
            }
            // Every other canonical built-in defines one core function.
            _ => self.funcs.push(CoreFunc::Unsupported(
                "canonical built-ins (resources, async, threads)",
            )),
        }
        Ok(())
    }

    fn finish(self) -> Result<Plan, LoadError> {
        let mut lifted = [None; 4];
        for (name, func) in &self.exports {
            if let Some(i) = EXPORTS.iter().position(|e| e == name) {
                match func {
                    ComponentFunc::Lifted(l) => lifted[i] = Some(*l),
                    _ => {
                        return Err(unsupported(format!(
                            "export `{name}` is not a lifted function"
                        )));
                    }
                }
            }
        }
        let missing: Vec<&str> = EXPORTS
            .iter()
            .zip(&lifted)
            .filter(|(_, l)| l.is_none())
            .map(|(e, _)| *e)
            .collect();
        let [Some(definition), Some(start), Some(process), Some(on_timer)] = lifted else {
            let found: Vec<&str> = self.exports.iter().map(|(n, _)| n.as_str()).collect();
            return Err(wrong_world(format!(
                "missing export{} `{}` (exports: {})",
                if missing.len() > 1 { "s" } else { "" },
                missing.join("`, `"),
                if found.is_empty() {
                    "none".into()
                } else {
                    found.join(", ")
                }
            )));
        };
        Ok(Plan {
            modules: self.modules,
            instances: self.instances,
            funcs: self.funcs,
            memories: self.memories,
            tables: self.tables,
            globals: self.globals,
            exports: [definition, start, process, on_timer],
        })
    }
}

#[derive(Default)]
struct Options {
    memory: Option<u32>,
    realloc: Option<u32>,
    post_return: Option<u32>,
}

fn options_of(options: &[CanonicalOption]) -> Result<Options, LoadError> {
    let mut o = Options::default();
    for option in options {
        match *option {
            CanonicalOption::UTF8 => {}
            CanonicalOption::UTF16 | CanonicalOption::CompactUTF16 => {
                return Err(unsupported("string encodings other than UTF-8"));
            }
            CanonicalOption::Memory(m) => o.memory = Some(m),
            CanonicalOption::Realloc(r) => o.realloc = Some(r),
            CanonicalOption::PostReturn(p) => o.post_return = Some(p),
            CanonicalOption::Async | CanonicalOption::Callback(_) => {
                return Err(unsupported("async lifting or lowering"));
            }
        }
    }
    Ok(o)
}
