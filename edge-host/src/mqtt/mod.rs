//! The edge host as a MsgFlo participant over MQTT (feature `mqtt`): what
//! `wasmflo-edge ROLE=COMPONENT.wasm --broker mqtt://...` runs.
//!
//! On the wire it is indistinguishable from the server host's `wasmflo participant`
//! (`wasmflo_host::transport::MqttTransport` and `wasmflo_host::participant`):
//!
//! - each inport is the MQTT topic `role.PORT`, subscribed at QoS 1 (through
//!   `$share/GROUP/` with `shared=GROUP` in the URL); each outport publishes at QoS 1 to
//!   `role.PORT`;
//! - a delivery is acknowledged (PUBACK, manual acks) only after the PUBACKs of every
//!   message published while handling it, and in handling order (`acks`); the session is
//!   persistent under the client id `wasmflo-edge-ROLE`, so what was not acked is
//!   redelivered after a restart or reconnection;
//! - a failed message is published to `dead-role.PORT` as `{"queue","reason","payload"}`
//!   with the server host's reason text (and as `{"error","port"}` on the component's
//!   `error` outport, if it has one), then acked; a fault that poisons the instance
//!   recreates it at once, with its parameters replayed (see [`crate::Participant`]);
//! - parameter ports are served before data ports; timers fire as the server host's do;
//! - discovery goes to `fbp` at QoS 0 at start and every `MSGFLO_DISCOVERY_PERIOD / 2.2`
//!   seconds (60 s by default); `ready ROLE` is printed on stdout once every inport is
//!   subscribed and the first discovery is written.
//!
//! With feature `ota` and at least one trusted key, deployments published to
//! `wasmflo/deploy/ROLE` (by `wasmflo deploy`) are verified by the participant's
//! [`Deployer`](crate::ota::Deployer) and swapped in between two messages; each verdict is
//! logged and published to `wasmflo/deploy/ROLE/status` (see [`wire::Verdict`]). With
//! `--state DIR` each accepted deployment (sequence and component) is written to
//! `DIR/ROLE.deployment` before the swap is reported, and a restart runs that component
//! and refuses deployments at or below its sequence (see [`crate::store`]).
//!
//! With feature `tls`, `mqtts://` connects over TLS (rustls), trusting the system's CAs
//! and those of `--ca-file` (or `WASMFLO_CA_FILE`), as the server host does.
//!
//! Module map: `url` (the broker URL), `tls` (the rustls configuration), [`wire`] (topics and JSON, pure), [`acks`] (when a
//! delivery may be acked, sans-IO), `session` (the loop that moves bytes).

pub mod acks;
mod session;
#[cfg(feature = "tls")]
mod tls;
mod url;
pub mod wire;

use std::fmt;
use std::string::String;
use std::vec::Vec;

pub use session::run;
pub use url::BrokerUrl;

use crate::error::LoadError;
use crate::limits::Limits;

/// What the MQTT participant runs and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The role (MsgFlo role, graph process name).
    pub role: String,
    /// The component file's bytes.
    pub component: Vec<u8>,
    /// Where they came from, for errors.
    pub source: String,
    /// `mqtt://...` or `mqtts://...`
    pub broker: String,
    /// PEM CA certificates trusted for `mqtts://` beside the system's (`--ca-file`);
    /// unused with `mqtt://`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Fuel and memory per instance.
    pub limits: Limits,
    /// ed25519 public keys whose deployments are accepted; none: deployments are not
    /// subscribed to.
    pub trust: Vec<[u8; 32]>,
    /// The sequence deployments must be above (at least; a stored one may be higher).
    pub sequence: u64,
    /// Where the last accepted deployment is kept across restarts (`--state DIR`; the
    /// file `DIR/ROLE.deployment`); none: in memory only.
    pub state: Option<std::path::PathBuf>,
    /// Largest deployed component accepted, in bytes.
    pub max_deploy: u64,
}

/// Why the MQTT participant could not run.
#[derive(Debug)]
pub enum MqttError {
    /// The broker URL is malformed or not MQTT.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The component does not load or start.
    Load {
        /// The component file.
        source: String,
        /// Why.
        error: LoadError,
    },
    /// The broker could not be reached or refused the connection.
    Connect {
        /// The URL, without password.
        url: String,
        /// Why.
        detail: String,
    },
    /// The broker refused to subscribe a topic.
    Subscribe {
        /// The topic.
        topic: String,
    },
    /// Deployments were asked for, but this build has no `ota` feature.
    NoOta,
    /// The deployment state (`--state`) cannot be read or prepared.
    #[cfg(feature = "ota")]
    State {
        /// Why.
        error: crate::store::StoreError,
    },
    /// The MQTT client stopped.
    Closed,
}

impl fmt::Display for MqttError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MqttError::InvalidUrl { url, detail } => {
                write!(f, "invalid broker URL '{url}': {detail}")
            }
            MqttError::Load { source, error } => write!(f, "{source}: {error}"),
            MqttError::Connect { url, detail } => {
                write!(f, "cannot connect to broker {url}: {detail}")
            }
            MqttError::Subscribe { topic } => {
                write!(f, "the broker refused the subscription to '{topic}'")
            }
            MqttError::NoOta => {
                f.write_str("--trust and --state need the `ota` feature, which this build lacks")
            }
            MqttError::Closed => f.write_str("the MQTT client stopped"),
            #[cfg(feature = "ota")]
            MqttError::State { error } => write!(f, "deployment state: {error}"),
        }
    }
}

impl std::error::Error for MqttError {}
