//! Signed over-the-air deployment, the sending side (`wasmflo deploy`): key pairs, the
//! signed manifest the edge host verifies (`wasmflo_edge::ota`), the envelope it travels
//! in over MQTT, and the verdicts edge hosts report back.
//!
//! A deployment for role `R` is one MQTT message, published **retained** at QoS 1 to
//! `wasmflo/deploy/R`:
//!
//! ```text
//! wasmflo-deploy 1
//! role R
//! sequence N
//! size BYTES
//! sha256 HEX
//! signature <128 hex digits: ed25519 over the five lines above>
//!
//! <the component's bytes>
//! ```
//!
//! Retained, so an edge host that is offline (or not yet started) when it is sent gets
//! it when it subscribes, and one that restarts from its own component file comes back
//! to the last deployment. Replays are the edge host's to refuse: it accepts only a
//! sequence above the last one it accepted (and the one it runs, seen again after a
//! reconnection, is ignored). Every edge host of the role publishes its verdict to
//! `wasmflo/deploy/R/status` ([`Verdict`], naming the host by its MQTT client id); the
//! sender waits for as many as it expects, and a deployment no host accepted is cleared
//! from the broker, so devices do not re-check it on every reconnection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use ed25519_compact::{KeyPair, Seed};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::transport::{MqttTransport, Transport, TransportError};

/// The first line of every manifest.
pub const MAGIC: &str = "wasmflo-deploy 1";

/// Why a deployment could not be made or delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A key file is unreadable, malformed, or cannot be written.
    #[error("{path}: {detail}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The system has no randomness to make a key from.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// The broker failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// No edge host of the role reported a verdict in time.
    #[error(
        "no verdict from an edge host of '{role}' within {waited:?}; the deployment stays retained on the broker and is applied when one connects"
    )]
    NoVerdict {
        /// The role.
        role: String,
        /// How long the sender waited.
        waited: Duration,
    },
}

/// Where deployments for `role` are published (retained, QoS 1).
pub fn deploy_topic(role: &str) -> String {
    format!("wasmflo/deploy/{role}")
}

/// Where edge hosts of `role` report each deployment's verdict.
pub fn status_topic(role: &str) -> String {
    format!("wasmflo/deploy/{role}/status")
}

/// An ed25519 key pair that signs deployments.
#[derive(Clone)]
pub struct SigningKey(KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from the system's randomness.
    pub fn generate() -> Result<Self, DeployError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| DeployError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// The key of a 32-byte seed (deterministic; for tests).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(KeyPair::from_seed(Seed::new(seed)))
    }

    /// Reads a secret key file: the seed as 64 hex digits.
    pub fn read(path: &Path) -> Result<Self, DeployError> {
        let bad = |detail: String| DeployError::Key {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read the secret key: {e}")))?;
        let seed = unhex32(text.trim())
            .ok_or_else(|| bad("not a secret key (64 hex digits, as --keygen writes)".into()))?;
        Ok(Self::from_seed(seed))
    }

    /// Writes the secret key to `path` (readable by the owner only; never overwrites)
    /// and the public key to `path.pub`.
    pub fn write(&self, path: &Path) -> Result<PathBuf, DeployError> {
        let bad = |path: &Path, e: std::io::Error| DeployError::Key {
            path: path.to_path_buf(),
            detail: format!("cannot write: {e}"),
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| bad(path, e))?;
        let seed = hex(&self.0.sk.seed()[..]);
        std::io::Write::write_all(&mut file, format!("{seed}\n").as_bytes())
            .map_err(|e| bad(path, e))?;
        let mut public = path.as_os_str().to_owned();
        public.push(".pub");
        let public = PathBuf::from(public);
        std::fs::write(&public, format!("{}\n", self.public_hex())).map_err(|e| bad(&public, e))?;
        Ok(public)
    }

    /// The public key as 64 hex digits (what `wasmflo-edge --trust` reads).
    pub fn public_hex(&self) -> String {
        hex(&self.0.pk[..])
    }

    /// The deployment of `component` to `role` at `sequence`, signed: the envelope bytes.
    pub fn envelope(&self, role: &str, sequence: u64, component: &[u8]) -> Vec<u8> {
        let manifest = manifest(role, sequence, component);
        let signature = self.0.sk.sign(manifest.as_bytes(), None);
        let mut out = Vec::with_capacity(manifest.len() + 140 + component.len());
        out.extend_from_slice(manifest.as_bytes());
        out.extend_from_slice(format!("signature {}\n\n", hex(&signature[..])).as_bytes());
        out.extend_from_slice(component);
        out
    }
}

/// The manifest text of `component` for `role` at `sequence`: the bytes that are signed.
pub fn manifest(role: &str, sequence: u64, component: &[u8]) -> String {
    format!(
        "{MAGIC}\nrole {role}\nsequence {sequence}\nsize {}\nsha256 {}\n",
        component.len(),
        hex(&Sha256::digest(component))
    )
}

