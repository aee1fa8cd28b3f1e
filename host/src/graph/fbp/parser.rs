//! The grammar rules of `fbp.peg` and the PEG.js machinery they run on.

use super::ParseError;
use super::build::{Builder, Component, Conn, Piece, Port};
use crate::graph::model::{Graph, ParseOptions};

/// Terminal descriptions, spelled as PEG.js reports them (they are also the sort keys).
pub(super) mod desc {
    pub const INPORT: &str = "\"INPORT=\"";
    pub const OUTPORT: &str = "\"OUTPORT=\"";
    pub const DEFAULT_INPORT: &str = "\"DEFAULT_INPORT=\"";
    pub const DEFAULT_OUTPORT: &str = "\"DEFAULT_OUTPORT=\"";
    pub const DOT: &str = "\".\"";
    pub const COLON: &str = "\":\"";
    pub const COMMA: &str = "\",\"";
    pub const NEWLINE: &str = r"[\n\r\u2028\u2029]";
    pub const ANYCHAR: &str = r"[^\n\r\u2028\u2029]";
    pub const HASH: &str = "\"#\"";
    pub const ARROW: &str = "\"->\"";
    pub const QUOTE: &str = "\"'\"";
    pub const NAME_START: &str = "[a-zA-Z_]";
    pub const NODE_NAME: &str = r"[a-zA-Z0-9_\-]";
    pub const LPAREN: &str = "\"(\"";
    pub const RPAREN: &str = "\")\"";
    pub const COMPONENT: &str = r"[a-zA-Z/\-0-9_]";
    pub const META: &str = "[a-zA-Z/=_,0-9]";
    pub const AT: &str = "\"@\"";
    pub const ANNOTATION_KEY: &str = r"[a-zA-Z0-9\-_]";
    pub const ANNOTATION_VALUE: &str = r"[a-zA-Z0-9\-_ \.]";
    pub const PORT_NAME: &str = "[a-zA-Z.0-9_]";
    pub const LBRACKET: &str = "\"[\"";
    pub const RBRACKET: &str = "\"]\"";
    pub const DIGIT: &str = "[0-9]";
    pub const BACKSLASH_CLASS: &str = r"[\\]";
    pub const QUOTE_CLASS: &str = "[']";
    pub const NOT_QUOTE: &str = "[^']";
    pub const SPACE: &str = "\" \"";
}

/// Deepest nesting of JSON arrays and objects in an IIP; deeper input is an error
/// rather than a stack overflow.
pub(super) const MAX_JSON_DEPTH: usize = 256;

/// PEG.js-style parser state plus the graph being built.
pub(super) struct Parser {
    pub(super) chars: Vec<char>,
    /// Line of every char position (and of the end of input).
    lines: Vec<u32>,
    pub(super) pos: usize,
    max_fail_pos: usize,
    expected: Vec<&'static str>,
    pub(super) silent: u32,
    pub(super) depth: usize,
    /// An error fbp does not have (limits of this implementation), and whether it is
    /// reported over a syntax error.
    fatal: Option<(ParseError, bool)>,
    b: Builder,
}

impl Parser {
    pub(super) fn new(src: &str, opts: ParseOptions) -> Parser {
        let chars: Vec<char> = src.chars().collect();
        let mut lines = Vec::with_capacity(chars.len() + 1);
        let (mut line, mut seen_cr) = (1u32, false);
        for &c in &chars {
            lines.push(line);
            match c {
                '\n' => {
                    if !seen_cr {
                        line = line.saturating_add(1);
                    }
                    seen_cr = false;
                }
                '\r' | '\u{2028}' | '\u{2029}' => {
                    line = line.saturating_add(1);
                    seen_cr = true;
                }
                _ => seen_cr = false,
            }
        }
        lines.push(line);
        Parser {
            chars,
            lines,
            pos: 0,
            max_fail_pos: 0,
            expected: Vec::new(),
            silent: 0,
            depth: 0,
            fatal: None,
            b: Builder::new(opts),
        }
    }

