//! Graph -> .fbp text, in the layout of `fbp.serialize` but lossless for graphs that
//! came from .fbp: reading the output back gives the same JSON.
//!
//! Where `fbp.serialize` is lossy, this writer is not: every process is declared (on its
//! first use, or on a line of its own when that keeps the process order), node metadata
//! is written, IIPs are quoted so they read back as the same value, annotations keep
//! their order. What .fbp cannot express is left out: groups, export and edge metadata,
//! non-string properties, metadata that does not fit the grammar, and the case
//! sensitivity itself (parse the output with the same [`ParseOptions`](super::ParseOptions)).
//! Names outside the grammar's alphabet are written as they are.

use std::collections::HashSet;
use std::fmt::Write;

use serde_json::Value;

use super::fbp::anonymous_base;
use super::model::{Connection, Graph, Metadata, PortRef, Process};

impl Graph {
    /// The graph as .fbp text.
    pub fn to_fbp(&self) -> String {
        let mut header = String::new();
        self.write_annotations(&mut header);
        self.write_exports(&mut header);
        let body = ConnectionWriter::new(self).write();
        if header.is_empty() || body.is_empty() {
            header + &body
        } else {
            header + "\n" + &body
        }
    }

    fn write_annotations(&self, out: &mut String) {
        for (key, value) in &self.properties {
            let annotation = match (key.as_str(), value) {
                ("environment", Value::Object(environment)) => match environment.get("type") {
                    Some(Value::String(runtime)) => Some(("runtime", runtime)),
                    _ => None,
                },
                ("runtime", _) => None,
                (key, Value::String(value)) => Some((key, value)),
                _ => None,
            };
            if let Some((key, value)) =
                annotation.filter(|(key, value)| annotation_fits(key, value))
            {
                let _ = writeln!(out, "# @{key} {value}");
            }
        }
    }

    fn write_exports(&self, out: &mut String) {
        for (keyword, exports) in [("INPORT", &self.inports), ("OUTPORT", &self.outports)] {
            for (public, export) in exports {
                let port = self.port_case(&export.port);
                let public = self.port_case(public);
                let _ = writeln!(out, "{keyword}={}.{port}:{public}", export.process);
            }
        }
    }

    fn port_text(&self, port: &PortRef) -> String {
        let name = self.port_case(&port.port);
        match port.index {
            Some(index) => format!("{name}[{index}]"),
            None => name,
        }
    }

    fn port_case(&self, name: &str) -> String {
        if self.case_sensitive {
            name.to_string()
        } else {
            name.to_ascii_uppercase()
        }
    }
}

/// Writes the connections, one line per chain, declaring every process once and in
/// the graph's process order.
struct ConnectionWriter<'g> {
    graph: &'g Graph,
    order: Vec<&'g str>,
    declared: HashSet<&'g str>,
    /// Processes written as anonymous nodes `(Comp)`: their generated names (`_a_b/c_1`)
    /// are not valid node names, so they can only be recreated where they first appear.
    anonymous: HashSet<&'g str>,
    next: usize,
    out: String,
}

impl<'g> ConnectionWriter<'g> {
    fn new(graph: &'g Graph) -> Self {
        let order = graph.processes.keys().map(String::as_str).collect();
        ConnectionWriter {
            graph,
            order,
            declared: HashSet::new(),
            anonymous: anonymous_processes(graph),
            next: 0,
            out: String::new(),
        }
    }

    fn write(mut self) -> String {
        let connections = &self.graph.connections;
        let mut i = 0;
        while let Some(first) = connections.get(i) {
            // Chain through anonymous processes: `a OUT -> IN (a/b/c) OUT -> IN b`.
            let mut chain = vec![first];
            while let Some(candidate) = connections.get(i + chain.len()) {
                let through = chain.last().map(|last| last.tgt().process.as_str());
                let joins = matches!(candidate, Connection::Edge(edge)
                    if Some(edge.src.process.as_str()) == through && self.anonymous.contains(edge.src.process.as_str()));
                if !joins {
                    break;
                }
                chain.push(candidate);
            }
            i += chain.len();
            self.write_chain(&chain);
        }
        for &name in self.order.clone().iter().skip(self.next) {
            if !self.declared.contains(name) {
                self.declare_metadata_first(name);
                self.declared.insert(name);
                let declaration = self.node_ref(name, true);
                self.line(declaration);
            }
        }
        self.out
    }