/// A deployment's id in verdicts: the sha256 of its envelope, hex.
pub fn deployment_id(envelope: &[u8]) -> String {
    hex(&Sha256::digest(envelope))
}

/// A sequence number from the clock (milliseconds since 1970), for deployments sent
/// without `--sequence`: increasing as long as the sender's clock does.
pub fn clock_sequence() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// An edge host's verdict on one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Verdict {
    /// The role.
    pub role: String,
    /// The reporting participant's instance id.
    pub id: String,
    /// The reporting edge host's MQTT client id (stable across its restarts); absent
    /// from older edge hosts.
    #[serde(default)]
    pub client: Option<String>,
    /// [`deployment_id`] of the deployment judged.
    pub deployment: String,
    /// Its sequence, when the manifest could be read.
    #[serde(default)]
    pub sequence: Option<u64>,
    /// Swapped in, or rejected.
    pub accepted: bool,
    /// The component now running, when accepted.
    #[serde(default)]
    pub component: Option<String>,
    /// Why it was rejected.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Verdict {
    /// Who judged: the client id, or the instance id of an edge host that sends none.
    pub fn host(&self) -> &str {
        self.client.as_deref().unwrap_or(&self.id)
    }
}

/// Publishes `envelope` (retained) for `role` and waits up to `wait` for verdicts on it
/// from `expect` edge hosts (told apart by [`Verdict::host`]); returns those that came,
/// fewer than `expect` if the time ran out. Unless one of them accepted it, the
/// deployment is cleared from the broker, so devices do not re-check a bad one on every
/// reconnection.
pub async fn deliver(
    transport: &MqttTransport,
    role: &str,
    envelope: Vec<u8>,
    wait: Duration,
    expect: usize,
) -> Result<Vec<Verdict>, DeployError> {
    let status = status_topic(role);
    transport.declare_queue(&status).await?;
    let mut verdicts = transport.subscribe(&status).await?;
    let id = deployment_id(&envelope);
    transport
        .publish_retained(&deploy_topic(role), Bytes::from(envelope))
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut got: Vec<Verdict> = Vec::new();
    while got.len() < expect.max(1) {
        let next = tokio::time::timeout_at(deadline, verdicts.next()).await;
        let delivery = match next {
            Ok(Some(d)) => d,
            Ok(None) => return Err(TransportError::Closed.into()),
            Err(_) => break,
        };
        let verdict = serde_json::from_slice::<Verdict>(&delivery.message.data);
        delivery.ack();
        match verdict {
            // A host judging it again (after a reconnection) counts once.
            Ok(v) if v.deployment == id && got.iter().all(|g| g.host() != v.host()) => {
                got.push(v);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("ignoring a malformed verdict on {status}: {e}"),
        }
    }
    if got.is_empty() {
        return Err(DeployError::NoVerdict {
            role: role.to_string(),
            waited: wait,
        });
    }
    if !got.iter().any(|v| v.accepted) {
        clear(transport, role).await?;
    }
    Ok(got)
}

/// Removes the retained deployment of `role` from the broker.
pub async fn clear(transport: &MqttTransport, role: &str) -> Result<(), DeployError> {
    transport
        .publish_retained(&deploy_topic(role), Bytes::new())
        .await?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    crate::component::hex(bytes)
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_a_signed_manifest_then_the_component() {
        let key = SigningKey::from_seed([1; 32]);
        let env = key.envelope("fmt", 7, b"\0asm");
        let text = String::from_utf8_lossy(&env);
        let (head, component) = text.split_once("\n\n").expect("blank line");
        assert_eq!(component, "\0asm");
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(
            lines[..4],
            ["wasmflo-deploy 1", "role fmt", "sequence 7", "size 4"]
        );
        assert!(lines[4].starts_with("sha256 ") && lines[4].len() == 7 + 64);
        let sig = lines[5].strip_prefix("signature ").expect("signature line");
        assert_eq!(sig.len(), 128);
        let manifest = manifest("fmt", 7, b"\0asm");
        let signature = ed25519_compact::Signature::from_slice(&unhex(sig)).expect("64 bytes");
        let public =
            ed25519_compact::PublicKey::from_slice(&unhex32(&key.public_hex()).expect("hex"))
                .expect("key");
        assert!(public.verify(manifest.as_bytes(), &signature).is_ok());
    }

    #[test]
    fn keys_round_trip_through_files() {
        let dir = std::env::temp_dir().join(format!("wasmflo-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("deploy.key");
        let _ = std::fs::remove_file(&path);
        let key = SigningKey::generate().expect("random");
        let public = key.write(&path).expect("write");
        assert!(key.write(&path).is_err(), "never overwrites a secret key");
        let again = SigningKey::read(&path).expect("read");
        assert_eq!(again.public_hex(), key.public_hex());
        assert_eq!(
            std::fs::read_to_string(&public).expect("pub").trim(),
            key.public_hex()
        );
        std::fs::write(&path, "nope").expect("write");
        assert!(SigningKey::read(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }
}
