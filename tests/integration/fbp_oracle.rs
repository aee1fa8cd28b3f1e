//! Differential test of the .fbp parser against npm `fbp` 1.8.0, the reference it transcribes.
//!
//! Thousands of graphs come from a seeded generator (plus `graphs/*.fbp`); one `node`
//! process parses them all with the real `fbp`, and every result must equal ours: the JSON
//! value and its key order, or the same syntax error at the same line and column, or the
//! same validation message. Expected values exist only at test time, never as files.
//!
//! The oracle lives in `$WASMFLO_FBP_ORACLE`, else `<repo>/target/fbp-oracle`; it is
//! installed there with npm when missing. Without node/npm the test fails under `CI=true`
//! and is skipped (with a notice) elsewhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wasmflo_host::graph::{self, Graph, ParseOptions};

use crate::support::{npm_oracle, repo};

/// Generated graphs compared per run.
const GENERATED: usize = 2400;
const SEED: u64 = 0x5eed_f00d_2024;

/// Prints one JSON line per listed file: `{"ok": graph}`, `{"syntax": {...}}` or
/// `{"invalid": message}`. The value under `ok` is `JSON.stringify`'s own text, kept as
/// a string so its key order reaches the test untouched.
const ORACLE_JS: &str = r#"
const fs = require('fs');
const path = require('path');
const fbp = require(path.join(process.argv[2], 'node_modules', 'fbp'));
const list = JSON.parse(fs.readFileSync(process.argv[3], 'utf-8'));
const out = [];
for (const item of list) {
  const src = fs.readFileSync(item.path, 'utf-8');
  const caseSensitive = item.caseSensitive;
  // Syntax first, without validation: fbp validates in the start rule's action, before
  // it checks for the end of input, so a syntax error after an inconsistent prefix
  // would otherwise surface as that prefix's validation error.
  try {
    fbp.parse(src, { caseSensitive, validateContents: false });
  } catch (e) {
    const { line, column } = e.location ? e.location.start : {};
    out.push(JSON.stringify({ syntax: { name: e.name, message: e.message, line, column } }));
    continue;
  }
  try {
    out.push(JSON.stringify({ ok: JSON.stringify(fbp.parse(src, { caseSensitive })) }));
  } catch (e) {
    out.push(JSON.stringify({ invalid: String(e.message) }));
  }
}
process.stdout.write(out.join('\n') + '\n');
"#;

#[test]
fn fbp_parser_matches_npm_fbp() {
    let Some(oracle) = oracle_dir() else {
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fbp-oracle");
    let graphs_dir = dir.join("graphs");
    if graphs_dir.exists() {
        std::fs::remove_dir_all(&graphs_dir).expect("clear old graphs");
    }
    std::fs::create_dir_all(&graphs_dir).expect("graphs dir");

    let mut cases = Vec::new();
    let mut rng = Rng(SEED);
    for i in 0..GENERATED {
        let case_sensitive = rng.below(4) == 0;
        let src = Generator::new(&mut rng).graph();
        let path = graphs_dir.join(format!("{i:04}.fbp"));
        std::fs::write(&path, &src).expect("write graph");
        cases.push(Case {
            path,
            src,
            case_sensitive,
        });
    }
    let mut examples = 0;
    for entry in std::fs::read_dir(repo().join("graphs")).expect("graphs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "fbp") {
            let src = std::fs::read_to_string(&path).expect("read example");
            examples += 1;
            cases.push(Case {
                path,
                src,
                case_sensitive: false,
            });
        }
    }
    assert!(examples >= 2, "graphs/*.fbp are included");

    let results = run_oracle(&oracle, &dir, &cases);
    assert_eq!(results.len(), cases.len(), "one oracle line per graph");

    let mut mismatches = Vec::new();
    let (mut parsed, mut syntax, mut invalid) = (0, 0, 0);
    for (case, expected) in cases.iter().zip(&results) {
        match compare(case, expected) {
            Ok(Outcome::Parsed) => parsed += 1,
            Ok(Outcome::Syntax) => syntax += 1,
            Ok(Outcome::Invalid) => invalid += 1,
            Err(why) => mismatches.push(format!(
                "{} (caseSensitive: {}): {why}\n--- source ---\n{}",
                case.path.display(),
                case.case_sensitive,
                case.src
            )),
        }
    }
    eprintln!(
        "fbp oracle: {} graphs compared ({parsed} parsed, {syntax} syntax errors, {invalid} invalid)",
        cases.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} graphs differ from npm fbp; first ones:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // The generator must exercise all three outcomes, valid graphs most of all.
    assert!(parsed > cases.len() / 2, "{parsed} parsed");
    assert!(
        syntax > 20 && invalid > 20,
        "{syntax} syntax, {invalid} invalid"
    );
}

