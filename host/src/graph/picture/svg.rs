//! The SVG picture: a layered left-to-right layout and its drawing.

use std::fmt::Write;

use super::{Graph, Node, Outline, Slot, Tag};

/// Lays the outline out and draws it.
pub(super) fn render(outline: &Outline, graph: &Graph) -> String {
    Layout::new(outline).render(graph)
}

// Sizes in SVG user units. Text widths assume a monospace font (0.6 em per character).
const MARGIN: f64 = 20.0;
const TITLE_H: f64 = 28.0;
const HEADER_H: f64 = 40.0;
const ROW_H: f64 = 18.0;
const PAD: f64 = 10.0;
const GAP_X: f64 = 70.0;
const GAP_Y: f64 = 28.0;
const STUB: f64 = 18.0;
const TAG_GAP: f64 = 6.0;
const TAG_FONT: f64 = 10.0;
const PORT_FONT: f64 = 11.0;
const LOOP: f64 = 40.0;

fn text_width(text: &str, font: f64) -> f64 {
    text.chars().count() as f64 * font * 0.6
}

fn tag_width(tag: &Tag) -> f64 {
    text_width(&tag.text, TAG_FONT) + 12.0
}

/// XML text and attribute escaping; characters XML 1.0 forbids become U+FFFD.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Layer of each process: longest path from the sources once DFS back edges are dropped.
/// Returns the layers and which edges were dropped (self loops included).
fn layering(n: usize, edges: &[(usize, usize)]) -> (Vec<usize>, Vec<bool>) {
    let mut succ: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (i, &(u, v)) in edges.iter().enumerate() {
        succ[u].push((v, i));
    }
    let mut dropped = vec![false; edges.len()];
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        state[root] = 1;
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (u, next) = *top;
            match succ[u].get(next) {
                Some(&(v, i)) => {
                    top.1 += 1;
                    match state[v] {
                        0 => {
                            state[v] = 1;
                            stack.push((v, 0));
                        }
                        1 => dropped[i] = true,
                        _ => {}
                    }
                }
                None => {
                    state[u] = 2;
                    stack.pop();
                }
            }
        }
    }
    let mut indegree = vec![0usize; n];
    for (i, &(_, v)) in edges.iter().enumerate() {
        if !dropped[i] {
            indegree[v] += 1;
        }
    }
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).rev().filter(|&v| indegree[v] == 0).collect();
    while let Some(u) = ready.pop() {
        for &(v, i) in &succ[u] {
            if dropped[i] {
                continue;
            }
            layer[v] = layer[v].max(layer[u] + 1);
            indegree[v] -= 1;
            if indegree[v] == 0 {
                ready.push(v);
            }
        }
    }
    (layer, dropped)
}