    fn write_chain(&mut self, chain: &[&'g Connection]) {
        let mut mentioned: Vec<&'g str> = Vec::new();
        for (position, connection) in chain.iter().enumerate() {
            if let (0, Connection::Edge(edge)) = (position, connection) {
                mentioned.push(&edge.src.process);
            }
            mentioned.push(&connection.tgt().process);
        }
        let mut fresh: Vec<&'g str> = Vec::new();
        for name in mentioned {
            if let Some((name, _)) = self.graph.processes.get_key_value(name)
                && !self.declared.contains(name.as_str())
                && !fresh.contains(&name.as_str())
            {
                fresh.push(name);
            }
        }
        // Declaring inline keeps the process order only if the fresh processes are the
        // next undeclared ones; otherwise named ones get lines of their own first.
        let upcoming: Vec<&str> = self
            .order
            .iter()
            .copied()
            .skip(self.next)
            .filter(|name| !self.declared.contains(name))
            .take(fresh.len())
            .collect();
        // A metadata-first declaration needs a line of its own before the chain, which is
        // only in order for the chain's first fresh process.
        if upcoming != fresh
            || fresh
                .iter()
                .skip(1)
                .any(|name| self.metadata_first(name).is_some())
        {
            let last = fresh
                .iter()
                .filter_map(|name| self.order.iter().position(|o| o == name))
                .max()
                .unwrap_or(0);
            for &name in self.order.clone().iter().take(last + 1).skip(self.next) {
                if !self.anonymous.contains(name) && !self.declared.contains(name) {
                    self.declare_metadata_first(name);
                    self.declared.insert(name);
                    let declaration = self.node_ref(name, true);
                    self.line(declaration);
                }
            }
        }
        if let Some(first) = fresh.first().filter(|name| !self.declared.contains(*name)) {
            self.declare_metadata_first(first);
        }
        let mut text = String::new();
        for (position, connection) in chain.iter().enumerate() {
            let graph = self.graph;
            match connection {
                Connection::Edge(edge) if position == 0 => {
                    let src = self.reference(&edge.src.process);
                    let _ = write!(text, "{src} {} -> ", graph.port_text(&edge.src));
                }
                Connection::Edge(edge) => {
                    let _ = write!(text, " {} -> ", graph.port_text(&edge.src));
                }
                Connection::Iip(iip) => {
                    let _ = write!(text, "{} -> ", iip_text(&iip.data));
                }
            }
            let tgt = connection.tgt();
            let reference = self.reference(&tgt.process);
            let _ = write!(text, "{} {reference}", graph.port_text(tgt));
        }
        self.line(text);
    }

    /// A process as written in a connection, declared there on its first mention.
    fn reference(&mut self, name: &str) -> String {
        let declare = match self.graph.processes.get_key_value(name) {
            Some((name, _)) => self.declared.insert(name.as_str()),
            None => false,
        };
        self.node_ref(name, declare)
    }

    /// `name`, or when declaring `name(Component:meta)`, or `(Component:meta)` for an
    /// anonymous process. Metadata-first processes get their metadata on an earlier line.
    fn node_ref(&self, name: &str, declare: bool) -> String {
        match self.graph.processes.get(name) {
            Some(process) if self.anonymous.contains(name) => {
                format!("({})", component_text(process))
            }
            Some(process) if declare && self.metadata_first(name).is_some() => {
                format!("{name}({})", process.component)
            }
            Some(process) if declare => format!("{name}({})", component_text(process)),
            _ => name.to_string(),
        }
    }

    /// The `:meta` text of a process whose metadata fbp printed before its component.
    fn metadata_first(&self, name: &str) -> Option<String> {
        let process = self
            .graph
            .processes
            .get(name)
            .filter(|p| p.metadata_first && !p.component.is_empty())?;
        if self.anonymous.contains(name) {
            return None;
        }
        process.metadata.as_ref().and_then(metadata_text)
    }

    /// Writes `name(:meta)`, so that a later `name(Component)` comes second.
    fn declare_metadata_first(&mut self, name: &str) {
        if let Some(meta) = self.metadata_first(name) {
            self.line(format!("{name}(:{meta})"));
        }
    }

    fn line(&mut self, text: String) {
        self.out.push_str(&text);
        self.out.push('\n');
        while self
            .order
            .get(self.next)
            .is_some_and(|name| self.declared.contains(name))
        {
            self.next += 1;
        }
    }
}

/// Processes that must be written as `(Comp)`: named `_<base>_<n>` but not valid node
/// names, mentioned at most once as a target and once as the source of the very next
/// connection (a chain), never exported, and numbered 1, 2, ... in process order.
fn anonymous_processes(graph: &Graph) -> HashSet<&str> {
    let mut counters: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut anonymous = HashSet::new();
    for (name, process) in &graph.processes {
        if is_node_name(name) {
            continue;
        }
        let base = anonymous_base(&process.component);
        let count = counters.entry(base.clone()).or_insert(0);
        *count = count.saturating_add(1);
        if *name != format!("_{base}_{count}") || !mentioned_once(graph, name) {
            continue;
        }
        anonymous.insert(name.as_str());
    }
    anonymous
}

fn mentioned_once(graph: &Graph, name: &str) -> bool {
    let exported = graph
        .inports
        .values()
        .chain(graph.outports.values())
        .any(|export| export.process == name);
    let as_tgt: Vec<usize> = graph
        .connections
        .iter()
        .enumerate()
        .filter(|(_, c)| c.tgt().process == name)
        .map(|(i, _)| i)
        .collect();
    let as_src: Vec<usize> = graph
        .connections
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Connection::Edge(edge) if edge.src.process == name))
        .map(|(i, _)| i)
        .collect();
    !exported
        && match (as_tgt.as_slice(), as_src.as_slice()) {
            ([], []) | ([_], []) | ([], [_]) => true,
            ([tgt], [src]) => src.checked_sub(*tgt) == Some(1),
            _ => false,
        }
}

