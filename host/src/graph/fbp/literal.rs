//! The JSON part of `fbp.peg` (RFC 7159 values as IIPs) and JavaScript number semantics.

use serde_json::{Map, Number, Value};

use super::parser::{MAX_JSON_DEPTH, Parser};

mod desc {
    pub const WS: &str = r"[ \t\n\r]";
    pub const FALSE: &str = "\"false\"";
    pub const NULL: &str = "\"null\"";
    pub const TRUE: &str = "\"true\"";
    pub const LBRACE: &str = "\"{\"";
    pub const RBRACE: &str = "\"}\"";
    pub const LBRACKET: &str = "\"[\"";
    pub const RBRACKET: &str = "\"]\"";
    pub const COLON: &str = "\":\"";
    pub const COMMA: &str = "\",\"";
    pub const NUMBER: &str = "number";
    pub const STRING: &str = "string";
    pub const MINUS: &str = "\"-\"";
    pub const PLUS: &str = "\"+\"";
    pub const ZERO: &str = "\"0\"";
    pub const DIGIT1_9: &str = "[1-9]";
    pub const DIGIT: &str = "[0-9]";
    pub const DOT: &str = "\".\"";
    pub const EXP: &str = "[eE]";
    pub const QUOTATION_MARK: &str = "\"\\\"\"";
    pub const ESCAPE: &str = "\"\\\\\"";
    pub const SLASH: &str = "\"/\"";
    pub const U: &str = "\"u\"";
    pub const HEXDIG: &str = "[0-9a-f]i";
    pub const UNESCAPED: &str = r"[^\0-\x1F\x22\x5C]";
}

impl Parser {
    /// `JSON_text = ws value ws`
    pub(super) fn json_text(&mut self) -> Option<Value> {
        self.attempt(|p| {
            p.json_ws();
            let value = p.json_value()?;
            p.json_ws();
            Some(value)
        })
    }

    /// `ws "whitespace" = [ \t\n\r]*` (named, so its failures are silent; it never fails).
    fn json_ws(&mut self) {
        self.silent += 1;
        self.class_star(|c| matches!(c, ' ' | '\t' | '\n' | '\r'), desc::WS);
        self.silent -= 1;
    }

    /// `ws literal ws`, the shape of `begin_array`, `name_separator`, ...
    fn json_punct(&mut self, literal: &str, description: &'static str) -> Option<()> {
        self.attempt(|p| {
            p.json_ws();
            p.lit(literal, description)?;
            p.json_ws();
            Some(())
        })
    }

    /// `value = false / null / true / object / array / number / string`
    fn json_value(&mut self) -> Option<Value> {
        if self.depth >= MAX_JSON_DEPTH {
            let found = self
                .chars
                .get(self.pos)
                .map_or("end of input".to_string(), |c| format!("\"{c}\""));
            self.set_fatal(
                self.pos,
                format!("JSON nested at most {MAX_JSON_DEPTH} levels deep"),
                found,
                true,
            );
            return None;
        }
        self.depth += 1;
        let value = self.json_value_inner();
        self.depth -= 1;
        value
    }

    fn json_value_inner(&mut self) -> Option<Value> {
        if self.lit("false", desc::FALSE).is_some() {
            return Some(Value::Bool(false));
        }
        if self.lit("null", desc::NULL).is_some() {
            return Some(Value::Null);
        }
        if self.lit("true", desc::TRUE).is_some() {
            return Some(Value::Bool(true));
        }
        if let Some(object) = self.json_object() {
            return Some(object);
        }
        if let Some(array) = self.json_array() {
            return Some(array);
        }
        if let Some(number) = self.json_number() {
            return Some(number);
        }
        self.json_string().map(Value::String)
    }

    /// `object = begin_object (member (value_separator member)*)? end_object`
    fn json_object(&mut self) -> Option<Value> {
        self.attempt(|p| {
            p.json_punct("{", desc::LBRACE)?;
            let mut object = Map::new();
            if let Some((key, value)) = p.json_member() {
                object.insert(key, value);
                while let Some((key, value)) = p.attempt(|p| {
                    p.json_punct(",", desc::COMMA)?;
                    p.json_member()
                }) {
                    object.insert(key, value);
                }
            }
            p.json_punct("}", desc::RBRACE)?;
            Some(Value::Object(object))
        })
    }

    /// `member = string name_separator value`
    fn json_member(&mut self) -> Option<(String, Value)> {
        self.attempt(|p| {
            let key = p.json_string()?;
            p.json_punct(":", desc::COLON)?;
            let value = p.json_value()?;
            Some((key, value))
        })
    }

    /// `array = begin_array (value (value_separator value)*)? end_array`
    fn json_array(&mut self) -> Option<Value> {
        self.attempt(|p| {
            p.json_punct("[", desc::LBRACKET)?;
            let mut array = Vec::new();
            if let Some(value) = p.json_value() {
                array.push(value);
                while let Some(value) = p.attempt(|p| {
                    p.json_punct(",", desc::COMMA)?;
                    p.json_value()
                }) {
                    array.push(value);
                }
            }
            p.json_punct("]", desc::RBRACKET)?;
            Some(Value::Array(array))
        })
    }

