//! `Message`: payload bytes, content type and metadata, with JSON helpers.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::lite::{self, LiteError};
use crate::{Nack, concat};

/// One message on a port.
///
/// An empty content type means `application/json`, as in the WIT world.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub(crate) content_type: String,
    pub(crate) data: Vec<u8>,
    pub(crate) metadata: Vec<(String, String)>,
}

impl Message {
    /// The content type of JSON payloads.
    pub const JSON: &'static str = "application/json";

    /// A JSON message holding `value`.
    ///
    /// Fails with an internal nack only if `value` cannot be represented as JSON
    /// (for example a map with non-string keys).
    pub fn from_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, Nack> {
        let data = serde_json::to_vec(value)
            .map_err(|err| Nack::internal(format!("cannot encode JSON: {err}")))?;
        Ok(Self::bytes(Self::JSON, data))
    }

    /// A message holding `data` of content type `content_type`.
    pub fn bytes(content_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            content_type: content_type.into(),
            data: data.into(),
            metadata: Vec::new(),
        }
    }

    /// The content type, with the empty string read as `application/json`.
    pub fn content_type(&self) -> &str {
        if self.content_type.is_empty() {
            Self::JSON
        } else {
            &self.content_type
        }
    }

    /// Whether the payload is JSON: `application/json` (parameters allowed) or `*+json`.
    ///
    /// Byte by byte, ASCII only (a MIME type is ASCII): no allocation, no Unicode
    /// tables, little code for a device. The whitespace trimmed around the type is
    /// `[u8]::trim_ascii`'s (space, tab, CR, LF, form feed), not vertical tab or Unicode
    /// spaces: `"application/json\u{a0}"` is not JSON.
    pub fn is_json(&self) -> bool {
        let ty = self.content_type().as_bytes();
        let end = ty.iter().position(|&b| b == b';').unwrap_or(ty.len());
        let essence = ty[..end].trim_ascii();
        let json = Self::JSON.as_bytes();
        let suffix = b"+json";
        essence.eq_ignore_ascii_case(json)
            || (essence.len() >= suffix.len()
                && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
    }

    /// The payload bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The payload bytes, by value.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Parses the JSON payload as `T`.
    ///
    /// Nacks with `invalid-input` when the content type is not JSON or the payload
    /// does not parse as `T`; the reason names the problem.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Nack> {
        self.check_json()?;
        serde_json::from_slice(&self.data)
            .map_err(|err| Nack::invalid_input(format!("invalid JSON payload: {err}")))
    }

    fn check_json(&self) -> Result<(), Nack> {
        if self.is_json() {
            return Ok(());
        }
        // Concatenated, not `format!`: device builds reach this, and `core::fmt` is
        // code the device interpreter would translate and keep in RAM.
        Err(Nack::invalid_input(concat(&[
            "expected a JSON payload, got content type `",
            self.content_type(),
            "`",
        ])))
    }

    /// `json::<f64>()` without serde (module `lite`): the same values and the same
    /// payloads refused, with a shorter reason. A few hundred bytes of code instead of
    /// serde_json's, for the device profile.
    pub fn json_f64(&self) -> Result<f64, Nack> {
        self.lite(lite::f64)
    }

    /// `json::<String>()` without serde (module `lite`), like [`json_f64`](Self::json_f64).
    pub fn json_string(&self) -> Result<String, Nack> {
        self.lite(lite::string)
    }

    fn lite<T>(&self, parse: fn(&[u8]) -> Result<T, LiteError>) -> Result<T, Nack> {
        self.check_json()?;
        parse(&self.data)
            .map_err(|err| Nack::invalid_input(concat(&["invalid JSON payload: ", err.as_str()])))
    }

    /// A JSON message holding the string `text`: the bytes of `from_json(text)`, without
    /// serde.
    pub fn from_json_str(text: &str) -> Self {
        let mut data = Vec::with_capacity(text.len() + 2);
        lite::write_string(&mut data, text);
        Self::bytes(Self::JSON, data)
    }

    /// The payload as a number: a JSON number, or a JSON string holding one, because
    /// `.fbp` IIPs such as `'1000' -> INTERVAL sensor` arrive as strings (MsgFlo's
    /// convention). Nacks with `invalid-input` otherwise.
    pub fn number(&self) -> Result<f64, Nack> {
        let value: serde_json::Value = self.json()?;
        match &value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| Nack::invalid_input(format!("expected a number, got {value}")))
    }

    /// The payload as UTF-8 text; nacks with `invalid-input` if it is not UTF-8.
    pub fn text(&self) -> Result<&str, Nack> {
        core::str::from_utf8(&self.data)
            .map_err(|err| Nack::invalid_input(format!("payload is not UTF-8: {err}")))
    }

    /// The value of metadata `key`, if set.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets metadata `key` to `value`, replacing an earlier value.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => self.metadata.push((key, value)),
        }
    }

    /// Sets metadata `key` to `value` and returns the message.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_metadata(key, value);
        self
    }

    /// Removes metadata `key` and returns its value.
    pub fn remove_metadata(&mut self, key: &str) -> Option<String> {
        let index = self.metadata.iter().position(|(k, _)| k == key)?;
        Some(self.metadata.remove(index).1)
    }

    /// All metadata pairs in order.
    pub fn metadata_pairs(&self) -> &[(String, String)] {
        &self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NackKind;

    #[test]
    fn json_round_trip() -> Result<(), Nack> {
        let msg = Message::from_json(&22.5)?;
        assert_eq!(msg.content_type(), "application/json");
        assert_eq!(msg.data(), b"22.5");
        assert_eq!(msg.json::<f64>()?, 22.5);
        Ok(())
    }

    #[test]
    fn numbers_from_json_numbers_and_fbp_strings() -> Result<(), Nack> {
        assert_eq!(Message::from_json(&-5.5)?.number()?, -5.5);
        assert_eq!(Message::from_json(&"1000")?.number()?, 1000.0);
        let err = Message::from_json(&"warm")?
            .number()
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.kind(), NackKind::InvalidInput);
        assert_eq!(err.reason(), "expected a number, got \"warm\"");
        assert!(Message::from_json(&true)?.number().is_err());
        Ok(())
    }

    #[test]
    fn empty_content_type_is_json() -> Result<(), Nack> {
        let msg = Message::bytes("", "\"hi\"");
        assert!(msg.is_json());
        assert_eq!(msg.json::<String>()?, "hi");
        Ok(())
    }

    #[test]
    fn json_content_type_variants() {
        assert!(Message::bytes("application/json; charset=utf-8", "1").is_json());
        assert!(Message::bytes("application/ld+json", "1").is_json());
        assert!(!Message::bytes("text/plain", "1").is_json());
        assert!(Message::bytes(" Application/JSON\t;q=1", "1").is_json());
        assert!(Message::bytes("application/VND.API+Json", "1").is_json());
        assert!(!Message::bytes("+jso", "1").is_json());
        assert!(!Message::bytes("application/json-seq", "1").is_json());
        assert!(!Message::bytes("text/plain; type=application/json", "1").is_json());
        // A MIME type is ASCII: no Unicode whitespace is trimmed.
        assert!(!Message::bytes("application/json\u{a0}", "1").is_json());
        assert!(!Message::bytes("application/json\u{b}", "1").is_json());
        assert!(Message::bytes("\r\napplication/json\u{c}", "1").is_json());
    }

    #[test]
    fn wrong_type_is_invalid_input() {
        let err = Message::bytes("", "\"hot\"").json::<f64>().err();
        let err = err.map(|n| (n.kind(), n.reason().to_owned()));
        assert!(matches!(
            err,
            Some((NackKind::InvalidInput, ref reason)) if reason.starts_with("invalid JSON payload")
        ));
    }

    #[test]
    fn non_json_content_type_is_invalid_input() {
        let err = Message::bytes("text/plain", "1").json::<f64>().err();
        assert_eq!(
            err.as_ref().map(Nack::reason),
            Some("expected a JSON payload, got content type `text/plain`")
        );
    }

    #[test]
    fn text_checks_utf8() {
        assert_eq!(
            Message::bytes("text/plain", "héllo").text().ok(),
            Some("héllo")
        );
        let msg = Message::bytes("application/octet-stream", vec![0xff, 0xfe]);
        assert_eq!(
            msg.text().err().map(|n| n.kind()),
            Some(NackKind::InvalidInput)
        );
    }

    #[test]
    fn metadata_set_replaces() {
        let mut msg = Message::bytes("", "1").with_metadata("correlation-id", "a");
        msg.set_metadata("reply-to", "r");
        msg.set_metadata("correlation-id", "b");
        assert_eq!(msg.metadata("correlation-id"), Some("b"));
        assert_eq!(msg.metadata_pairs().len(), 2);
        assert_eq!(msg.remove_metadata("reply-to").as_deref(), Some("r"));
        assert_eq!(msg.metadata("reply-to"), None);
    }
}
