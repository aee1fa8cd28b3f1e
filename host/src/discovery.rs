//! MsgFlo discovery messages: building, parsing (pure), and the task re-sending them.
//!
//! A participant announces itself on the `fbp` topic (MQTT) or queue (AMQP) with
//! `{"protocol":"discovery","command":"participant","payload":{id, role, component,
//! label, icon, inports, outports}}`, each port `{id, type, queue}` (plus `description`
//! when it has one). It re-sends every `period / 2.2` (MsgFlo's "two messages before the
//! deadline"), the period being 60 s or `MSGFLO_DISCOVERY_PERIOD` seconds.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::Message;
use crate::runtime::{Definition, PortDef};
use crate::transport::{Transport, queue_name};

/// MsgFlo's default discovery period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60);
/// Environment variable overriding the period, in seconds.
pub const PERIOD_ENV: &str = "MSGFLO_DISCOVERY_PERIOD";

/// Why a message on `fbp` is not a participant discovery.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Not JSON, or not the shape of a discovery message.
    #[error("not a discovery message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Another protocol or command (MsgFlo's coordinator rejects these too).
    #[error("unknown FBP message {protocol}:{command}")]
    Unknown {
        /// `protocol` field.
        protocol: String,
        /// `command` field.
        command: String,
    },
}

/// One port in a discovery message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Port name.
    pub id: String,
    /// FBP type (`any`, `number`, ...).
    #[serde(rename = "type", default = "any")]
    pub type_: String,
    /// The queue (inport) or topic/exchange (outport); MsgFlo omits ports without one.
    #[serde(default)]
    pub queue: String,
    /// One line for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn any() -> String {
    "any".to_string()
}

/// The payload of a discovery message: one participant instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Unique instance id (`role-<random>`).
    pub id: String,
    /// Its role in the graph.
    pub role: String,
    /// Component name.
    pub component: String,
    /// One line for humans.
    #[serde(default)]
    pub label: String,
    /// Font Awesome icon name.
    #[serde(default)]
    pub icon: String,
    /// Inports with their queues.
    pub inports: Vec<Port>,
    /// Outports with their topics.
    pub outports: Vec<Port>,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    protocol: String,
    command: String,
    payload: T,
}

impl Participant {
    /// The participant running `definition` as `role`, with MsgFlo's queue names
    /// (`role.PORT`) and a fresh instance id.
    pub fn new(role: &str, definition: &Definition) -> Self {
        let ports = |ports: &[PortDef]| {
            ports
                .iter()
                .map(|p| Port {
                    id: p.id.clone(),
                    type_: if p.type_.is_empty() {
                        any()
                    } else {
                        p.type_.clone()
                    },
                    queue: queue_name(role, &p.id),
                    description: p.description.clone(),
                })
                .collect()
        };
        Participant {
            id: format!("{role}-{}", random_suffix()),
            role: role.to_string(),
            component: definition.component.clone(),
            label: definition.label.clone(),
            icon: if definition.icon.is_empty() {
                "file-word-o".to_string() // MsgFlo libraries' default
            } else {
                definition.icon.clone()
            },
            inports: ports(&definition.inports),
            outports: ports(&definition.outports),
        }
    }

    /// The discovery message announcing this participant.
    pub fn to_message(&self) -> Message {
        let envelope = Envelope {
            protocol: "discovery".into(),
            command: "participant".into(),
            payload: self,
        };
        // Serialising plain strings and vectors cannot fail.
        Message::json_text(serde_json::to_vec(&envelope).unwrap_or_default())
    }

    /// Parses a message seen on `fbp`.
    pub fn parse(data: &[u8]) -> Result<Participant, DiscoveryError> {
        let envelope: Envelope<serde_json::Value> = serde_json::from_slice(data)?;
        if envelope.protocol != "discovery" || envelope.command != "participant" {
            return Err(DiscoveryError::Unknown {
                protocol: envelope.protocol,
                command: envelope.command,
            });
        }
        Ok(serde_json::from_value(envelope.payload)?)
    }

    /// The queue of inport `port`, if it has one.
    pub fn inport_queue(&self, port: &str) -> Option<&str> {
        find(&self.inports, port)
    }

    /// The topic of outport `port`, if it has one.
    pub fn outport_queue(&self, port: &str) -> Option<&str> {
        find(&self.outports, port)
    }
}

fn find<'a>(ports: &'a [Port], id: &str) -> Option<&'a str> {
    ports
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(id) && !p.queue.is_empty())
        .map(|p| p.queue.as_str())
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