struct Case {
    path: PathBuf,
    src: String,
    case_sensitive: bool,
}

enum Outcome {
    Parsed,
    Syntax,
    Invalid,
}

/// Compares our parse of one graph with the oracle's line.
fn compare(case: &Case, expected: &Value) -> Result<Outcome, String> {
    let opts = ParseOptions {
        case_sensitive: case.case_sensitive,
    };
    let ours = graph::parse_fbp(&case.src, &opts);
    if let Some(syntax) = expected.get("syntax") {
        let err = match ours {
            Ok(_) => return Err(format!("fbp: syntax error {syntax}; ours parsed")),
            Err(err) => err,
        };
        let theirs = (
            syntax["message"].as_str().unwrap_or_default(),
            syntax["line"].as_u64(),
            syntax["column"].as_u64(),
        );
        let mine = (
            err.fbp_message(),
            Some(u64::from(err.line)),
            Some(u64::from(err.column)),
        );
        if (theirs.0, theirs.1, theirs.2) != (mine.0.as_str(), mine.1, mine.2) {
            return Err(format!("fbp: {theirs:?}\nours: {mine:?}"));
        }
        return Ok(Outcome::Syntax);
    }
    let graph = ours.map_err(|e| format!("fbp: {expected}\nours: syntax error {e}"))?;
    if let Some(message) = expected.get("invalid").and_then(Value::as_str) {
        return match graph::validate(&graph) {
            // Ours appends the source line: `... (line 3)`.
            Err(err) if err.to_string().starts_with(message) => Ok(Outcome::Invalid),
            other => Err(format!("fbp: invalid: {message}\nours: {other:?}")),
        };
    }
    let text = expected["ok"]
        .as_str()
        .ok_or("oracle line without result")?;
    let theirs: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if let Err(err) = graph::validate(&graph) {
        return Err(format!("fbp: valid\nours: {err}"));
    }
    let json = graph.to_json();
    round_trip(&json, opts)?;
    let (theirs, json) = (as_doubles(theirs), as_doubles(json));
    if json != theirs {
        return Err(format!("fbp: {theirs}\nours: {json}"));
    }
    // Same values; the serialized text also checks key order.
    let (theirs_text, ours_text) = (theirs.to_string(), json.to_string());
    if theirs_text != ours_text {
        return Err(format!("key order: fbp: {theirs_text}\nours: {ours_text}"));
    }
    Ok(Outcome::Parsed)
}

/// Every number as the double JavaScript holds: `JSON.stringify` prints 2^64 - 1 as
/// `18446744073709552000`, which serde reads back as a different integer than ours.
fn as_doubles(value: Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(as_doubles).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, as_doubles(v))).collect())
        }
        other => other,
    }
}

/// `.fbp -> JSON -> .fbp -> JSON` gives the first JSON again.
fn round_trip(json: &Value, opts: ParseOptions) -> Result<(), String> {
    let from_json: Graph =
        graph::parse_json(&json.to_string()).map_err(|e| format!("to_json does not parse: {e}"))?;
    let text = from_json.to_fbp();
    let again = graph::parse_fbp(&text, &opts)
        .map_err(|e| format!("to_fbp gave text that does not parse ({e}):\n{text}"))?;
    let again = again.to_json();
    // Values: key order inside a process now survives, but `to_fbp` can still declare
    // an anonymous or metadata-first process at another place than the first parse
    // listed it (about 0.5% of generated graphs), which only reorders `processes`.
    if again != *json {
        return Err(format!(
            "round trip differs:\n{text}\nfirst: {json}\nagain: {again}"
        ));
    }
    Ok(())
}

