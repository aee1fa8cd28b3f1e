//! Draws a simulated run as an SVG: load and instances over time above, backlog below.
//!
//! The load is drawn as the instances it keeps busy (`λ·P/k`), on the same axis as the
//! instances, so the gap between the two lines is the headroom paid for.

use std::fmt::Write as _;

use super::config::RoleConfig;
use super::simulate::TracePoint;

const WIDTH: f64 = 1000.0;
const PANEL: f64 = 220.0;
const MARGIN: f64 = 50.0;

/// An SVG picture of `trace` for `role`, titled `title`.
pub fn svg(title: &str, role: &RoleConfig, trace: &[TracePoint]) -> String {
    let end = trace.last().map_or(1.0, |p| p.at).max(1.0);
    let per_instance = role.processing.as_secs_f64() / f64::from(role.concurrency.max(1));
    let top = trace
        .iter()
        .map(|p| (p.arrival_rate * per_instance).max(f64::from(p.instances)))
        .fold(f64::from(role.maximum), f64::max)
        * 1.05;
    let most_backlog = trace.iter().map(|p| p.backlog).max().unwrap_or(0).max(1) as f64;
    let x = |t: f64| MARGIN + (WIDTH - 2.0 * MARGIN) * t / end;
    let y1 = |v: f64| MARGIN + PANEL * (1.0 - v / top);
    let y2 = |v: f64| 2.0 * MARGIN + PANEL + PANEL * (1.0 - v / most_backlog);
    let line = |points: &mut dyn Iterator<Item = (f64, f64)>| {
        let mut d = String::new();
        for (i, (px, py)) in points.enumerate() {
            let _ = write!(d, "{}{px:.1},{py:.1} ", if i == 0 { "M" } else { "L" });
        }
        d
    };
    let load = line(
        &mut trace
            .iter()
            .map(|p| (x(p.at), y1(p.arrival_rate * per_instance))),
    );
    let instances = line(&mut trace.iter().map(|p| (x(p.at), y1(f64::from(p.instances)))));
    let backlog = line(&mut trace.iter().map(|p| (x(p.at), y2(p.backlog as f64))));
    let height = 3.0 * MARGIN + 2.0 * PANEL;
    let max_y = y1(f64::from(role.maximum));
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="38"><tspan fill="#999">load (busy instances)</tspan>  <tspan fill="#1f5fbf">instances</tspan>  (max {}, dashed)</text>"##,
        role.maximum
    );
    let _ = writeln!(
        out,
        r##"<line x1="{MARGIN}" x2="{}" y1="{max_y:.1}" y2="{max_y:.1}" stroke="#888" stroke-dasharray="4 4"/>"##,
        WIDTH - MARGIN
    );
    let _ = writeln!(
        out,
        r##"<path d="{load}" fill="none" stroke="#999" stroke-width="1"/>"##
    );
    let _ = writeln!(
        out,
        r##"<path d="{instances}" fill="none" stroke="#1f5fbf" stroke-width="1.2"/>"##
    );
    let b_top = 2.0 * MARGIN + PANEL;
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="{:.1}"><tspan fill="#c0392b">backlog</tspan> (waiting + in flight, up to {most_backlog})</text>"##,
        b_top - 8.0
    );
    let _ = writeln!(
        out,
        r##"<path d="{backlog}" fill="none" stroke="#c0392b" stroke-width="1"/>"##
    );
    let hours = (end / 3600.0).ceil().max(1.0) as u32;
    let step = (hours / 12).max(1);
    for h in (0..=hours).step_by(step as usize) {
        let px = x(f64::from(h) * 3600.0);
        let _ = writeln!(
            out,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{h} h</text>"#,
            height - 15.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_three_lines() {
        let role = RoleConfig::with_defaults("r");
        let trace: Vec<TracePoint> = (1..=10)
            .map(|i| TracePoint {
                at: f64::from(i) * 60.0,
                arrival_rate: 0.1 * f64::from(i),
                backlog: u64::from(i as u32),
                instances: i as u32 % 5,
            })
            .collect();
        let svg = svg("r <sine>", &role, &trace);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<path").count(), 3);
        assert!(svg.contains("r &lt;sine&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