    /// `start = (line)*`, then PEG.js's "consumed everything?" check.
    pub(super) fn run(mut self) -> Result<Graph, ParseError> {
        while self.line() {}
        match self.fatal.take() {
            Some((fatal, true)) => Err(fatal),
            _ if self.pos < self.chars.len() => {
                self.fail("end of input");
                Err(self.syntax_error())
            }
            Some((fatal, false)) => Err(fatal),
            None => Ok(self.b.finish()),
        }
    }

    // ---- PEG.js machinery ----

    pub(super) fn fail(&mut self, description: &'static str) {
        if self.silent > 0 || self.pos < self.max_fail_pos {
            return;
        }
        if self.pos > self.max_fail_pos {
            self.max_fail_pos = self.pos;
            self.expected.clear();
        }
        self.expected.push(description);
    }

    /// Runs `rule`, rewinding the position when it fails.
    pub(super) fn attempt<T>(&mut self, rule: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.pos;
        let result = rule(self);
        if result.is_none() {
            self.pos = start;
        }
        result
    }

    pub(super) fn lit(&mut self, literal: &str, description: &'static str) -> Option<()> {
        let mut at = self.pos;
        for expected in literal.chars() {
            if self.chars.get(at) != Some(&expected) {
                self.fail(description);
                return None;
            }
            at += 1;
        }
        self.pos = at;
        Some(())
    }

    pub(super) fn class(
        &mut self,
        pred: fn(char) -> bool,
        description: &'static str,
    ) -> Option<char> {
        match self.chars.get(self.pos) {
            Some(&c) if pred(c) => {
                self.pos += 1;
                Some(c)
            }
            _ => {
                self.fail(description);
                None
            }
        }
    }

    pub(super) fn class_star(
        &mut self,
        pred: fn(char) -> bool,
        description: &'static str,
    ) -> String {
        let mut out = String::new();
        while let Some(c) = self.class(pred, description) {
            out.push(c);
        }
        out
    }

    pub(super) fn class_plus(
        &mut self,
        pred: fn(char) -> bool,
        description: &'static str,
    ) -> Option<String> {
        let first = self.class(pred, description)?;
        let mut out = String::from(first);
        out.push_str(&self.class_star(pred, description));
        Some(out)
    }

    fn line_at(&self, pos: usize) -> u32 {
        self.lines
            .get(pos)
            .or(self.lines.last())
            .copied()
            .unwrap_or(1)
    }

    /// Line and column (UTF-16 units) of a position, computed like `peg$computePosDetails`.
    pub(super) fn location(&self, pos: usize) -> (u32, u32) {
        let (mut line, mut column, mut seen_cr) = (1u32, 1u32, false);
        for &c in self.chars.iter().take(pos) {
            match c {
                '\n' => {
                    if !seen_cr {
                        line = line.saturating_add(1);
                    }
                    column = 1;
                    seen_cr = false;
                }
                '\r' | '\u{2028}' | '\u{2029}' => {
                    line = line.saturating_add(1);
                    column = 1;
                    seen_cr = true;
                }
                _ => {
                    column = column.saturating_add(c.len_utf16() as u32);
                    seen_cr = false;
                }
            }
        }
        (line, column)
    }

    /// Records an error fbp would not raise; the first one wins. An `overriding` one is
    /// reported even when the input also has a syntax error.
    pub(super) fn set_fatal(
        &mut self,
        pos: usize,
        expected: String,
        found: String,
        overriding: bool,
    ) {
        if self.fatal.is_none() {
            let (line, column) = self.location(pos);
            self.fatal = Some((
                ParseError {
                    line,
                    column,
                    expected,
                    found,
                },
                overriding,
            ));
        }
    }

