//! The typed graph model, mirroring the fbp JSON graph format.

use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// Free-form metadata object attached to processes, exports, edges and groups.
pub type Metadata = Map<String, Value>;

/// A flow graph: processes, the connections between them and the exported ports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// Whether port names keep their case (`fbp --case-sensitive`).
    pub case_sensitive: bool,
    /// Graph properties: `name`, `environment{type}`, `description`, `icon`, ...
    pub properties: Map<String, Value>,
    /// Exported inports: public name -> inner process port.
    pub inports: IndexMap<String, Export>,
    /// Exported outports: public name -> inner process port.
    pub outports: IndexMap<String, Export>,
    /// Named groups of processes.
    pub groups: Vec<Group>,
    /// Processes by name, in declaration order.
    pub processes: IndexMap<String, Process>,
    /// Edges and initial information packets, in source order.
    pub connections: Vec<Connection>,
}

/// A graph node: one instance of a component.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Process {
    /// Component name; empty when the graph never declared one.
    pub component: String,
    /// Process metadata (`Proc(Comp:key=val)` in .fbp).
    pub metadata: Option<Metadata>,
    /// Source line of the first declaration (.fbp only; not serialized).
    pub line: Option<u32>,
    /// Set when .fbp gave the metadata before the component (`P(:x=1)`, later `P(C)`):
    /// fbp then prints `metadata` before `component`. Only [`Graph::to_json`]'s key order
    /// depends on it.
    pub metadata_first: bool,
}

/// One connection of the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// A port-to-port edge.
    Edge(Edge),
    /// An initial information packet sent to a port.
    Iip(Iip),
}

impl Connection {
    /// The receiving end of the connection.
    pub fn tgt(&self) -> &PortRef {
        match self {
            Connection::Edge(edge) => &edge.tgt,
            Connection::Iip(iip) => &iip.tgt,
        }
    }

    /// Source line (.fbp only).
    pub fn line(&self) -> Option<u32> {
        match self {
            Connection::Edge(edge) => edge.line,
            Connection::Iip(iip) => iip.line,
        }
    }
}

/// An edge from an outport to an inport.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Sending port.
    pub src: PortRef,
    /// Receiving port.
    pub tgt: PortRef,
    /// Edge metadata (JSON graphs only).
    pub metadata: Option<Metadata>,
    /// Source line (.fbp only; not serialized).
    pub line: Option<u32>,
}

/// An initial information packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Iip {
    /// The packet.
    pub data: Value,
    /// Receiving port.
    pub tgt: PortRef,
    /// IIP metadata (JSON graphs only).
    pub metadata: Option<Metadata>,
    /// Source line (.fbp only; not serialized).
    pub line: Option<u32>,
}

/// A port of a process, optionally an array port index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortRef {
    /// Process name.
    pub process: String,
    /// Port name.
    pub port: String,
    /// Array port index (`OUT[2]`).
    pub index: Option<u32>,
}

/// An exported graph port, pointing at a process port.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// Process name.
    pub process: String,
    /// Port name on that process.
    pub port: String,
    /// Export metadata (JSON graphs only).
    pub metadata: Option<Metadata>,
    /// Source line (.fbp only; not serialized).
    pub line: Option<u32>,
}

/// A named group of processes.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Names of the member processes.
    pub nodes: Vec<String>,
    /// Group metadata.
    pub metadata: Option<Metadata>,
}

/// Options of the .fbp parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// Keep port names as written; fbp's default (`false`) lowercases them.
    pub case_sensitive: bool,
}

/// A graph source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The .fbp DSL.
    Fbp,
    /// The JSON graph format.
    Json,
}

impl Format {
    /// Guesses the format: the extension first (`.fbp`, `.json`), then the content
    /// (JSON when the first non-whitespace character is `{`).
    pub fn detect(path: Option<&Path>, src: &str) -> Format {
        let ext = path
            .and_then(Path::extension)
            .and_then(|ext| ext.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("fbp") => Format::Fbp,
            Some("json") => Format::Json,
            _ if src.trim_start().starts_with('{') => Format::Json,
            _ => Format::Fbp,
        }
    }
}
