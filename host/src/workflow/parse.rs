//! The workflow expression language, parsed by hand into a [`Signature`]. Pure.
//!
//! ```text
//! workflow := step ('|' step)*
//! step     := '(' workflow ')' | chain(workflow, ...) | group(workflow, ...)
//!           | chord(group(...), workflow) | map(NAME, value) | starmap(NAME, value)
//!           | chunks(NAME, value, n) | NAME[.s|.si](arg, ..., key=value, ...)
//!           | NAME.map(value) | NAME.starmap(value) | NAME.chunks(value, n)
//! value    := JSON | [value, ...] | {"key": value, ...} | range([start,] stop[, step])
//!           | zip(value, value, ...)
//! ```

use serde_json::{Map, Number, Value};

use super::signature::{RESERVED, Signature, TaskCall, is_identifier};

/// A syntax error: the 1-based column, what was expected there and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: expected {expected}, found {found}")]
pub struct ParseError {
    /// 1-based column (in characters).
    pub column: usize,
    /// What the parser expected.
    pub expected: String,
    /// What it found (`end of input` at the end).
    pub found: String,
}

/// Items that `range(...)` and `zip(...)` may make in one expression, all together: a
/// bigger workflow is refused with one line rather than filling memory.
pub const MAX_ITEMS: usize = 1_000_000;