/// Runs the oracle once over every case; one parsed JSON line per case.
fn run_oracle(oracle: &Path, dir: &Path, cases: &[Case]) -> Vec<Value> {
    let script = dir.join("oracle.js");
    std::fs::write(&script, ORACLE_JS).expect("write oracle.js");
    let list: Vec<Value> = cases
        .iter()
        .map(|c| serde_json::json!({"path": c.path, "caseSensitive": c.case_sensitive}))
        .collect();
    let list_path = dir.join("list.json");
    std::fs::write(&list_path, Value::Array(list).to_string()).expect("write list");
    let out = Command::new("node")
        .arg(&script)
        .arg(oracle)
        .arg(&list_path)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("oracle line is JSON"))
        .collect()
}

/// The oracle folder with `node_modules/fbp`, installing it if needed; `None` (after a
/// notice) when node or npm is missing outside CI.
fn oracle_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WASMFLO_FBP_ORACLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target").join("fbp-oracle"));
    npm_oracle(&dir, "fbp", "1.8.0")
}

/// splitmix64: a small deterministic generator, so the graphs are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn word(&mut self, first: &str, rest: &str, max_rest: usize) -> String {
        let first: Vec<char> = first.chars().collect();
        let rest: Vec<char> = rest.chars().collect();
        let mut out = String::new();
        out.push(*self.pick(&first));
        for _ in 0..self.below(max_rest + 1) {
            out.push(*self.pick(&rest));
        }
        out
    }
}

const ALPHA: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
const NODE_REST: &str = "abcdefgxyzABCXYZ0123456789_-";
const PORT_REST: &str = "abcdefgxyzABCXYZ0189_.";
const COMPONENT: &str = "abcxyzABCXYZ/-0129_";
const ANNOTATION_VALUE: &str = "abcxyzABCXYZ0129-_ .";

/// Writes one random .fbp graph: mostly valid, sometimes broken on purpose.
struct Generator<'r> {
    rng: &'r mut Rng,
    out: String,
    /// Named processes mentioned so far, and whether each has a component yet.
    nodes: Vec<(String, bool)>,
}

impl<'r> Generator<'r> {
    fn new(rng: &'r mut Rng) -> Self {
        Generator {
            rng,
            out: String::new(),
            nodes: Vec::new(),
        }
    }

    fn graph(mut self) -> String {
        let lines = 1 + self.rng.below(9);
        for _ in 0..lines {
            self.statement();
        }
        // Give every process a component, unless this graph is to be left invalid.
        if !self.rng.chance(3) {
            let missing: Vec<String> = self
                .nodes
                .iter()
                .filter(|(_, has)| !has)
                .map(|(n, _)| n.clone())
                .collect();
            for name in missing {
                let component = self.component();
                let _ = writeln!(self.out, "{name}({component})");
            }
        }
        if self.rng.chance(5) {
            self.mutate();
        }
        self.out
    }

    fn statement(&mut self) {
        if self.rng.chance(15) {
            self.out.push_str(&" ".repeat(self.rng.below(3)));
        }
        match self.rng.below(20) {
            0 => {
                let key = self
                    .rng
                    .pick(&["runtime", "name", "description", "icon", "my-key_2"]);
                let value = self.rng.word("abcXYZ019", ANNOTATION_VALUE, 12);
                let _ = write!(self.out, "# @{key} {value}");
            }
            1 => {
                let text = self.rng.pick(&[
                    "",
                    " a comment",
                    "comment -> with 'quotes' (and parens)",
                    " ünïcödé 😀",
                    "@notannotation",
                ]);
                let _ = write!(self.out, "#{text}");
            }
            2 | 3 => {
                let keyword = self.rng.pick(&["INPORT", "OUTPORT"]);
                let node = self.node_ref(false);
                let port = self.port_name();
                let public = self.port_name();
                let _ = write!(self.out, "{keyword}={node}.{port}:{public}");
            }
            4 => {
                let keyword = self.rng.pick(&["DEFAULT_INPORT", "DEFAULT_OUTPORT"]);
                let port = self.port_name();
                let _ = write!(self.out, "{keyword}={port}");
            }
            5 => {}
            _ => self.chain(),
        }
        self.line_end();
    }

