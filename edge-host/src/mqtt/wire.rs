//! What goes on the wire, as the server host writes it (pure): MsgFlo topic names,
//! discovery messages, dead letters, `error`-port reports and deployment verdicts.

use std::format;
use std::hash::{BuildHasher, Hasher};
use std::string::{String, ToString};
use std::time::Duration;
use std::vec::Vec;

use serde_json::{Map, Value, json};

use crate::definition::{Definition, PortDef};

/// MsgFlo's discovery topic (QoS 0, not retained, as every MsgFlo library sends it).
pub const DISCOVERY_TOPIC: &str = "fbp";
/// MsgFlo's default discovery period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60);
/// Environment variable overriding the period, in seconds.
pub const PERIOD_ENV: &str = "MSGFLO_DISCOVERY_PERIOD";

/// MsgFlo's queue/topic name of a port: `role.PORT` (port upper-cased).
pub fn queue_name(role: &str, port: &str) -> String {
    format!("{role}.{}", port.to_ascii_uppercase())
}

/// Where nacked messages of `queue` go.
pub fn dead_letter_topic(queue: &str) -> String {
    format!("dead-{queue}")
}

/// Where deployments for `role` are published (retained, QoS 1).
pub fn deploy_topic(role: &str) -> String {
    format!("wasmflo/deploy/{role}")
}

/// Where edge hosts of `role` report each deployment's verdict.
pub fn status_topic(role: &str) -> String {
    format!("wasmflo/deploy/{role}/status")
}

/// The discovery period: `MSGFLO_DISCOVERY_PERIOD` seconds if set and valid, else 60 s.
pub fn period_from_env() -> Duration {
    std::env::var(PERIOD_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_PERIOD)
}

/// How often discovery is re-sent: `period / 2.2`, as MsgFlo does.
pub fn resend_interval(period: Duration) -> Duration {
    period.div_f64(2.2)
}

/// A fresh instance id, `role-<8 hex digits>` (not for security).
pub fn instance_id(role: &str) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{role}-{:08x}", h.finish() as u32)
}

/// The discovery message of participant `id` running `def` as `role`: the server host's
/// `{"protocol":"discovery","command":"participant","payload":{...}}`, field for field.
pub fn discovery(id: &str, role: &str, def: &Definition) -> Vec<u8> {
    let ports = |ports: &[PortDef]| -> Value {
        ports
            .iter()
            .map(|p| {
                let mut port = Map::new();
                port.insert("id".into(), p.id.clone().into());
                let type_ = if p.type_.is_empty() {
                    "any"
                } else {
                    p.type_.as_str()
                };
                port.insert("type".into(), type_.into());
                port.insert("queue".into(), queue_name(role, &p.id).into());
                if !p.description.is_empty() {
                    port.insert("description".into(), p.description.clone().into());
                }
                Value::Object(port)
            })
            .collect()
    };
    let icon = if def.icon.is_empty() {
        "file-word-o" // MsgFlo libraries' default
    } else {
        def.icon.as_str()
    };
    let envelope = json!({
        "protocol": "discovery",
        "command": "participant",
        "payload": {
            "id": id,
            "role": role,
            "component": def.component,
            "label": def.label,
            "icon": icon,
            "inports": ports(&def.inports),
            "outports": ports(&def.outports),
        }
    });
    envelope.to_string().into_bytes()
}

/// A dead letter: `{"queue", "reason", "payload"}`, the payload as JSON when it is JSON,
/// else as a string (MQTT 3.1.1 has no headers to carry the reason).
pub fn dead_letter(queue: &str, reason: &str, payload: &[u8]) -> Vec<u8> {
    let payload = serde_json::from_slice::<Value>(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    json!({"queue": queue, "reason": reason, "payload": payload})
        .to_string()
        .into_bytes()
}

/// What a component with an `error` outport gets for each refused message.
pub fn error_report(reason: &str, port: &str) -> Vec<u8> {
    json!({"error": reason, "port": port})
        .to_string()
        .into_bytes()
}

/// One deployment's verdict, as published on the status topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The role.
    pub role: String,
    /// The reporting participant's instance id.
    pub id: String,
    /// The reporting edge host's MQTT client id (stable across restarts).
    pub client: String,
    /// sha256 of the whole deployment message, hex: which deployment this is about.
    pub deployment: String,
    /// The manifest's sequence, when it could be read.
    pub sequence: Option<u64>,
    /// `Ok(component name)` when swapped in, `Err(reason)` when rejected.
    pub outcome: Result<String, String>,
}

impl Verdict {
    /// The JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = json!({
            "role": self.role,
            "id": self.id,
            "client": self.client,
            "deployment": self.deployment,
            "sequence": self.sequence,
            "accepted": self.outcome.is_ok(),
        });
        match &self.outcome {
            Ok(component) => v["component"] = component.clone().into(),
            Err(reason) => v["reason"] = reason.clone().into(),
        }
        v.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn discovery_is_the_server_hosts() {
        let def = Definition {
            component: "core/Repeat".into(),
            label: "Repeats input unchanged".into(),
            icon: String::new(),
            inports: vec![PortDef {
                id: "in".into(),
                type_: "any".into(),
                ..PortDef::default()
            }],
            outports: vec![PortDef {
                id: "out".into(),
                description: "the same".into(),
                ..PortDef::default()
            }],
        };
        let text = String::from_utf8(discovery("rep-1", "rep", &def)).expect("utf-8");
        assert_eq!(
            text,
            r#"{"protocol":"discovery","command":"participant","payload":{"id":"rep-1","role":"rep","component":"core/Repeat","label":"Repeats input unchanged","icon":"file-word-o","inports":[{"id":"in","type":"any","queue":"rep.IN"}],"outports":[{"id":"out","type":"any","queue":"rep.OUT","description":"the same"}]}}"#
        );
        assert!(instance_id("rep").starts_with("rep-"));
    }

    #[test]
    fn dead_letters_keep_json_payloads_and_quote_the_rest() {
        let d: Value = serde_json::from_slice(&dead_letter("f.IN", "why", b"[1]")).expect("json");
        assert_eq!(d, json!({"queue": "f.IN", "reason": "why", "payload": [1]}));
        let d: Value = serde_json::from_slice(&dead_letter("f.IN", "why", b"\xffx")).expect("json");
        assert_eq!(d["payload"], "\u{fffd}x");
    }
}