/// Parses a workflow expression such as `add(4, 4) | mul(8) | mul(10)`.
pub fn parse(text: &str) -> Result<Signature, ParseError> {
    let mut p = Parser {
        text,
        pos: 0,
        items: 0,
    };
    let sig = p.workflow()?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.error("'|' or the end of the expression"));
    }
    sig.validate().map_err(|e| ParseError {
        column: 1,
        expected: "a valid workflow".into(),
        found: e.problem,
    })?;
    Ok(sig)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// Items made by `range` and `zip` so far (at most [`MAX_ITEMS`]).
    items: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn column_at(&self, pos: usize) -> usize {
        self.text[..pos].chars().count() + 1
    }

    fn error(&self, expected: &str) -> ParseError {
        self.error_at(self.pos, expected)
    }

    fn error_at(&self, pos: usize, expected: &str) -> ParseError {
        let found = match self.text[pos..].chars().next() {
            None => "end of input".to_string(),
            Some(_) => {
                let token: String = self.text[pos..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
                    .take(20)
                    .collect();
                if token.is_empty() {
                    format!("'{}'", self.text[pos..].chars().next().unwrap_or(' '))
                } else {
                    format!("'{token}'")
                }
            }
        };
        ParseError {
            column: self.column_at(pos),
            expected: expected.to_string(),
            found,
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn ident(&mut self) -> Option<(usize, &str)> {
        self.skip_ws();
        let start = self.pos;
        let len = self
            .rest()
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic()
                    || *c == '_'
                    || (*i > 0 && (c.is_ascii_digit() || *c == '-'))
            })
            .count();
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some((start, &self.text[start..start + len]))
    }

    fn workflow(&mut self) -> Result<Signature, ParseError> {
        let mut steps = vec![self.step()?];
        while self.eat('|') {
            steps.push(self.step()?);
        }
        Ok(if steps.len() == 1 {
            steps.remove(0)
        } else {
            Signature::Chain(steps)
        })
    }

    /// `(a, b, ...)` after a name: workflows separated by commas.
    fn workflows(&mut self, close: &str) -> Result<Vec<Signature>, ParseError> {
        let mut out = Vec::new();
        if self.eat(')') {
            return Ok(out);
        }
        loop {
            out.push(self.workflow()?);
            if self.eat(')') {
                return Ok(out);
            }
            self.expect(',', close)?;
        }
    }

    fn step(&mut self) -> Result<Signature, ParseError> {
        self.skip_ws();
        if self.eat('(') {
            let inner = self.workflow()?;
            self.expect(')', "')' closing the parenthesis")?;
            return Ok(inner);
        }
        let Some((start, name)) = self.ident() else {
            return Err(self
                .error("a task call such as add(2, 2), or chain/group/chord/map/starmap/chunks"));
        };
        let name = name.to_string();
        let method = if self.eat('.') {
            match self.ident() {
                Some((_, m)) => Some(m.to_string()),
                None => return Err(self.error("a method: s, si, map, starmap or chunks")),
            }
        } else {
            None
        };
        self.expect('(', &format!("'(' after '{name}'"))?;
        match (name.as_str(), method.as_deref()) {
            ("chain", None) => {
                let steps = self.workflows("',' or ')' in chain(...)")?;
                if steps.is_empty() {
                    return Err(self.error_at(start, "chain(...) with at least one step"));
                }
                Ok(Signature::Chain(steps))
            }
            ("group", None) => Ok(Signature::Group(
                self.workflows("',' or ')' in group(...)")?,
            )),
            ("chord", None) => {
                let at = {
                    self.skip_ws();
                    self.pos
                };
                let header = match self.workflow()? {
                    Signature::Group(members) => members,
                    _ => return Err(self.error_at(at, "group(...) as the chord's header")),
                };
                self.expect(',', "',' then the chord's body")?;
                let body = self.workflow()?;
                self.expect(')', "')' closing chord(...)")?;
                Ok(Signature::Chord {
                    header,
                    body: Box::new(body),
                })
            }
            ("map" | "starmap" | "chunks", None) => {
                let task = self.task_name()?;
                self.expect(',', &format!("',' then the list of {name} items"))?;
                self.map_form(&name, task)
            }
            ("range" | "zip", None) => {
                Err(self.error_at(start, "a task or workflow (range and zip are values)"))
            }
            (_, Some("map" | "starmap" | "chunks")) if !RESERVED.contains(&name.as_str()) => {
                let form = method.clone().unwrap_or_default();
                self.map_form(&form, name.clone())
            }
            (_, None | Some("s" | "si")) if !RESERVED.contains(&name.as_str()) => {
                let (args, kwargs) = self.arguments()?;
                Ok(Signature::Task(TaskCall {
                    name: name.clone(),
                    args,
                    kwargs,
                    immutable: method.as_deref() == Some("si"),
                }))
            }
            (_, Some(_)) if !RESERVED.contains(&name.as_str()) => Err(self.error_at(
                start + name.len() + 1,
                "a method: s, si, map, starmap or chunks",
            )),
            _ => Err(self.error_at(start, &format!("'{name}(' with no method"))),
        }
    }

    fn task_name(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        let at = self.pos;
        if self.peek() == Some('"') {
            if let Value::String(s) = self.json_string()?
                && is_identifier(&s)
            {
                return Ok(s);
            }
            return Err(self.error_at(at, "a task name"));
        }
        match self.ident() {
            Some((_, n)) if is_identifier(n) => {
                let n = n.to_string();
                // `map(add.s(), ...)` as Celery writes it.
                if self.eat('.') {
                    match self.ident() {
                        Some((_, "s")) => {
                            self.expect('(', "'('")?;
                            self.expect(
                                ')',
                                "')': the mapped task takes its arguments from the items",
                            )?;
                        }
                        _ => return Err(self.error("'s()'")),
                    }
                }
                Ok(n)
            }
            _ => Err(self.error_at(at, "a task name")),
        }
    }

    /// After `map(NAME,` or `NAME.map(`: the items, then `, n)` for chunks, then `)`.
    fn map_form(&mut self, form: &str, task: String) -> Result<Signature, ParseError> {
        let at = {
            self.skip_ws();
            self.pos
        };
        let items = match self.value()? {
            Value::Array(items) => items,
            _ => return Err(self.error_at(at, &format!("a list of {form} items"))),
        };
        if form == "chunks" {
            self.expect(',', "',' then the chunk size")?;
            self.skip_ws();
            let at = self.pos;
            let size = self
                .value()?
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| self.error_at(at, "a chunk size (an integer of at least 1)"))?;
            self.expect(')', "')' closing chunks(...)")?;
            return Ok(Signature::Chunks { task, items, size });
        }
        self.expect(')', &format!("')' closing {form}(...)"))?;
        if form == "starmap" {
            if let Some(i) = items.iter().position(|v| !v.is_array()) {
                return Err(self.error_at(
                    at,
                    &format!("a list of argument lists (item {i} is {})", items[i]),
                ));
            }
            return Ok(Signature::Starmap { task, items });
        }
        Ok(Signature::Map { task, items })
    }

    fn arguments(&mut self) -> Result<(Vec<Value>, Map<String, Value>), ParseError> {
        let (mut args, mut kwargs) = (Vec::new(), Map::new());
        if self.eat(')') {
            return Ok((args, kwargs));
        }
        loop {
            self.skip_ws();
            let save = self.pos;
            let keyword = match self.ident() {
                Some((_, k)) if !["true", "false", "null", "range", "zip"].contains(&k) => {
                    let k = k.to_string();
                    if self.eat('=') { Some(k) } else { None }
                }
                _ => None,
            };
            match keyword {
                Some(k) => {
                    let v = self.value()?;
                    kwargs.insert(k, v);
                }
                None => {
                    self.pos = save;
                    if !kwargs.is_empty() {
                        return Err(self.error("a keyword argument (positional ones come first)"));
                    }
                    args.push(self.value()?);
                }
            }
            if self.eat(')') {
                return Ok((args, kwargs));
            }
            self.expect(',', "',' or ')' in the arguments")?;
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(']') {
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    if self.eat(']') {
                        return Ok(Value::Array(items));
                    }
                    self.expect(',', "',' or ']' in the list")?;
                }
            }
            Some('{') => {
                self.pos += 1;
                let mut map = Map::new();
                if self.eat('}') {
                    return Ok(Value::Object(map));
                }
                loop {
                    self.skip_ws();
                    let key = match self.json_string()? {
                        Value::String(k) => k,
                        _ => return Err(self.error("a string key")),
                    };
                    self.expect(':', "':' after the key")?;
                    let v = self.value()?;
                    map.insert(key, v);
                    if self.eat('}') {
                        return Ok(Value::Object(map));
                    }
                    self.expect(',', "',' or '}' in the object")?;
                }
            }
            Some('"') => self.json_string(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            _ => {
                let at = self.pos;
                match self.ident() {
                    Some((_, "true")) => Ok(Value::Bool(true)),
                    Some((_, "false")) => Ok(Value::Bool(false)),
                    Some((_, "null")) => Ok(Value::Null),
                    Some((_, "range")) => self.range(),
                    Some((_, "zip")) => self.zip(),
                    _ => Err(self.error_at(at, "a JSON value, range(...) or zip(...)")),
                }
            }
        }
    }

    fn json_string(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let mut escaped = false;
        for (i, c) in self.rest().char_indices().skip(1) {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    let end = start + i + 1;
                    let v = serde_json::from_str(&self.text[start..end])
                        .map_err(|_| self.error_at(start, "a valid JSON string"))?;
                    self.pos = end;
                    return Ok(v);
                }
                _ => escaped = false,
            }
        }
        Err(self.error_at(start, "a string closed by '\"'"))
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let len = self
            .rest()
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_digit()
                    || matches!(c, '.' | 'e' | 'E' | '+')
                    || (*c == '-' && *i == 0)
                    || (*c == '-' && matches!(self.rest().as_bytes().get(i - 1), Some(b'e' | b'E')))
            })
            .count();
        let text = &self.text[start..start + len];
        let n: Number =
            serde_json::from_str(text).map_err(|_| self.error_at(start, "a JSON number"))?;
        self.pos += len;
        Ok(Value::Number(n))
    }

    fn int_args(&mut self, what: &str) -> Result<Vec<i64>, ParseError> {
        self.expect('(', &format!("'(' after {what}"))?;
        let mut out = Vec::new();
        if self.eat(')') {
            return Ok(out);
        }
        loop {
            self.skip_ws();
            let at = self.pos;
            let n = self
                .value()?
                .as_i64()
                .ok_or_else(|| self.error_at(at, &format!("an integer argument of {what}")))?;
            out.push(n);
            if self.eat(')') {
                return Ok(out);
            }
            self.expect(',', &format!("',' or ')' in {what}(...)"))?;
        }
    }

    /// `range(stop)`, `range(start, stop)`, `range(start, stop, step)` as in Python.
    fn range(&mut self) -> Result<Value, ParseError> {
        let at = self.pos;
        let (start, stop, step) =
            match self.int_args("range")?[..] {
                [stop] => (0, stop, 1),
                [start, stop] => (start, stop, 1),
                [start, stop, step] if step != 0 => (start, stop, step),
                _ => return Err(self.error_at(
                    at,
                    "range(stop), range(start, stop) or range(start, stop, step) with step != 0",
                )),
            };
        let (span, stride) = (i128::from(stop) - i128::from(start), i128::from(step));
        let len = if span.signum() == stride.signum() {
            (span.abs() + stride.abs() - 1) / stride.abs()
        } else {
            0
        };
        self.spend(at, usize::try_from(len).unwrap_or(usize::MAX), "range")?;
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let mut i = start;
        while (step > 0 && i < stop) || (step < 0 && i > stop) {
            out.push(Value::from(i));
            i = match i.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
        Ok(Value::Array(out))
    }

    /// Counts `n` more items made by `what` against [`MAX_ITEMS`].
    fn spend(&mut self, at: usize, n: usize, what: &str) -> Result<(), ParseError> {
        match self
            .items
            .checked_add(n)
            .filter(|total| *total <= MAX_ITEMS)
        {
            Some(total) => {
                self.items = total;
                Ok(())
            }
            None => Err(ParseError {
                found: format!("{what}(...) making {n} more after {}", self.items),
                ..self.error_at(
                    at,
                    "at most 1,000,000 items from range() and zip() in one workflow",
                )
            }),
        }
    }

    /// `zip(a, b, ...)`: lists of the i-th items, as long as the shortest list.
    fn zip(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        self.expect('(', "'(' after zip")?;
        let mut lists = Vec::new();
        loop {
            self.skip_ws();
            let at = self.pos;
            match self.value()? {
                Value::Array(a) => lists.push(a),
                _ => return Err(self.error_at(at, "a list to zip")),
            }
            if self.eat(')') {
                break;
            }
            self.expect(',', "',' or ')' in zip(...)")?;
        }
        let len = lists.iter().map(Vec::len).min().unwrap_or(0);
        self.spend(start, len.saturating_mul(lists.len() + 1), "zip")?;
        Ok(Value::Array(
            (0..len)
                .map(|i| Value::Array(lists.iter().map(|l| l[i].clone()).collect()))
                .collect(),
        ))
    }
}