    fn line_end(&mut self) {
        if self.rng.chance(10) {
            self.out.push_str(&" ".repeat(1 + self.rng.below(2)));
        }
        match self.rng.below(12) {
            0 => self.out.push_str(", "),
            1 => self.out.push_str(" # trailing comment\n"),
            2 => self.out.push_str("\r\n"),
            3 => self.out.push_str(",\n"),
            _ => self.out.push('\n'),
        }
    }

    /// `source -> (bridge ->)* destination`, every part optional where fbp allows.
    fn chain(&mut self) {
        if self.rng.chance(35) {
            let iip = self.iip();
            self.out.push_str(&iip);
        } else {
            let node = self.node_ref(true);
            self.out.push_str(&node);
            self.maybe_port(" ", "", 70);
        }
        for _ in 0..self.rng.below(3) {
            self.arrow();
            self.maybe_port("", " ", 80);
            let node = self.node_ref(true);
            self.out.push_str(&node);
            self.maybe_port(" ", "", 80);
        }
        self.arrow();
        self.maybe_port("", " ", 75);
        let node = self.node_ref(true);
        self.out.push_str(&node);
    }

    fn arrow(&mut self) {
        let arrow = *self.rng.pick(&[" -> ", " -> ", "->", "  ->  ", " ->"]);
        self.out.push_str(arrow);
        if arrow.ends_with('>') {
            self.out.push(' ');
        }
    }

    fn maybe_port(&mut self, before: &str, after: &str, percent: usize) {
        if self.rng.chance(percent) {
            let port = self.port();
            let _ = write!(self.out, "{before}{port}{after}");
        }
    }

    fn port_name(&mut self) -> String {
        if self.rng.chance(50) {
            return self
                .rng
                .pick(&["IN", "OUT", "in", "Out", "ERROR", "DATA", "x.y", "_p"])
                .to_string();
        }
        self.rng.word(ALPHA, PORT_REST, 6)
    }

    fn port(&mut self) -> String {
        let name = self.port_name();
        if self.rng.chance(20) {
            let index = self.rng.pick(&["0", "1", "2", "10", "007", "42"]);
            format!("{name}[{index}]")
        } else {
            name
        }
    }

    fn component(&mut self) -> String {
        if self.rng.chance(50) {
            return self
                .rng
                .pick(&[
                    "core/Repeat",
                    "core/Drop",
                    "Output",
                    "my-lib/do_it2",
                    "a/b/c",
                ])
                .to_string();
        }
        self.rng.word("abcXYZ/-09_", COMPONENT, 10)
    }

    fn metadata(&mut self) -> String {
        let items = 1 + self.rng.below(3);
        let mut parts = Vec::new();
        for _ in 0..items {
            let item = match self.rng.below(8) {
                0 => format!(
                    "x={}",
                    self.rng.pick(&["1", "100", "12abc", "abc", "", "0_5"])
                ),
                1 => format!("y={}", self.rng.pick(&["2", "3", "007", "9e2"])),
                2 => "routes".to_string(),
                3 => "a=b=c".to_string(),
                4 => String::new(),
                5 => "label=hello/world".to_string(),
                _ => format!(
                    "{}={}",
                    self.rng.word("kmz", "kmz_0", 3),
                    self.rng.below(100)
                ),
            };
            parts.push(item);
        }
        parts.join(",")
    }

