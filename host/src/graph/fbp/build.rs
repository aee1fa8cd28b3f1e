//! The grammar's actions: fbp's `addNode`, `registerAnnotation`, `processEdges`, ...

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::literal::{js_number, parse_float};
use crate::graph::model::{
    Connection, Edge, Export, Graph, Iip, Metadata, ParseOptions, PortRef, Process,
};

/// `component` rule result: the name (possibly empty) and the raw `:meta` text.
pub(super) struct Component {
    pub(super) name: String,
    pub(super) meta: Option<String>,
}

/// `port` rule result (name already lowercased unless case-sensitive).
pub(super) struct Port {
    name: String,
    index: Option<u32>,
}

/// One element of fbp's flattened edge list; `processEdges` pairs them up.
pub(super) enum Piece {
    /// An outport, with the line it starts on.
    Src(PortRef, u32),
    /// An inport.
    Tgt(PortRef),
    /// An IIP, with the line it starts on.
    Data(Value, u32),
}

/// A `connection` result: fbp only registers array results (`Many`).
pub(super) enum Conn {
    One(Piece),
    Many(Vec<Piece>),
}

impl Conn {
    pub(super) fn into_pieces(self) -> Vec<Piece> {
        match self {
            Conn::One(piece) => vec![piece],
            Conn::Many(pieces) => pieces,
        }
    }
}

#[derive(Default)]
struct Node {
    component: Option<String>,
    metadata: Option<Metadata>,
    metadata_first: bool,
    line: u32,
}

/// The graph under construction.
pub(super) struct Builder {
    case_sensitive: bool,
    default_in: String,
    default_out: String,
    nodes: IndexMap<String, Node>,
    anonymous_counts: HashMap<String, u32>,
    anonymous_names: HashMap<usize, String>,
    properties: Map<String, Value>,
    inports: IndexMap<String, Export>,
    outports: IndexMap<String, Export>,
    pieces: Vec<Piece>,
}

impl Builder {
    pub(super) fn new(opts: ParseOptions) -> Builder {
        Builder {
            case_sensitive: opts.case_sensitive,
            default_in: "IN".to_string(),
            default_out: "OUT".to_string(),
            nodes: IndexMap::new(),
            anonymous_counts: HashMap::new(),
            anonymous_names: HashMap::new(),
            properties: Map::new(),
            inports: IndexMap::new(),
            outports: IndexMap::new(),
            pieces: Vec::new(),
        }
    }

    fn case(&self, name: String) -> String {
        if self.case_sensitive {
            name
        } else {
            name.to_ascii_lowercase()
        }
    }

    pub(super) fn port(&self, name: String, index: Option<u32>) -> Port {
        Port {
            name: self.case(name),
            index,
        }
    }

    /// fbp's `makeInPort` / `makeOutPort`: the given port or the current default.
    pub(super) fn make_port(&self, process: &str, port: Option<Port>, out: bool) -> PortRef {
        let (port, index) = match port {
            Some(port) => (port.name, port.index),
            None => {
                let default = if out {
                    &self.default_out
                } else {
                    &self.default_in
                };
                (self.case(default.clone()), None)
            }
        };
        PortRef {
            process: process.to_string(),
            port,
            index,
        }
    }

    pub(super) fn set_default_port(&mut self, out: bool, name: String) {
        if out {
            self.default_out = name;
        } else {
            self.default_in = name;
        }
    }

    /// fbp's `addNode`: creates the node on first mention; a non-empty component and
    /// any metadata overwrite what an earlier mention set.
    pub(super) fn add_node(&mut self, name: &str, component: Component, line: u32) {
        let node = self.nodes.entry(name.to_string()).or_insert_with(|| Node {
            line,
            ..Node::default()
        });
        if !component.name.is_empty() {
            node.component = Some(component.name);
        }
        if let Some(meta) = component.meta {
            node.metadata_first |= node.component.is_none() && node.metadata.is_none();
            node.metadata = Some(parse_metadata(&meta));
        }
    }