/// Orders each layer: declaration order, then barycenter sweeps down and up, twice.
fn ordering(layer: &[usize], edges: &[(usize, usize)], dropped: &[bool]) -> Vec<Vec<usize>> {
    let count = layer.iter().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (v, &l) in layer.iter().enumerate() {
        layers[l].push(v);
    }
    let kept: Vec<(usize, usize)> = (edges.iter().zip(dropped))
        .filter(|&(&(u, v), &d)| !d && u != v)
        .map(|(&e, _)| e)
        .collect();
    let mut pos = vec![0.0f64; layer.len()];
    let place = |layers: &[Vec<usize>], pos: &mut [f64]| {
        for row in layers {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    place(&layers, &mut pos);
    for _ in 0..2 {
        for downward in [true, false] {
            let order: Vec<usize> = if downward {
                (1..count).collect()
            } else {
                (0..count.saturating_sub(1)).rev().collect()
            };
            for l in order {
                let key = |v: usize| {
                    let near: Vec<f64> = kept
                        .iter()
                        .filter_map(|&(a, b)| match downward {
                            true if b == v && layer[a] < l => Some(pos[a]),
                            false if a == v && layer[b] > l => Some(pos[b]),
                            _ => None,
                        })
                        .collect();
                    match near.len() {
                        0 => pos[v],
                        k => near.iter().sum::<f64>() / k as f64,
                    }
                };
                let mut keyed: Vec<(f64, usize)> = layers[l].iter().map(|&v| (key(v), v)).collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
                layers[l] = keyed.into_iter().map(|(_, v)| v).collect();
                place(&layers, &mut pos);
            }
        }
    }
    layers
}

/// A box's place: left x, top y, width, height.
#[derive(Clone, Copy, Default)]
struct Place {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

struct Layout<'o, 'g> {
    outline: &'o Outline<'g>,
    places: Vec<Place>,
    dropped: Vec<bool>,
    width: f64,
    height: f64,
    /// Where edges that go back (cycles) run under the boxes.
    floor: f64,
}

impl<'o, 'g> Layout<'o, 'g> {
    fn new(outline: &'o Outline<'g>) -> Self {
        let n = outline.nodes.len();
        let pairs: Vec<(usize, usize)> = outline.edges.iter().map(|&(s, t)| (s.0, t.0)).collect();
        let (layer, dropped) = layering(n, &pairs);
        let layers = ordering(&layer, &pairs, &dropped);
        let mut places: Vec<Place> = outline.nodes.iter().map(Self::size).collect();
        // Room for tags: the widest stack of tags on any one port of the node.
        let extent = |tags: &[Tag], v: usize| {
            let mut per_port: Vec<(usize, f64)> = Vec::new();
            for tag in tags.iter().filter(|t| t.at.0 == v) {
                match per_port.iter_mut().find(|(p, _)| *p == tag.at.1) {
                    Some((_, w)) => *w += tag_width(tag) + TAG_GAP,
                    None => per_port.push((tag.at.1, tag_width(tag) + STUB)),
                }
            }
            per_port.iter().map(|&(_, w)| w).fold(0.0, f64::max)
        };
        let column = |row: &[usize], places: &[Place], tags: &[Tag], w: bool| {
            row.iter()
                .map(|&v| if w { places[v].w } else { extent(tags, v) })
                .fold(0.0, f64::max)
        };
        let back = outline
            .edges
            .iter()
            .zip(&dropped)
            .any(|(&(s, t), &d)| d || layer[t.0] <= layer[s.0]);
        // Edges that go back loop out by LOOP on either side of their ports.
        let loops = if back { LOOP } else { 0.0 };
        let mut x = MARGIN + loops;
        let mut tallest: f64 = 0.0;
        for row in &layers {
            x += column(row, &places, &outline.left, false);
            for &v in row {
                places[v].x = x;
            }
            x += column(row, &places, &outline.left, true);
            x += column(row, &places, &outline.right, false) + GAP_X;
            let h: f64 = row.iter().map(|&v| places[v].h + GAP_Y).sum::<f64>() - GAP_Y;
            tallest = tallest.max(h);
        }
        for row in &layers {
            let h: f64 = row.iter().map(|&v| places[v].h + GAP_Y).sum::<f64>() - GAP_Y;
            let mut y = MARGIN + TITLE_H + (tallest - h) / 2.0;
            for &v in row {
                places[v].y = y;
                y += places[v].h + GAP_Y;
            }
        }
        let floor = MARGIN + TITLE_H + tallest + GAP_Y;
        let height = floor
            + if back {
                GAP_Y + MARGIN
            } else {
                MARGIN - GAP_Y / 2.0
            };
        let width = (x - GAP_X + MARGIN + loops).max(MARGIN * 2.0 + 120.0);
        Layout {
            outline,
            places,
            dropped,
            width,
            height,
            floor,
        }
    }

    fn size(node: &Node) -> Place {
        let widest =
            |ports: &[String]| (ports.iter().map(|p| text_width(p, PORT_FONT))).fold(0.0, f64::max);
        let ports = widest(&node.ins) + widest(&node.outs) + 3.0 * PAD;
        let title = text_width(node.name, 13.0).max(text_width(node.component, 11.0)) + 2.0 * PAD;
        let rows = node.ins.len().max(node.outs.len()) as f64;
        Place {
            w: ports.max(title).max(100.0).ceil(),
            h: HEADER_H + rows * ROW_H + 6.0,
            ..Place::default()
        }
    }

    fn port(&self, (v, p): Slot, out: bool) -> (f64, f64) {
        let place = self.places[v];
        let y = place.y + HEADER_H + (p as f64 + 0.5) * ROW_H;
        (if out { place.x + place.w } else { place.x }, y)
    }

    fn render(&self, graph: &Graph) -> String {
        let (w, h) = (self.width, self.height);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
             viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"DejaVu Sans Mono, monospace\">"
        );
        out.push_str(
            "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
             markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">\
             <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#475569\"/></marker></defs>\n",
        );
        let _ = writeln!(
            out,
            "<rect width=\"{w:.0}\" height=\"{h:.0}\" fill=\"#ffffff\"/>"
        );
        if let Some(name) = graph.properties.get("name").and_then(|v| v.as_str()) {
            let _ = writeln!(
                out,
                "<text x=\"{MARGIN}\" y=\"{:.0}\" font-size=\"14\" font-weight=\"bold\" \
                 fill=\"#0f172a\">{}</text>",
                MARGIN + 12.0,
                xml(name)
            );
        }
        for (i, &(src, tgt)) in self.outline.edges.iter().enumerate() {
            let ((x1, y1), (x2, y2)) = (self.port(src, true), self.port(tgt, false));
            let d = if x2 > x1 && !self.dropped.get(i).copied().unwrap_or(false) {
                let bend = ((x2 - x1) / 2.0).max(30.0);
                format!(
                    "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {:.1},{y2:.1}",
                    x1 + bend,
                    x2 - bend,
                    x2 - 2.0
                )
            } else {
                let (f, l) = (self.floor, LOOP);
                format!(
                    "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{f:.1} {x1:.1},{f:.1} \
                     L{x2:.1},{f:.1} C{:.1},{f:.1} {:.1},{y2:.1} {:.1},{y2:.1}",
                    x1 + l,
                    x1 + l,
                    x2 - l,
                    x2 - l,
                    x2 - 2.0
                )
            };
            let _ = writeln!(
                out,
                "<path d=\"{d}\" fill=\"none\" stroke=\"#475569\" stroke-width=\"1.5\" \
                 marker-end=\"url(#arrow)\"/>"
            );
        }
        for (v, node) in self.outline.nodes.iter().enumerate() {
            self.render_node(&mut out, v, node);
        }
        self.render_tags(&mut out, &self.outline.left, false);
        self.render_tags(&mut out, &self.outline.right, true);
        out.push_str("</svg>\n");
        out
    }

    fn render_node(&self, out: &mut String, v: usize, node: &Node) {
        let Place { x, y, w, h } = self.places[v];
        let cx = x + w / 2.0;
        let _ = writeln!(
            out,
            "<g><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" \
             fill=\"#f8fafc\" stroke=\"#334155\" stroke-width=\"1.2\"/>\n\
             <line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#cbd5e1\"/>\n\
             <text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\" \
             text-anchor=\"middle\" fill=\"#0f172a\">{}</text>",
            y + HEADER_H - 2.0,
            x + w,
            y + HEADER_H - 2.0,
            y + 17.0,
            xml(node.name),
        );
        if !node.component.is_empty() {
            let _ = writeln!(
                out,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" \
                 fill=\"#64748b\">{}</text>",
                y + 32.0,
                xml(node.component)
            );
        }
        for (side, ports) in [(false, &node.ins), (true, &node.outs)] {
            for (p, label) in ports.iter().enumerate() {
                let (px, py) = self.port((v, p), side);
                let (tx, anchor) = if side {
                    (px - 8.0, "end")
                } else {
                    (px + 8.0, "start")
                };
                let _ = writeln!(
                    out,
                    "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"#334155\"/>\
                     <text x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"{PORT_FONT}\" \
                     text-anchor=\"{anchor}\" fill=\"#1e293b\">{}</text>",
                    py + 4.0,
                    xml(label)
                );
            }
        }
        out.push_str("</g>\n");
    }

    /// Draws IIPs and exported ports beside their ports, stacked away from the box.
    fn render_tags(&self, out: &mut String, tags: &[Tag], right: bool) {
        let mut used: Vec<(Slot, f64)> = Vec::new();
        for tag in tags {
            let (px, py) = self.port(tag.at, right);
            let k = match used.iter().position(|(at, _)| *at == tag.at) {
                Some(k) => k,
                None => {
                    let (x2, x1) = if right {
                        (px + STUB, px)
                    } else {
                        (px - 2.0, px - STUB)
                    };
                    let _ = writeln!(
                        out,
                        "<path d=\"M{x1:.1},{py:.1} L{x2:.1},{py:.1}\" stroke=\"#94a3b8\" \
                         stroke-dasharray=\"3,2\" marker-end=\"url(#arrow)\"/>"
                    );
                    used.push((tag.at, STUB));
                    used.len() - 1
                }
            };
            let tw = tag_width(tag);
            let offset = used[k].1;
            used[k].1 += tw + TAG_GAP;
            let x = if right { px + offset } else { px - offset - tw };
            let (fill, stroke, rx) = match (tag.iip, right) {
                (true, _) => ("#fef9c3", "#ca8a04", 2),
                (false, false) => ("#dbeafe", "#2563eb", 8),
                (false, true) => ("#dcfce7", "#16a34a", 8),
            };
            let _ = writeln!(
                out,
                "<g><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{tw:.1}\" height=\"16\" rx=\"{rx}\" \
                 fill=\"{fill}\" stroke=\"{stroke}\"/><text x=\"{:.1}\" y=\"{:.1}\" \
                 font-size=\"{TAG_FONT}\" fill=\"#1e293b\">{}</text></g>",
                py - 8.0,
                x + 6.0,
                py + 3.5,
                xml(&tag.text)
            );
        }
    }
}