    /// A process reference: a new named process, an old one (bare or redeclared), or an
    /// anonymous `(Component)`.
    fn node_ref(&mut self, anonymous_ok: bool) -> String {
        let roll = self.rng.below(100);
        if anonymous_ok && roll < 10 {
            let component = self.component();
            let meta = self.meta_suffix();
            return format!("({component}{meta})");
        }
        if roll < 55 && !self.nodes.is_empty() {
            let i = self.rng.below(self.nodes.len());
            let name = self.nodes[i].0.clone();
            if self.rng.chance(15) {
                let component = self.component();
                let meta = self.meta_suffix();
                self.nodes[i].1 = true;
                return format!("{name}({component}{meta})");
            }
            return name;
        }
        let name = self.rng.word(ALPHA, NODE_REST, 7);
        let declared = if self.rng.chance(8) {
            // Metadata before the component: `P(:x=1)`, the component comes later.
            let meta = self.metadata();
            format!("{name}(:{meta})")
        } else {
            let component = self.component();
            let meta = self.meta_suffix();
            format!("{name}({component}{meta})")
        };
        let has = !declared.contains("(:");
        match self.nodes.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 |= has,
            None => self.nodes.push((name, has)),
        }
        declared
    }

    fn meta_suffix(&mut self) -> String {
        if self.rng.chance(20) {
            format!(":{}", self.metadata())
        } else {
            String::new()
        }
    }

    /// An IIP: a quoted string (with escapes) or a JSON literal of any kind.
    fn iip(&mut self) -> String {
        if self.rng.chance(55) {
            let mut text = String::new();
            for _ in 0..self.rng.below(8) {
                let piece = self.rng.pick(&[
                    "a", "Z", "5", " ", "\\'", "\\", "\\\\", "\"", "#", "->", ",", "é", "😀", "\t",
                    "\n", "{", "[1]", "22.0", "null",
                ]);
                text.push_str(piece);
            }
            return format!("'{text}'");
        }
        self.json_value(0)
    }

    fn json_value(&mut self, depth: usize) -> String {
        let kinds = if depth >= 2 { 3 } else { 5 };
        match self.rng.below(kinds) {
            0 => self
                .rng
                .pick(&[
                    "0",
                    "-0",
                    "42",
                    "-17",
                    "3.14",
                    "1e5",
                    "1E-3",
                    "2.5e+10",
                    "0.1",
                    "-0.0",
                    "12345678901234567890",
                    "1e400",
                    "1.5e300",
                    "123456789.125",
                    "5e-7",
                    "1e21",
                    "100",
                ])
                .to_string(),
            1 => self.rng.pick(&["true", "false", "null"]).to_string(),
            2 => self.json_string(),
            3 => {
                let items: Vec<String> = (0..self.rng.below(4))
                    .map(|_| self.json_value(depth + 1))
                    .collect();
                let sep = *self.rng.pick(&[",", ", ", " , ", ",\n"]);
                format!("[{}]", items.join(sep))
            }
            _ => {
                let members: Vec<String> = (0..self.rng.below(4))
                    .map(|_| {
                        let key = self
                            .rng
                            .pick(&[
                                "\"a\"",
                                "\"b\"",
                                "\"1\"",
                                "\"0\"",
                                "\"10\"",
                                "\"01\"",
                                "\"-1\"",
                                "\"4294967295\"",
                                "\"4294967294\"",
                                "\"\"",
                            ])
                            .to_string();
                        format!("{key}: {}", self.json_value(depth + 1))
                    })
                    .collect();
                let ws = *self.rng.pick(&["", " ", "\t", "\n "]);
                format!("{{{ws}{}{ws}}}", members.join(","))
            }
        }
    }

    fn json_string(&mut self) -> String {
        let mut text = String::from("\"");
        for _ in 0..self.rng.below(6) {
            let piece = self.rng.pick(&[
                "a",
                " ",
                "\\\"",
                "\\\\",
                "\\/",
                "\\b",
                "\\f",
                "\\n",
                "\\r",
                "\\t",
                "\\u00e9",
                "\\u0041",
                "\\uD83D\\uDE00",
                "'",
                "é",
                "😀",
                "#",
            ]);
            text.push_str(piece);
        }
        text.push('"');
        text
    }

    /// Breaks the graph: a stray character, a lost one, or an edge to an undeclared process.
    fn mutate(&mut self) {
        let chars: Vec<char> = self.out.chars().collect();
        let at = self.rng.below(chars.len() + 1);
        let mut broken: String = chars[..at].iter().collect();
        match self.rng.below(3) {
            0 => broken.push(
                *self
                    .rng
                    .pick(&['-', '>', '(', ')', '[', ':', '=', '\'', '{', '\t', '😀']),
            ),
            1 => {}
            _ => {
                broken.extend(&chars[at..]);
                broken.push_str("\nundeclared OUT -> IN missing\n");
                self.out = broken;
                return;
            }
        }
        let skip = usize::from(self.rng.chance(50));
        broken.extend(chars.iter().skip(at + skip));
        self.out = broken;
    }
}