    /// fbp's `addAnonymousNode`: `(Comp)` becomes `_Comp_N`, once per source offset.
    pub(super) fn add_anonymous_node(
        &mut self,
        component: Component,
        offset: usize,
        line: u32,
    ) -> String {
        if let Some(name) = self.anonymous_names.get(&offset) {
            return name.clone();
        }
        let base = anonymous_base(&component.name);
        let count = self.anonymous_counts.entry(base.clone()).or_insert(0);
        *count = count.saturating_add(1);
        let name = format!("_{base}_{count}");
        self.anonymous_names.insert(offset, name.clone());
        self.add_node(&name, component, line);
        name
    }

    pub(super) fn register_annotation(&mut self, key: String, value: String) {
        if key == "runtime" {
            let mut environment = Map::new();
            environment.insert("type".to_string(), Value::String(value));
            self.properties
                .insert("environment".to_string(), Value::Object(environment));
        } else {
            self.properties.insert(key, Value::String(value));
        }
    }

    pub(super) fn register_export(
        &mut self,
        out: bool,
        process: String,
        port: String,
        public: String,
        line: u32,
    ) {
        let (port, public) = (self.case(port), self.case(public));
        let export = Export {
            process,
            port,
            metadata: None,
            line: Some(line),
        };
        let exports = if out {
            &mut self.outports
        } else {
            &mut self.inports
        };
        exports.insert(public, export);
    }

    pub(super) fn register_pieces(&mut self, pieces: Vec<Piece>) {
        self.pieces.extend(pieces);
    }

    /// fbp's `getResult` (without validation) and `processEdges`: a source or IIP
    /// directly followed by a target becomes a connection; anything else is dropped.
    pub(super) fn finish(self) -> Graph {
        let mut connections = Vec::new();
        let mut pieces = self.pieces.into_iter().peekable();
        while let Some(piece) = pieces.next() {
            if !matches!(piece, Piece::Src(..) | Piece::Data(..))
                || !matches!(pieces.peek(), Some(Piece::Tgt(_)))
            {
                continue;
            }
            let Some(Piece::Tgt(tgt)) = pieces.next() else {
                continue;
            };
            connections.push(match piece {
                Piece::Src(src, line) => Connection::Edge(Edge {
                    src,
                    tgt,
                    metadata: None,
                    line: Some(line),
                }),
                Piece::Data(data, line) => Connection::Iip(Iip {
                    data,
                    tgt,
                    metadata: None,
                    line: Some(line),
                }),
                Piece::Tgt(_) => continue,
            });
        }
        let processes = self
            .nodes
            .into_iter()
            .map(|(name, node)| {
                let process = Process {
                    component: node.component.unwrap_or_default(),
                    metadata: node.metadata,
                    line: Some(node.line),
                    metadata_first: node.metadata_first,
                };
                (name, process)
            })
            .collect();
        Graph {
            case_sensitive: self.case_sensitive,
            properties: self.properties,
            inports: self.inports,
            outports: self.outports,
            groups: Vec::new(),
            processes,
            connections,
        }
    }
}

/// `Comp:key=val,routes` metadata: items split on `,`, then on `=`; an item without `=`
/// is a route; `x` and `y` go through JavaScript's `parseFloat`.
fn parse_metadata(meta: &str) -> Metadata {
    let mut metadata = Map::new();
    for item in meta.split(',') {
        let mut parts = item.split('=');
        let first = parts.next().unwrap_or_default();
        let (key, value) = match parts.next() {
            Some(value) => (first, value),
            None => ("routes", first),
        };
        let value = if key == "x" || key == "y" {
            js_number(parse_float(value))
        } else {
            Value::String(value.to_string())
        };
        metadata.insert(key.to_string(), value);
    }
    metadata
}

/// The `Comp` of an anonymous node's name `_Comp_N`: JavaScript's
/// `s.replace(/[^a-zA-Z0-9]+/, "_")`, which replaces only the first run.
pub(crate) fn anonymous_base(s: &str) -> String {
    let Some(start) = s.find(|c: char| !c.is_ascii_alphanumeric()) else {
        return s.to_string();
    };
    let rest = &s[start..];
    let end = rest
        .find(|c: char| c.is_ascii_alphanumeric())
        .map_or(s.len(), |len| start + len);
    format!("{}_{}", &s[..start], &s[end..])
}
