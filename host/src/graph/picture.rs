//! Pictures of a graph: Graphviz DOT text ([`Graph::to_dot`]) and a self-contained SVG
//! ([`Graph::to_svg`]) laid out here, so no external program is needed.
//!
//! Components are not loaded, so a process shows the ports that edges, IIPs and exports
//! name. The SVG layout is layered left to right: cycles are broken by dropping DFS back
//! edges, layers are longest paths from the sources, and two barycenter sweeps order each
//! layer. Text widths are estimated for a monospace font. Output is deterministic.

use std::collections::HashSet;
use std::fmt::Write;

use super::model::{Connection, Graph};

mod svg;
#[cfg(test)]
mod tests;

/// How much of an IIP's JSON a picture shows, in characters.
const IIP_CHARS: usize = 24;

/// A process with the ports the graph names, inports and outports in first-use order.
struct Node<'g> {
    name: &'g str,
    component: &'g str,
    ins: Vec<String>,
    outs: Vec<String>,
}

/// A process port: (process index, port index on its side).
type Slot = (usize, usize);

/// A label attached to a port from outside: an IIP or an exported port's public name.
struct Tag {
    text: String,
    at: Slot,
    iip: bool,
}

/// What both pictures draw, resolved to indices.
struct Outline<'g> {
    nodes: Vec<Node<'g>>,
    edges: Vec<(Slot, Slot)>,
    /// IIPs and exported inports, left of an inport.
    left: Vec<Tag>,
    /// Exported outports, right of an outport.
    right: Vec<Tag>,
}

fn port_label(port: &str, index: Option<u32>) -> String {
    match index {
        Some(i) => format!("{port}[{i}]"),
        None => port.to_string(),
    }
}

fn slot_of(ports: &mut Vec<String>, label: String) -> usize {
    match ports.iter().position(|p| *p == label) {
        Some(i) => i,
        None => {
            ports.push(label);
            ports.len() - 1
        }
    }
}

/// An IIP's JSON, cut to [`IIP_CHARS`] characters.
fn iip_text(data: &serde_json::Value) -> String {
    let text = data.to_string();
    if text.chars().count() <= IIP_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(IIP_CHARS - 1).collect();
    cut.push('…');
    cut
}

impl<'g> Outline<'g> {
    fn new(graph: &'g Graph) -> Self {
        let mut nodes: Vec<Node<'g>> = graph
            .processes
            .iter()
            .map(|(name, p)| Node {
                name,
                component: &p.component,
                ins: Vec::new(),
                outs: Vec::new(),
            })
            .collect();
        let (mut edges, mut left, mut right) = (Vec::new(), Vec::new(), Vec::new());
        let index = |name: &str| graph.processes.get_index_of(name);
        for connection in &graph.connections {
            let tgt = connection.tgt();
            let Some(t) = index(&tgt.process) else {
                continue;
            };
            let tp = slot_of(&mut nodes[t].ins, port_label(&tgt.port, tgt.index));
            match connection {
                Connection::Edge(edge) => {
                    if let Some(s) = index(&edge.src.process) {
                        let label = port_label(&edge.src.port, edge.src.index);
                        let sp = slot_of(&mut nodes[s].outs, label);
                        edges.push(((s, sp), (t, tp)));
                    }
                }
                Connection::Iip(iip) => left.push(Tag {
                    text: iip_text(&iip.data),
                    at: (t, tp),
                    iip: true,
                }),
            }
        }
        for (public, export) in &graph.inports {
            if let Some(n) = index(&export.process) {
                let at = (n, slot_of(&mut nodes[n].ins, export.port.clone()));
                left.push(Tag {
                    text: public.clone(),
                    at,
                    iip: false,
                });
            }
        }
        for (public, export) in &graph.outports {
            if let Some(n) = index(&export.process) {
                let at = (n, slot_of(&mut nodes[n].outs, export.port.clone()));
                right.push(Tag {
                    text: public.clone(),
                    at,
                    iip: false,
                });
            }
        }
        Outline {
            nodes,
            edges,
            left,
            right,
        }
    }
}