    fn syntax_error(&self) -> ParseError {
        let mut expected = self.expected.clone();
        expected.sort_unstable();
        expected.dedup();
        let expected = match expected.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "end of input".to_string(),
        };
        let found = match self.chars.get(self.max_fail_pos) {
            Some(&c) => format!("\"{}\"", peg_escape(c)),
            None => "end of input".to_string(),
        };
        let (line, column) = self.location(self.max_fail_pos);
        ParseError {
            line,
            column,
            expected,
            found,
        }
    }

    // ---- grammar: lines ----

    /// `line`: one statement, comment, annotation or blank line.
    fn line(&mut self) -> bool {
        for (literal, description, is_out) in [
            ("INPORT=", desc::INPORT, false),
            ("OUTPORT=", desc::OUTPORT, true),
        ] {
            let export = self.attempt(|p| {
                p.ws();
                let line = p.line_at(p.pos);
                p.lit(literal, description)?;
                let node = p.node()?;
                p.lit(".", desc::DOT)?;
                let port = p.port_name()?;
                p.lit(":", desc::COLON)?;
                let public = p.port_name()?;
                p.ws();
                p.line_terminator();
                Some((node, port, public, line))
            });
            if let Some((node, port, public, line)) = export {
                self.b.register_export(is_out, node, port, public, line);
                return true;
            }
        }
        for (literal, description, is_out) in [
            ("DEFAULT_INPORT=", desc::DEFAULT_INPORT, false),
            ("DEFAULT_OUTPORT=", desc::DEFAULT_OUTPORT, true),
        ] {
            let name = self.attempt(|p| {
                p.ws();
                p.lit(literal, description)?;
                let name = p.port_name()?;
                p.ws();
                p.line_terminator();
                Some(name)
            });
            if let Some(name) = name {
                self.b.set_default_port(is_out, name);
                return true;
            }
        }
        let annotation = self.attempt(|p| {
            let annotation = p.annotation()?;
            p.newline()?;
            Some(annotation)
        });
        if let Some((key, value)) = annotation {
            self.b.register_annotation(key, value);
            return true;
        }
        let comment = self.attempt(|p| {
            p.comment()?;
            p.newline();
            Some(())
        });
        if comment.is_some() {
            return true;
        }
        let blank = self.attempt(|p| {
            p.ws();
            p.newline()
        });
        if blank.is_some() {
            return true;
        }
        let connection = self.attempt(|p| {
            p.ws();
            let connection = p.connection()?;
            p.ws();
            p.line_terminator();
            Some(connection)
        });
        match connection {
            // fbp's registerEdges only keeps array results.
            Some(Conn::Many(pieces)) => {
                self.b.register_pieces(pieces);
                true
            }
            Some(Conn::One(_)) => true,
            None => false,
        }
    }

    /// `LineTerminator = _ ","? comment? newline?` (always matches).
    fn line_terminator(&mut self) {
        self.ws();
        let _ = self.lit(",", desc::COMMA);
        let _ = self.comment();
        let _ = self.newline();
    }

    fn newline(&mut self) -> Option<char> {
        self.class(
            |c| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'),
            desc::NEWLINE,
        )
    }

    /// `comment = _ "#" (anychar)*`
    fn comment(&mut self) -> Option<()> {
        self.attempt(|p| {
            p.ws();
            p.lit("#", desc::HASH)?;
            p.class_star(
                |c| !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'),
                desc::ANYCHAR,
            );
            Some(())
        })
    }

    /// `annotation = "#" __ "@" key __ value`
    fn annotation(&mut self) -> Option<(String, String)> {
        self.attempt(|p| {
            p.lit("#", desc::HASH)?;
            p.ws1()?;
            p.lit("@", desc::AT)?;
            let key = p.class_plus(
                |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'),
                desc::ANNOTATION_KEY,
            )?;
            p.ws1()?;
            let value = p.class_plus(
                |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' ' | '.'),
                desc::ANNOTATION_VALUE,
            )?;
            Some((key, value))
        })
    }

    // ---- grammar: connections ----

    /// `connection = source _ "->" _ connection / destination`, run iteratively so long
    /// chains cannot exhaust the stack. Each pending level keeps its start and source.
    fn connection(&mut self) -> Option<Conn> {
        let mut pending: Vec<(usize, Conn)> = Vec::new();
        let result = loop {
            let start = self.pos;
            let head = self.attempt(|p| {
                let source = p.source()?;
                p.ws();
                p.lit("->", desc::ARROW)?;
                p.ws();
                Some(source)
            });
            if let Some(source) = head {
                pending.push((start, source));
                continue;
            }
            if let Some(destination) = self.destination() {
                break destination;
            }
            // This level failed: each enclosing level falls back to `destination`.
            let mut recovered = None;
            while let Some((level_start, _)) = pending.pop() {
                self.pos = level_start;
                if let Some(destination) = self.destination() {
                    recovered = Some(destination);
                    break;
                }
            }
            match recovered {
                Some(destination) => break destination,
                None => return None,
            }
        };
        if pending.is_empty() {
            return Some(result);
        }
        // `[x, [y, destination]]` flattens to x, y, destination.
        let mut pieces = Vec::new();
        for (_, source) in pending {
            pieces.extend(source.into_pieces());
        }
        pieces.extend(result.into_pieces());
        Some(Conn::Many(pieces))
    }

    /// `source = bridge / outport / iip`
    fn source(&mut self) -> Option<Conn> {
        if let Some(bridge) = self.bridge() {
            return Some(bridge);
        }
        if let Some(outport) = self.outport() {
            return Some(outport);
        }
        self.iip()
    }

    /// `destination = inport / bridge`
    fn destination(&mut self) -> Option<Conn> {
        if let Some(inport) = self.inport() {
            return Some(inport);
        }
        self.bridge()
    }

    /// `bridge = port__ node __port / port__? nodeWithComponent __port?`
    fn bridge(&mut self) -> Option<Conn> {
        let line = self.line_at(self.pos);
        let parts = self
            .attempt(|p| {
                let inport = p.port_ws()?;
                let node = p.node()?;
                let outport = p.ws_port()?;
                Some((Some(inport), node, Some(outport)))
            })
            .or_else(|| {
                self.attempt(|p| {
                    let inport = p.port_ws();
                    let node = p.node_with_component()?;
                    let outport = p.ws_port();
                    Some((inport, node, outport))
                })
            });
        let (inport, node, outport) = parts?;
        let tgt = self.b.make_port(&node, inport, false);
        let src = self.b.make_port(&node, outport, true);
        Some(Conn::Many(vec![Piece::Tgt(tgt), Piece::Src(src, line)]))
    }

    /// `outport = node __port?`
    fn outport(&mut self) -> Option<Conn> {
        let line = self.line_at(self.pos);
        let node = self.node()?;
        let port = self.ws_port();
        Some(Conn::One(Piece::Src(
            self.b.make_port(&node, port, true),
            line,
        )))
    }

    /// `inport = port__? node`
    fn inport(&mut self) -> Option<Conn> {
        self.attempt(|p| {
            let port = p.port_ws();
            let node = p.node()?;
            Some(Conn::One(Piece::Tgt(p.b.make_port(&node, port, false))))
        })
    }

    /// `iip = "'" iipchar* "'" / JSON_text`
    fn iip(&mut self) -> Option<Conn> {
        let line = self.line_at(self.pos);
        let quoted = self.attempt(|p| {
            p.lit("'", desc::QUOTE)?;
            let mut data = String::new();
            while let Some(c) = p.iip_char() {
                data.push(c);
            }
            p.lit("'", desc::QUOTE)?;
            Some(serde_json::Value::String(data))
        });
        let data = match quoted {
            Some(data) => data,
            None => self.json_text()?,
        };
        Some(Conn::One(Piece::Data(data, line)))
    }

    /// `iipchar = [\\]['] / [^']`: a backslash escapes only a quote.
    fn iip_char(&mut self) -> Option<char> {
        let escaped = self.attempt(|p| {
            p.class(|c| c == '\\', desc::BACKSLASH_CLASS)?;
            p.class(|c| c == '\'', desc::QUOTE_CLASS)
        });
        escaped.or_else(|| self.class(|c| c != '\'', desc::NOT_QUOTE))
    }

    // ---- grammar: nodes ----

    /// `node = nodeNameAndComponent / nodeName / nodeComponent`
    fn node(&mut self) -> Option<String> {
        self.node_name_and_component()
            .or_else(|| self.node_name())
            .or_else(|| self.node_component())
    }

    /// `nodeWithComponent = nodeNameAndComponent / nodeComponent`
    fn node_with_component(&mut self) -> Option<String> {
        self.node_name_and_component()
            .or_else(|| self.node_component())
    }

    fn node_name(&mut self) -> Option<String> {
        let first = self.class(|c| c.is_ascii_alphabetic() || c == '_', desc::NAME_START)?;
        let mut name = String::from(first);
        name.push_str(&self.class_star(
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
            desc::NODE_NAME,
        ));
        Some(name)
    }

    fn node_name_and_component(&mut self) -> Option<String> {
        let line = self.line_at(self.pos);
        let (name, component) = self.attempt(|p| {
            let name = p.node_name()?;
            let component = p.component()?;
            Some((name, component))
        })?;
        self.b.add_node(&name, component, line);
        Some(name)
    }

    fn node_component(&mut self) -> Option<String> {
        let (offset, line) = (self.pos, self.line_at(self.pos));
        let component = self.component()?;
        Some(self.b.add_anonymous_node(component, offset, line))
    }

    /// `component = "(" [a-zA-Z/\-0-9_]* compMeta? ")"`
    fn component(&mut self) -> Option<Component> {
        self.attempt(|p| {
            p.lit("(", desc::LPAREN)?;
            let name = p.class_star(
                |c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_'),
                desc::COMPONENT,
            );
            let meta = p.attempt(|p| {
                p.lit(":", desc::COLON)?;
                p.class_plus(
                    |c| c.is_ascii_alphanumeric() || matches!(c, '/' | '=' | '_' | ','),
                    desc::META,
                )
            });
            p.lit(")", desc::RPAREN)?;
            Some(Component { name, meta })
        })
    }

    // ---- grammar: ports ----

    /// `port = portName portIndex?`
    fn port(&mut self) -> Option<Port> {
        let name = self.port_name()?;
        let index = self.attempt(|p| {
            p.lit("[", desc::LBRACKET)?;
            let start = p.pos;
            let digits = p.class_plus(|c| c.is_ascii_digit(), desc::DIGIT)?;
            p.lit("]", desc::RBRACKET)?;
            Some((start, digits))
        });
        let index = match index {
            None => None,
            Some((start, digits)) => match digits.parse::<u32>() {
                Ok(index) => Some(index),
                Err(_) => {
                    self.set_fatal(
                        start,
                        format!("a port index up to {}", u32::MAX),
                        format!("\"{digits}\""),
                        false,
                    );
                    Some(0)
                }
            },
        };
        Some(self.b.port(name, index))
    }

    /// `port__ = port __`
    fn port_ws(&mut self) -> Option<Port> {
        self.attempt(|p| {
            let port = p.port()?;
            p.ws1()?;
            Some(port)
        })
    }

    /// `__port = __ port`
    fn ws_port(&mut self) -> Option<Port> {
        self.attempt(|p| {
            p.ws1()?;
            p.port()
        })
    }

    fn port_name(&mut self) -> Option<String> {
        let first = self.class(|c| c.is_ascii_alphabetic() || c == '_', desc::NAME_START)?;
        let mut name = String::from(first);
        name.push_str(&self.class_star(
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'),
            desc::PORT_NAME,
        ));
        Some(name)
    }

    /// `_ = " "*`
    fn ws(&mut self) {
        self.class_star(|c| c == ' ', desc::SPACE);
    }

    /// `__ = " "+`
    fn ws1(&mut self) -> Option<()> {
        self.class_plus(|c| c == ' ', desc::SPACE).map(drop)
    }
}

/// PEG.js's `stringEscape` for the "found" character (astral characters show their
/// first UTF-16 unit, as `input.charAt` does).
fn peg_escape(c: char) -> String {
    let mut units = [0u16; 2];
    let unit = c.encode_utf16(&mut units)[0];
    match unit {
        0x5C => "\\\\".to_string(),
        0x22 => "\\\"".to_string(),
        0x08 => "\\b".to_string(),
        0x09 => "\\t".to_string(),
        0x0A => "\\n".to_string(),
        0x0C => "\\f".to_string(),
        0x0D => "\\r".to_string(),
        0x00..=0x07 | 0x0B | 0x0E | 0x0F => format!("\\x0{unit:X}"),
        0x10..=0x1F | 0x80..=0xFF => format!("\\x{unit:X}"),
        0x100..=0xFFF => format!("\\u0{unit:X}"),
        0x1000..=0xFFFF => format!("\\u{unit:X}"),
        _ => c.to_string(),
    }
}