    /// `number "number" = minus? int frac? exp?`, valued by `parseFloat(text())`.
    fn json_number(&mut self) -> Option<Value> {
        let start = self.pos;
        self.silent += 1;
        let matched = self.attempt(|p| {
            let _ = p.lit("-", desc::MINUS);
            if p.lit("0", desc::ZERO).is_none() {
                p.class(|c| matches!(c, '1'..='9'), desc::DIGIT1_9)?;
                p.class_star(|c| c.is_ascii_digit(), desc::DIGIT);
            }
            let _ = p.attempt(|p| {
                p.lit(".", desc::DOT)?;
                p.class_plus(|c| c.is_ascii_digit(), desc::DIGIT)
            });
            let _ = p.attempt(|p| {
                p.class(|c| matches!(c, 'e' | 'E'), desc::EXP)?;
                if p.lit("-", desc::MINUS).is_none() {
                    let _ = p.lit("+", desc::PLUS);
                }
                p.class_plus(|c| c.is_ascii_digit(), desc::DIGIT)
            });
            Some(())
        });
        self.silent -= 1;
        if matched.is_none() {
            self.fail(desc::NUMBER);
            return None;
        }
        let text: String = self
            .chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect();
        Some(js_number(text.parse::<f64>().unwrap_or(f64::NAN)))
    }

    /// `string "string" = quotation_mark char* quotation_mark`. Characters are gathered
    /// as UTF-16 units like JavaScript's; a lone surrogate becomes U+FFFD.
    fn json_string(&mut self) -> Option<String> {
        self.silent += 1;
        let units = self.attempt(|p| {
            p.lit("\"", desc::QUOTATION_MARK)?;
            let mut units: Vec<u16> = Vec::new();
            while p.json_char(&mut units).is_some() {}
            p.lit("\"", desc::QUOTATION_MARK)?;
            Some(units)
        });
        self.silent -= 1;
        match units {
            Some(units) => Some(String::from_utf16_lossy(&units)),
            None => {
                self.fail(desc::STRING);
                None
            }
        }
    }

    /// `char = unescaped / escape (...)`
    fn json_char(&mut self, units: &mut Vec<u16>) -> Option<()> {
        if let Some(c) = self.class(|c| c > '\u{1F}' && c != '"' && c != '\\', desc::UNESCAPED) {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            return Some(());
        }
        let unit = self.attempt(|p| {
            p.lit("\\", desc::ESCAPE)?;
            let simple = [
                ("\"", desc::QUOTATION_MARK, '"'),
                ("\\", desc::ESCAPE, '\\'),
                ("/", desc::SLASH, '/'),
                ("b", "\"b\"", '\u{8}'),
                ("f", "\"f\"", '\u{c}'),
                ("n", "\"n\"", '\n'),
                ("r", "\"r\"", '\r'),
                ("t", "\"t\"", '\t'),
            ];
            for (literal, description, c) in simple {
                if p.lit(literal, description).is_some() {
                    return Some(c as u16);
                }
            }
            p.lit("u", desc::U)?;
            let mut unit = 0u16;
            for _ in 0..4 {
                let digit = p.class(|c| c.is_ascii_hexdigit(), desc::HEXDIG)?;
                unit = unit * 16 + digit.to_digit(16).unwrap_or(0) as u16;
            }
            Some(unit)
        })?;
        units.push(unit);
        Some(())
    }
}

/// A JavaScript number as `JSON.stringify` would print it: integers as integers,
/// `-0` as `0`, `NaN` and infinities as `null`.
pub(crate) fn js_number(f: f64) -> Value {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if !f.is_finite() {
        return Value::Null;
    }
    if f.fract() == 0.0 {
        if (0.0..TWO_POW_64).contains(&f) {
            return Value::from(f as u64);
        }
        if (-TWO_POW_63..0.0).contains(&f) {
            return Value::from(f as i64);
        }
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// JavaScript's `parseFloat`: the longest decimal-literal prefix, `NaN` when none.
pub(crate) fn parse_float(s: &str) -> f64 {
    let s = s.trim_start();
    let bytes = s.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    if s[end..].starts_with("Infinity") {
        return if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let digits_start = end;
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    let mut mantissa_digits = end - digits_start;
    if bytes.get(end) == Some(&b'.') {
        let frac_start = end + 1;
        let mut frac_end = frac_start;
        while bytes.get(frac_end).is_some_and(u8::is_ascii_digit) {
            frac_end += 1;
        }
        mantissa_digits += frac_end - frac_start;
        if mantissa_digits > 0 {
            end = frac_end;
        }
    }
    if mantissa_digits == 0 {
        return f64::NAN;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp_end = end + 1;
        if matches!(bytes.get(exp_end), Some(b'+' | b'-')) {
            exp_end += 1;
        }
        let exp_digits_start = exp_end;
        while bytes.get(exp_end).is_some_and(u8::is_ascii_digit) {
            exp_end += 1;
        }
        if exp_end > exp_digits_start {
            end = exp_end;
        }
    }
    s[..end].parse::<f64>().unwrap_or(f64::NAN)
}