/// `base` with anything outside `[A-Za-z0-9_]` made `_`, suffixed until not in `taken`.
fn fresh_id(base: &str, taken: &mut HashSet<String>) -> String {
    let base: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut id = base.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}_{n}");
        n += 1;
    }
    taken.insert(id.clone());
    id
}

/// A DOT double-quoted string.
fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a record field, escaped for the record syntax and for a DOT quoted string.
fn record_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '{' | '}' | '|' | '<' | '>' | ' ' | '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

impl Graph {
    /// The graph as Graphviz DOT: record nodes with inports left and outports right, IIPs as
    /// notes, exported inports as `cds` and exported outports as `rarrow` shapes.
    pub fn to_dot(&self) -> String {
        let outline = Outline::new(self);
        let mut out = String::from("digraph ");
        let title = self.properties.get("name").and_then(|v| v.as_str());
        out.push_str(&dot_quote(title.unwrap_or("graph")));
        out.push_str(" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n");
        out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
        let mut taken: HashSet<String> = self.processes.keys().cloned().collect();
        let mut ports: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for node in &outline.nodes {
            let mut fields = HashSet::new();
            let column = |labels: &[String], fields: &mut HashSet<String>| {
                let ids: Vec<String> = labels.iter().map(|l| fresh_id(l, fields)).collect();
                let cells: Vec<String> = (labels.iter().zip(&ids))
                    .map(|(l, id)| format!("<{id}> {}", record_text(l)))
                    .collect();
                (ids, cells.join("|"))
            };
            let (ins, in_cells) = column(&node.ins, &mut fields);
            let (outs, out_cells) = column(&node.outs, &mut fields);
            let mut middle = record_text(node.name);
            if !node.component.is_empty() {
                middle = format!("{middle}\\n{}", record_text(node.component));
            }
            let label: Vec<String> = [in_cells, middle, out_cells]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(|s| format!("{{{s}}}"))
                .collect();
            let label = format!("{{{}}}", label.join("|"));
            let _ = writeln!(
                out,
                "  {} [shape=record, label=\"{label}\"];",
                dot_quote(node.name),
            );
            ports.push((ins, outs));
        }
        let port = |(n, p): Slot, out: bool| {
            let (ins, outs) = &ports[n];
            let (ids, compass) = if out { (outs, "e") } else { (ins, "w") };
            let id = ids.get(p).map(String::as_str).unwrap_or_default();
            format!(
                "{}:{}:{compass}",
                dot_quote(outline.nodes[n].name),
                dot_quote(id)
            )
        };
        for &(src, tgt) in &outline.edges {
            let _ = writeln!(out, "  {} -> {};", port(src, true), port(tgt, false));
        }
        for tag in &outline.left {
            let id = dot_quote(&fresh_id(if tag.iip { "iip" } else { "in" }, &mut taken));
            let shape = if tag.iip {
                "shape=note, fontsize=9, style=filled, fillcolor=\"#fff8dc\""
            } else {
                "shape=cds, style=filled, fillcolor=\"#dbeafe\""
            };
            let _ = writeln!(out, "  {id} [{shape}, label={}];", dot_quote(&tag.text));
            let style = if tag.iip { " [style=dashed]" } else { "" };
            let _ = writeln!(out, "  {id} -> {}{style};", port(tag.at, false));
        }
        for tag in &outline.right {
            let id = dot_quote(&fresh_id("out", &mut taken));
            let _ = writeln!(
                out,
                "  {id} [shape=rarrow, style=filled, fillcolor=\"#dcfce7\", label={}];",
                dot_quote(&tag.text)
            );
            let _ = writeln!(out, "  {} -> {id};", port(tag.at, true));
        }
        out.push_str("}\n");
        out
    }

    /// The graph as a self-contained SVG document, laid out left to right in layers.
    pub fn to_svg(&self) -> String {
        svg::render(&Outline::new(self), self)
    }
}