fn is_node_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

fn annotation_fits(key: &str, value: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        && !value.is_empty()
        && !value.starts_with(' ')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' ' | '.'))
}

fn component_text(process: &Process) -> String {
    match process.metadata.as_ref().and_then(metadata_text) {
        Some(meta) => format!("{}:{meta}", process.component),
        None => process.component.clone(),
    }
}

/// `key=value,...` for the entries the grammar can carry (`[a-zA-Z/=_,0-9]`).
fn metadata_text(metadata: &Metadata) -> Option<String> {
    let items: Vec<String> = metadata
        .iter()
        .filter_map(|(key, value)| {
            let fits = |text: &str| {
                text.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_'))
            };
            if !fits(key) {
                return None;
            }
            let value = if key == "x" || key == "y" {
                coordinate_text(value)?
            } else {
                value.as_str().filter(|text| fits(text))?.to_string()
            };
            Some(format!("{key}={value}"))
        })
        .collect();
    (!items.is_empty()).then(|| items.join(","))
}

/// An `x`/`y` value that `parseFloat` reads back the same: digits, `<digits>e<exp>`, or
/// nothing for `null` (`parseFloat("")` is `NaN`, printed as `null`).
fn coordinate_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::Number(number) => {
            if let Some(n) = number.as_u64() {
                return Some(n.to_string());
            }
            let f = number.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0)?;
            let scientific = format!("{f:e}");
            let (mantissa, exponent) = scientific.split_once('e')?;
            let exponent: i64 = exponent.parse().ok()?;
            let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            let exponent = exponent - i64::try_from(fraction.len()).ok()?;
            (exponent >= 0).then(|| format!("{whole}{fraction}e{exponent}"))
        }
        _ => None,
    }
}

/// An IIP that reads back as the same value: `'text'` for plain strings, JSON otherwise.
/// `true`/`false`/`null` get a leading tab: bare, fbp reads them as node names.
fn iip_text(data: &Value) -> String {
    match data {
        Value::String(text) if !text.chars().any(|c| c == '\\' || c.is_control()) => {
            format!("'{}'", text.replace('\'', "\\'"))
        }
        Value::Bool(_) | Value::Null => format!("\t{data}"),
        _ => data.to_string(),
    }
}