/// How often a participant re-sends discovery: `period / 2.2`, as MsgFlo does.
pub fn resend_interval(period: Duration) -> Duration {
    period.div_f64(2.2)
}

/// A random hex suffix for instance ids (not for security).
pub fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// Announces every participant now and then every `period / 2.2`, forever; calls
/// `first_sent` once per participant after its first announcement was accepted. Run it
/// as a task and abort it to stop.
pub async fn announce(
    transport: Arc<dyn Transport>,
    participants: Vec<Participant>,
    period: Duration,
    mut first_sent: impl FnMut(&Participant) + Send,
) {
    let messages: Vec<Message> = participants.iter().map(Participant::to_message).collect();
    let mut sent = vec![false; participants.len()];
    let mut ticker = tokio::time::interval(resend_interval(period));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (i, (p, msg)) in participants.iter().zip(&messages).enumerate() {
            match transport.announce(msg.clone()).await {
                Ok(()) if !sent[i] => {
                    sent[i] = true;
                    first_sent(p);
                }
                Ok(()) => {}
                Err(e) => tracing::warn!("discovery of '{}' not sent: {e}", p.role),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeat() -> Definition {
        Definition {
            component: "core/Repeat".into(),
            label: "Repeats input unchanged".into(),
            icon: String::new(),
            inports: vec![PortDef {
                id: "in".into(),
                type_: "any".into(),
                description: String::new(),
                schema: None,
                parameter: false,
            }],
            outports: vec![PortDef {
                id: "out".into(),
                type_: String::new(),
                description: "the same".into(),
                schema: None,
                parameter: false,
            }],
        }
    }

    #[test]
    fn builds_msgflo_envelope_and_queues() {
        let p = Participant::new("rep", &repeat());
        assert!(p.id.starts_with("rep-") && p.id.len() > 4);
        let v: serde_json::Value = serde_json::from_slice(&p.to_message().data).unwrap();
        assert_eq!(v["protocol"], "discovery");
        assert_eq!(v["command"], "participant");
        let payload = &v["payload"];
        assert_eq!(payload["role"], "rep");
        assert_eq!(payload["component"], "core/Repeat");
        assert_eq!(payload["icon"], "file-word-o");
        assert_eq!(
            payload["inports"],
            serde_json::json!([{"id": "in", "type": "any", "queue": "rep.IN"}])
        );
        assert_eq!(
            payload["outports"],
            serde_json::json!([{"id": "out", "type": "any", "queue": "rep.OUT", "description": "the same"}])
        );
    }

    #[test]
    fn parses_what_msgflo_libraries_send() {
        // msgflo-nodejs 0.11.1 and msgflo-python 0.4.1, as observed on the wire.
        let node = br#"{"protocol":"discovery","command":"participant","payload":{"component":"Repeat","icon":"file-word-o","label":"Repeats in data without changes","inports":[{"id":"in","type":"any","hidden":false,"queue":"a.IN"}],"outports":[{"id":"out","type":"any","hidden":false,"queue":"a.OUT"}],"role":"a","id":"a-9c7f28e5"}}"#;
        let p = Participant::parse(node).unwrap();
        assert_eq!((p.role.as_str(), p.inport_queue("IN")), ("a", Some("a.IN")));
        let py = br#"{"protocol": "discovery", "command": "participant", "payload": {"component": "PythonRepeat", "label": "x", "inports": [{"id": "in", "type": "any", "queue": "b/in"}], "outports": [{"id": "out", "type": "any", "queue": "b/out"}], "role": "b", "id": "b52418", "icon": "file-word-o"}}"#;
        let p = Participant::parse(py).unwrap();
        assert_eq!(p.outport_queue("out"), Some("b/out"));
        let round_trip = Participant::parse(&p.to_message().data).unwrap();
        assert_eq!(round_trip, p);
    }

    #[test]
    fn rejects_other_messages() {
        let other = br#"{"protocol":"runtime","command":"packet","payload":{}}"#;
        assert!(matches!(
            Participant::parse(other),
            Err(DiscoveryError::Unknown { .. })
        ));
        let missing_role = br#"{"protocol":"discovery","command":"participant","payload":{"id":"x","component":"c","inports":[],"outports":[]}}"#;
        assert!(Participant::parse(missing_role).is_err());
        assert!(Participant::parse(b"[]").is_err());
    }

    #[test]
    fn resends_at_period_over_2_2() {
        let i = resend_interval(DEFAULT_PERIOD);
        assert!((i.as_secs_f64() - 27.2727).abs() < 0.01, "{i:?}");
    }
}
