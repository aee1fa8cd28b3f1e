//! The JSON graph format (fbp-graph / `schema/graph.json`) to and from the model.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, error::Category};
use thiserror::Error;

use super::model::{Connection, Edge, Export, Graph, Group, Iip, Metadata, PortRef, Process};

/// A JSON graph that could not be read.
#[derive(Debug, Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct JsonError {
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column of the problem.
    pub column: usize,
    /// What kind of problem.
    pub kind: JsonErrorKind,
    /// serde's description of it.
    #[source]
    pub source: serde_json::Error,
}

/// The kind of a [`JsonError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JsonErrorKind {
    /// Not JSON at all.
    #[error("malformed JSON")]
    Syntax,
    /// JSON, but not shaped like a graph (wrong type, unknown or missing field).
    #[error("not a JSON graph")]
    Shape,
    /// The text ends early.
    #[error("unexpected end of input")]
    Eof,
}

impl From<serde_json::Error> for JsonError {
    fn from(source: serde_json::Error) -> JsonError {
        let kind = match source.classify() {
            Category::Data => JsonErrorKind::Shape,
            Category::Eof => JsonErrorKind::Eof,
            Category::Syntax | Category::Io => JsonErrorKind::Syntax,
        };
        JsonError {
            line: source.line(),
            column: source.column(),
            kind,
            source,
        }
    }
}

/// Parses a JSON graph. Top-level keys, groups, connections and port references must
/// not carry unknown fields (as in fbp's schema); every key is optional except the
/// `process`/`port` of exports and port references, and a connection's `tgt`.
pub fn parse_json(src: &str) -> Result<Graph, JsonError> {
    let raw: RawGraph = serde_json::from_str(src)?;
    Ok(Graph {
        case_sensitive: raw.case_sensitive,
        properties: raw.properties,
        inports: raw
            .inports
            .into_iter()
            .map(|(name, export)| (name, export.into()))
            .collect(),
        outports: raw
            .outports
            .into_iter()
            .map(|(name, export)| (name, export.into()))
            .collect(),
        groups: raw
            .groups
            .into_iter()
            .map(|group| Group {
                name: group.name,
                nodes: group.nodes,
                metadata: group.metadata,
            })
            .collect(),
        processes: raw
            .processes
            .into_iter()
            .map(|(name, process)| {
                let process = Process {
                    component: process.component,
                    metadata: process.metadata,
                    metadata_first: process.metadata_first,
                    ..Process::default()
                };
                (name, process)
            })
            .collect(),
        connections: raw
            .connections
            .into_iter()
            .map(|connection| connection.0)
            .collect(),
    })
}

impl Graph {
    /// The JSON graph, key for key as `fbp FILE.fbp` prints it: `inports`, `outports`,
    /// `groups`, `processes`, `connections`, `properties` (only when non-empty),
    /// `caseSensitive`; absent metadata, indexes and components are omitted. Object keys
    /// that look like array indexes come first, as in any JavaScript object.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("inports".into(), exports_json(&self.inports));
        out.insert("outports".into(), exports_json(&self.outports));
        let groups = self.groups.iter().map(group_json).collect();
        out.insert("groups".into(), Value::Array(groups));
        let processes = self
            .processes
            .iter()
            .map(|(name, process)| {
                let mut entry = Map::new();
                if process.metadata_first {
                    insert_metadata(&mut entry, process.metadata.as_ref());
                }
                if !process.component.is_empty() {
                    entry.insert("component".into(), Value::String(process.component.clone()));
                }
                if !process.metadata_first {
                    insert_metadata(&mut entry, process.metadata.as_ref());
                }
                (name.clone(), Value::Object(entry))
            })
            .collect();
        out.insert("processes".into(), Value::Object(processes));
        let connections = self.connections.iter().map(connection_json).collect();
        out.insert("connections".into(), Value::Array(connections));
        if !self.properties.is_empty() {
            out.insert("properties".into(), Value::Object(self.properties.clone()));
        }
        out.insert("caseSensitive".into(), Value::Bool(self.case_sensitive));
        js_key_order(Value::Object(out))
    }
}

fn exports_json(exports: &IndexMap<String, Export>) -> Value {
    let entries = exports
        .iter()
        .map(|(name, export)| {
            let mut entry = Map::new();
            entry.insert("process".into(), Value::String(export.process.clone()));
            entry.insert("port".into(), Value::String(export.port.clone()));
            insert_metadata(&mut entry, export.metadata.as_ref());
            (name.clone(), Value::Object(entry))
        })
        .collect();
    Value::Object(entries)
}

fn group_json(group: &Group) -> Value {
    let mut entry = Map::new();
    entry.insert("name".into(), Value::String(group.name.clone()));
    let nodes = group.nodes.iter().cloned().map(Value::String).collect();
    entry.insert("nodes".into(), Value::Array(nodes));
    insert_metadata(&mut entry, group.metadata.as_ref());
    Value::Object(entry)
}

