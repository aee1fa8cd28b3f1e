//! The binding lists coordinators publish on the broker, and how `wasmflo bindings`
//! makes one picture of them (pure: no I/O here).
//!
//! Every coordinator (`run --broker`, `setup --forever`) publishes its whole list under
//! its own key, at start, after each change and every discovery period / 2.2, through
//! [`Transport::put_state`](crate::transport::Transport::put_state):
//! - MQTT: a retained QoS 1 message on `wasmflo/bindings/<key>`; a clean stop clears it
//!   (an empty retained message).
//! - AMQP: a message on the durable queue `wasmflo.bindings` with header `x-wasmflo-key`,
//!   expiring after [`STALE_AFTER`] periods; a clean stop publishes an empty one. Readers
//!   take every message with `basic.get` and never ack, so the queue keeps them.
//!
//! A one-shot `wasmflo setup` (no `--forever`) on AMQP publishes its list once, with
//! period 0 (never stale) and an expiry of [`ONE_SHOT_TTL`], under a key fixed by the graph
//! file, so running it again replaces it (on MQTT its forwards end with it, so it
//! publishes nothing). `wasmflo bindings --forget KEY` removes a list.
//!
//! The newest entry per key wins; a list not refreshed for [`STALE_AFTER`] periods comes
//! from a coordinator that died without clearing it, and is shown as stale.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::message::Message;

/// Periods without a refresh after which a list is stale.
pub const STALE_AFTER: u32 = 3;

/// How a binding delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundKind {
    /// Every bound queue gets each message.
    Pubsub,
    /// The target's consumers share the messages.
    Roundrobin,
    /// The source is a queue's dead letters.
    Deadletter,
}

impl BoundKind {
    /// The lower-case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BoundKind::Pubsub => "pubsub",
            BoundKind::Roundrobin => "roundrobin",
            BoundKind::Deadletter => "deadletter",
        }
    }
}

/// One binding a coordinator made (or, for its own processes, its network made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// Source topic (exchange), or `dead-<queue>` for dead letters.
    pub src: String,
    /// Target queue.
    pub tgt: String,
    /// Delivery kind.
    #[serde(rename = "type")]
    pub kind: BoundKind,
}

/// What one coordinator has bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingList {
    /// The coordinator's key: `<command>-<graph>-<host>-<pid>`.
    pub coordinator: String,
    /// `run` or `setup`.
    pub command: String,
    /// The graph file.
    pub graph: String,
    /// When this list was published, milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// How often it is re-published, in milliseconds; 0 for a one-shot `setup`, whose
    /// bindings (on AMQP) stay after it exits (see the module docs).
    pub period_ms: u64,
    /// The bindings.
    pub bindings: Vec<Bound>,
}

impl BindingList {
    /// The message carrying this list.
    pub fn to_message(&self) -> Message {
        // Plain strings and numbers always serialise.
        Message::json_text(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Whether the list was not refreshed for [`STALE_AFTER`] periods at `now_ms`. A list
    /// with no period (a one-shot `setup`'s, whose bindings stay after it exits) never is.
    pub fn stale(&self, now_ms: u64) -> bool {
        self.period_ms > 0
            && now_ms.saturating_sub(self.updated_ms)
                > self.period_ms.saturating_mul(STALE_AFTER.into())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long a published list lives on AMQP: [`STALE_AFTER`] periods, or
/// [`ONE_SHOT_TTL`] for a one-shot setup's list (period zero).
pub fn ttl(period: Duration) -> Duration {
    if period.is_zero() {
        ONE_SHOT_TTL
    } else {
        period.saturating_mul(STALE_AFTER)
    }
}

/// How long a one-shot setup's list, and the empty entry `wasmflo bindings --forget`
/// publishes, stay on AMQP. The state queue cannot drop one key's older entries, so
/// nothing there is kept forever; a removal outlives what it removes.
pub const ONE_SHOT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The current lists from a store's entries (oldest first): the newest per key, without
/// removed ones (empty) or ones that do not parse; sorted by coordinator.
pub fn latest(entries: Vec<(String, Message)>) -> Vec<BindingList> {
    let mut by_key: std::collections::BTreeMap<String, Option<BindingList>> = Default::default();
    for (key, msg) in entries {
        let list = if msg.data.is_empty() {
            None
        } else {
            match serde_json::from_slice::<BindingList>(&msg.data) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::debug!("ignoring binding list '{key}': {e}");
                    continue;
                }
            }
        };
        let newer = match (by_key.get(&key), &list) {
            (Some(Some(old)), Some(new)) => new.updated_ms >= old.updated_ms,
            _ => true,
        };
        if newer {
            by_key.insert(key, list);
        }
    }
    by_key.into_values().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(key: &str, updated_ms: u64, n: usize) -> BindingList {
        BindingList {
            coordinator: key.into(),
            command: "run".into(),
            graph: "g.fbp".into(),
            updated_ms,
            period_ms: 1000,
            bindings: (0..n)
                .map(|i| Bound {
                    src: format!("a{i}.OUT"),
                    tgt: format!("b{i}.IN"),
                    kind: BoundKind::Pubsub,
                })
                .collect(),
        }
    }

    #[test]
    fn newest_per_key_wins_and_empty_removes() {
        let entries = vec![
            ("x".to_string(), list("x", 10, 1).to_message()),
            ("y".to_string(), list("y", 10, 1).to_message()),
            ("x".to_string(), list("x", 20, 2).to_message()),
            ("y".to_string(), Message::json_text(Vec::<u8>::new())),
            ("z".to_string(), Message::json_text(b"not json".to_vec())),
        ];
        let got = latest(entries);
        assert_eq!(got, vec![list("x", 20, 2)]);
    }

    #[test]
    fn stale_after_three_periods() {
        let l = list("x", 10_000, 0);
        assert!(!l.stale(13_000));
        assert!(l.stale(13_001));
        // A one-shot setup's list (no period) never is.
        let once = BindingList { period_ms: 0, ..l };
        assert!(!once.stale(u64::MAX));
        assert_eq!(ttl(Duration::ZERO), ONE_SHOT_TTL);
    }

    #[test]
    fn json_names_the_type() {
        let v: serde_json::Value =
            serde_json::from_slice(&list("x", 1, 1).to_message().data).expect("JSON");
        assert_eq!(v["bindings"][0]["type"], "pubsub");
    }
}
