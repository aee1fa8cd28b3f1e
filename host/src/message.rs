//! The host's message type: payload bytes, content type and metadata.

use bytes::Bytes;

/// The content type of JSON payloads, the default on every port.
pub const JSON: &str = "application/json";

/// One message on a port.
///
/// Cheap to clone: the payload is reference-counted, so fanning a message out to many
/// queues copies no bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// MIME type of `data`; empty means [`JSON`].
    pub content_type: String,
    /// The payload.
    pub data: Bytes,
    /// String pairs carried along the graph (correlation id, reply-to, ...).
    pub metadata: Vec<(String, String)>,
}

impl Message {
    /// A JSON message from already-serialised JSON text.
    pub fn json_text(text: impl Into<Bytes>) -> Self {
        Message {
            content_type: String::new(),
            data: text.into(),
            metadata: Vec::new(),
        }
    }

    /// A JSON message holding `value`.
    pub fn json(value: &serde_json::Value) -> Self {
        Self::json_text(value.to_string())
    }

    /// A binary message.
    pub fn binary(content_type: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Message {
            content_type: content_type.into(),
            data: data.into(),
            metadata: Vec::new(),
        }
    }

    /// The effective content type (`application/json` when unset).
    pub fn content_type(&self) -> &str {
        if self.content_type.is_empty() {
            JSON
        } else {
            &self.content_type
        }
    }

    /// Whether the payload is JSON.
    pub fn is_json(&self) -> bool {
        let ct = self.content_type();
        ct == JSON || ct.ends_with("+json")
    }

    /// Parses the payload as JSON, if it is JSON.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        if self.is_json() {
            serde_json::from_slice(&self.data).ok()
        } else {
            None
        }
    }

    /// The value of metadata key `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets metadata key `key`, replacing an existing value.
    pub fn set_meta(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => self.metadata.push((key, value)),
        }
    }

    /// Copies every pair of `input` that this message does not set itself: how metadata
    /// flows from a message being processed onto the messages sent while processing it.
    pub fn inherit_metadata(&mut self, input: &[(String, String)]) {
        for (k, v) in input {
            if !self.metadata.iter().any(|(own, _)| own == k) {
                self.metadata.push((k.clone(), v.clone()));
            }
        }
    }

    /// A short, printable rendering of the payload for logs and errors.
    pub fn preview(&self, max: usize) -> String {
        let text = if self.is_json() || self.content_type().starts_with("text/") {
            String::from_utf8_lossy(&self.data).into_owned()
        } else {
            format!("<{} bytes of {}>", self.data.len(), self.content_type())
        };
        if text.chars().count() > max {
            let cut: String = text.chars().take(max).collect();
            format!("{cut}...")
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_metadata_wins_over_inherited() {
        let mut out = Message::json_text("1");
        out.set_meta("reply-to", "mine");
        out.inherit_metadata(&[
            ("reply-to".into(), "input".into()),
            ("correlation-id".into(), "42".into()),
        ]);
        assert_eq!(out.meta("reply-to"), Some("mine"));
        assert_eq!(out.meta("correlation-id"), Some("42"));
    }

    #[test]
    fn binary_messages_are_not_json() {
        let m = Message::binary("application/octet-stream", vec![0u8, 159, 146, 150]);
        assert!(!m.is_json());
        assert_eq!(m.to_json(), None);
        assert_eq!(m.preview(40), "<4 bytes of application/octet-stream>");
        assert!(Message::json_text("{\"a\":1}").is_json());
    }
}