fn connection_json(connection: &Connection) -> Value {
    let mut entry = Map::new();
    let metadata = match connection {
        Connection::Edge(edge) => {
            entry.insert("src".into(), port_json(&edge.src));
            entry.insert("tgt".into(), port_json(&edge.tgt));
            edge.metadata.as_ref()
        }
        Connection::Iip(iip) => {
            entry.insert("data".into(), iip.data.clone());
            entry.insert("tgt".into(), port_json(&iip.tgt));
            iip.metadata.as_ref()
        }
    };
    insert_metadata(&mut entry, metadata);
    Value::Object(entry)
}

fn port_json(port: &PortRef) -> Value {
    let mut entry = Map::new();
    entry.insert("process".into(), Value::String(port.process.clone()));
    entry.insert("port".into(), Value::String(port.port.clone()));
    if let Some(index) = port.index {
        entry.insert("index".into(), Value::from(index));
    }
    Value::Object(entry)
}

fn insert_metadata(entry: &mut Map<String, Value>, metadata: Option<&Metadata>) {
    if let Some(metadata) = metadata {
        entry.insert("metadata".into(), Value::Object(metadata.clone()));
    }
}

/// Reorders object keys like a JavaScript object: array-index keys ascending first.
fn js_key_order(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut indexed = Vec::new();
            let mut named = Vec::new();
            for (key, value) in map {
                let value = js_key_order(value);
                match array_index(&key) {
                    Some(index) => indexed.push((index, key, value)),
                    None => named.push((key, value)),
                }
            }
            indexed.sort_by_key(|(index, _, _)| *index);
            let indexed = indexed.into_iter().map(|(_, key, value)| (key, value));
            Value::Object(indexed.chain(named).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(js_key_order).collect()),
        other => other,
    }
}

/// A canonical array index (`0` .. `2^32 - 2`, no leading zeros).
fn array_index(key: &str) -> Option<u32> {
    let index: u32 = key.parse().ok()?;
    (index != u32::MAX && index.to_string() == key).then_some(index)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGraph {
    #[serde(default)]
    case_sensitive: bool,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    inports: IndexMap<String, RawExport>,
    #[serde(default)]
    outports: IndexMap<String, RawExport>,
    #[serde(default)]
    groups: Vec<RawGroup>,
    #[serde(default)]
    processes: IndexMap<String, RawProcess>,
    #[serde(default)]
    connections: Vec<JsonConnection>,
}

#[derive(Deserialize)]
struct RawExport {
    process: String,
    port: String,
    #[serde(default)]
    metadata: Option<Metadata>,
}

impl From<RawExport> for Export {
    fn from(raw: RawExport) -> Export {
        Export {
            process: raw.process,
            port: raw.port,
            metadata: raw.metadata,
            line: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// A process object. Read through a map so the key order is kept: fbp prints `metadata`
/// before `component` for processes whose metadata came first, and a JSON round trip
/// must reproduce that.
#[derive(Deserialize)]
#[serde(try_from = "Map<String, Value>")]
struct RawProcess {
    component: String,
    metadata: Option<Metadata>,
    metadata_first: bool,
}

impl TryFrom<Map<String, Value>> for RawProcess {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let component = match map.get("component") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("process component must be a string, not {other}")),
        };
        let metadata = match map.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(other) => return Err(format!("process metadata must be an object, not {other}")),
        };
        let position = |key: &str| map.keys().position(|k| k == key);
        let metadata_first = matches!(
            (position("metadata"), position("component")),
            (Some(m), Some(c)) if m < c
        );
        Ok(RawProcess {
            component,
            metadata,
            metadata_first,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortRef {
    process: String,
    port: String,
    #[serde(default)]
    index: Option<u32>,
}

impl From<RawPortRef> for PortRef {
    fn from(raw: RawPortRef) -> PortRef {
        PortRef {
            process: raw.process,
            port: raw.port,
            index: raw.index,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    #[serde(default)]
    src: Option<RawPortRef>,
    tgt: RawPortRef,
    /// `Some(Value::Null)` for `"data": null`, `None` when the key is absent.
    #[serde(default, deserialize_with = "present")]
    data: Option<Value>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A connection checked while deserializing, so shape errors keep their position.
#[derive(Deserialize)]
#[serde(try_from = "RawConnection")]
struct JsonConnection(Connection);

impl TryFrom<RawConnection> for JsonConnection {
    type Error = &'static str;

    fn try_from(raw: RawConnection) -> Result<JsonConnection, &'static str> {
        let tgt = raw.tgt.into();
        let connection = match (raw.src, raw.data) {
            (Some(src), None) => Connection::Edge(Edge {
                src: src.into(),
                tgt,
                metadata: raw.metadata,
                line: None,
            }),
            (None, Some(data)) => Connection::Iip(Iip {
                data,
                tgt,
                metadata: raw.metadata,
                line: None,
            }),
            (Some(_), Some(_)) => return Err("a connection has either `src` or `data`, not both"),
            (None, None) => return Err("a connection needs `src` or `data`"),
        };
        Ok(JsonConnection(connection))
    }
}
