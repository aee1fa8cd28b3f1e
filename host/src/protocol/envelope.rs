//! The protocol's message envelope: `{protocol, command, payload, secret?, requestId?}`
//! from clients, `{protocol, command, payload, responseTo?}` from the runtime.

use serde_json::{Map, Value, json};

/// One message from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Sub-protocol: `runtime`, `graph`, `network`, `component`, `trace`.
    pub protocol: String,
    /// Command within it.
    pub command: String,
    /// The payload object, without any `secret` key.
    pub payload: Map<String, Value>,
    /// The secret, from the envelope (0.8) or the payload (older clients).
    pub secret: Option<String>,
    /// The client's request id, echoed as `responseTo`.
    pub request_id: Option<Value>,
}

/// Why a client message could not be read. The reply is `<protocol>:error`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON.
    #[error("message is not JSON: {0}")]
    NotJson(String),
    /// JSON but not an object with string `protocol` and `command`.
    #[error("message needs string fields 'protocol' and 'command'")]
    Shape,
}

impl Envelope {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Envelope, EnvelopeError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let Value::Object(mut obj) = value else {
            return Err(EnvelopeError::Shape);
        };
        let field = |obj: &Map<String, Value>, key: &str| {
            obj.get(key).and_then(Value::as_str).map(str::to_string)
        };
        let (Some(protocol), Some(command)) = (field(&obj, "protocol"), field(&obj, "command"))
        else {
            return Err(EnvelopeError::Shape);
        };
        let mut payload = match obj.remove("payload") {
            Some(Value::Object(p)) => p,
            _ => Map::new(),
        };
        let inner_secret = payload.remove("secret");
        let inner_secret = match inner_secret {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let secret = field(&obj, "secret").or(inner_secret);
        Ok(Envelope {
            protocol,
            command,
            payload,
            secret,
            request_id: obj.remove("requestId"),
        })
    }

    /// A string field of the payload.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.payload.get(key).and_then(Value::as_str)
    }
}

/// One message from the runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Sub-protocol.
    pub protocol: String,
    /// Command.
    pub command: String,
    /// Payload.
    pub payload: Value,
    /// The request this answers, if the client gave an id.
    pub response_to: Option<Value>,
}

impl Outgoing {
    /// A message `protocol:command` with `payload`.
    pub fn new(protocol: &str, command: &str, payload: Value) -> Outgoing {
        Outgoing {
            protocol: protocol.to_string(),
            command: command.to_string(),
            payload,
            response_to: None,
        }
    }

    /// `protocol:error` with a message.
    pub fn error(protocol: &str, message: impl Into<String>) -> Outgoing {
        Outgoing::new(protocol, "error", json!({ "message": message.into() }))
    }

    /// The frame text.
    pub fn to_text(&self) -> String {
        let mut obj = Map::new();
        obj.insert("protocol".into(), Value::String(self.protocol.clone()));
        obj.insert("command".into(), Value::String(self.command.clone()));
        obj.insert("payload".into(), self.payload.clone());
        if let Some(id) = &self.response_to {
            obj.insert("responseTo".into(), id.clone());
        }
        Value::Object(obj).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_secret_from_either_place_and_never_keeps_it_in_the_payload() {
        let e = Envelope::parse(
            r#"{"protocol":"graph","command":"clear","payload":{"id":"g","secret":"s"},"requestId":"r1"}"#,
        )
        .unwrap();
        assert_eq!(e.secret.as_deref(), Some("s"));
        assert!(!e.payload.contains_key("secret"));
        assert_eq!(e.request_id, Some(json!("r1")));
        let e =
            Envelope::parse(r#"{"protocol":"graph","command":"clear","payload":{},"secret":"t"}"#)
                .unwrap();
        assert_eq!(e.secret.as_deref(), Some("t"));
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(matches!(
            Envelope::parse("{nope"),
            Err(EnvelopeError::NotJson(_))
        ));
        assert_eq!(Envelope::parse("[1]"), Err(EnvelopeError::Shape));
        assert_eq!(
            Envelope::parse(r#"{"protocol":1,"command":"x"}"#),
            Err(EnvelopeError::Shape)
        );
    }

    #[test]
    fn replies_carry_response_to() {
        let mut o = Outgoing::error("graph", "bad");
        o.response_to = Some(json!(7));
        let v: Value = serde_json::from_str(&o.to_text()).unwrap();
        assert_eq!(
            v,
            json!({"protocol":"graph","command":"error","payload":{"message":"bad"},"responseTo":7})
        );
    }
}
