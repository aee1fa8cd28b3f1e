//! Signed over-the-air deployment, the device side: checking a deployment before it may
//! replace the running component (feature `ota`).
//!
//! A deployment is three byte strings: a manifest, its ed25519 signature and the component.
//! The manifest is UTF-8 text, one `key value` per line, in this order:
//!
//! ```text
//! wasmflo-deploy 1
//! role ROLE
//! sequence N
//! size BYTES
//! sha256 HEX
//! ```
//!
//! A [`Deployer`] accepts a deployment only if a trusted key signed the manifest bytes,
//! the role is its own, the sequence is above the last accepted one (no replays), the
//! component is no larger than allowed and its size and sha256 match the manifest. The
//! component is then loaded and started by [`Participant::deploy`](crate::Participant::deploy),
//! which swaps it in between two calls, or keeps the old one if anything fails.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};

use crate::error::LoadError;
use crate::fault::Fault;
use crate::store::{DeploymentStore, StoreError};

/// The first line of every manifest.
pub const MAGIC: &str = "wasmflo-deploy 1";

/// What a deployment claims about its component, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The role (process) the component is for.
    pub role: String,
    /// Strictly increasing per role; a deployment at or below the current one is a replay.
    pub sequence: u64,
    /// Component size in bytes.
    pub size: u64,
    /// sha256 of the component.
    pub sha256: [u8; 32],
}

impl Manifest {
    /// The manifest for `component`.
    pub fn for_component(role: &str, sequence: u64, component: &[u8]) -> Self {
        Manifest {
            role: role.into(),
            sequence,
            size: component.len() as u64,
            sha256: Sha256::digest(component).into(),
        }
    }

    /// The canonical text, the bytes a deployer signs.
    pub fn to_text(&self) -> String {
        let hex = crate::hex::encode(&self.sha256);
        format!(
            "{MAGIC}\nrole {}\nsequence {}\nsize {}\nsha256 {hex}\n",
            self.role, self.sequence, self.size
        )
    }

    /// Parses the canonical text.
    pub fn parse(bytes: &[u8]) -> Result<Self, OtaError> {
        let bad = |what: &str| OtaError::BadManifest(what.to_string());
        let text = core::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad("missing `wasmflo-deploy 1` header"));
        }
        let mut field = |key: &str| -> Result<&str, OtaError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| bad(&format!("expected `{key} ...`")))
        };
        let role = field("role")?.to_string();
        let sequence = field("sequence")?
            .parse()
            .map_err(|_| bad("sequence is not a number"))?;
        let size = field("size")?
            .parse()
            .map_err(|_| bad("size is not a number"))?;
        let hex = field("sha256")?;
        let mut sha256 = [0u8; 32];
        if hex.len() != 64 {
            return Err(bad("sha256 is not 64 hex digits"));
        }
        for (i, b) in sha256.iter_mut().enumerate() {
            *b = hex
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("sha256 is not hex"))?;
        }
        Ok(Manifest {
            role,
            sequence,
            size,
            sha256,
        })
    }
}

/// A deployment as received: manifest bytes, their signature, the component.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    /// The manifest's canonical text.
    pub manifest: &'a [u8],
    /// ed25519 signature of `manifest` (64 bytes).
    pub signature: &'a [u8],
    /// The component file.
    pub component: &'a [u8],
}

/// A deployment as it travels over MQTT, in one message:
///
/// ```text
/// <manifest text, as signed>
/// signature <128 hex digits: the ed25519 signature of the manifest>
/// <empty line>
/// <the component's bytes>
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The manifest's canonical text.
    pub manifest: &'a [u8],
    /// Its signature.
    pub signature: [u8; 64],
    /// The component file.
    pub component: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Reads an envelope; nothing is verified yet.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, OtaError> {
        const MARK: &[u8] = b"\nsignature ";
        let bad = |what: &str| OtaError::BadEnvelope(what.to_string());
        let at = bytes
            .windows(MARK.len())
            .position(|w| w == MARK)
            .ok_or_else(|| bad("no `signature` line"))?;
        let (manifest, rest) = bytes.split_at(at + 1);
        let rest = rest.get(MARK.len() - 1..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("unterminated `signature` line"))?;
        let (hex, rest) = rest.split_at(end);
        let component = rest
            .strip_prefix(b"\n\n")
            .ok_or_else(|| bad("no empty line after the signature"))?;
        let mut signature = [0u8; 64];
        if hex.len() != 128 {
            return Err(bad("the signature is not 128 hex digits"));
        }
        for (i, b) in signature.iter_mut().enumerate() {
            *b = hex
                .get(2 * i..2 * i + 2)
                .and_then(|h| core::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("the signature is not hex"))?;
        }
        Ok(Envelope {
            manifest,
            signature,
            component,
        })
    }

    /// The envelope's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.manifest.len() + 140 + self.component.len());
        out.extend_from_slice(self.manifest);
        out.extend_from_slice(b"signature ");
        out.extend_from_slice(crate::hex::encode(&self.signature).as_bytes());
        out.extend_from_slice(b"\n\n");
        out.extend_from_slice(self.component);
        out
    }

    /// The deployment it carries.
    pub fn deployment(&self) -> Deployment<'_> {
        Deployment {
            manifest: self.manifest,
            signature: &self.signature,
            component: self.component,
        }
    }
}

/// Why a deployment was rejected. The running component is unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtaError {
    /// The participant accepts no deployments (no [`Deployer`] was given).
    NotAccepted,
    /// No trusted key signed the manifest (or the signature is malformed).
    BadSignature,
    /// The manifest is not in the canonical form.
    BadManifest(String),
    /// The deployment is for another role.
    WrongRole {
        /// This participant's role.
        expected: String,
        /// The manifest's.
        got: String,
    },
    /// The sequence is not above the current one.
    Replay {
        /// The manifest's sequence.
        sequence: u64,
        /// The last accepted sequence.
        current: u64,
    },
    /// The component is larger than this device accepts.
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The component's size or sha256 differs from the manifest's.
    Mismatch,
    /// The component does not load.
    Load(LoadError),
    /// The new component fails to instantiate or start.
    Start(Fault),
    /// The new component faults on a parameter value the running one accepted.
    Parameter {
        /// The parameter port.
        port: String,
        /// The fault.
        fault: Fault,
    },
    /// The bytes received are not a deployment envelope (see [`Envelope::parse`]).
    BadEnvelope(String),
    /// The deployment could not be recorded in the [`DeploymentStore`], so it is not
    /// swapped in (a restart could forget its sequence).
    Store(StoreError),
}

impl fmt::Display for OtaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtaError::NotAccepted => f.write_str("this participant accepts no deployments"),
            OtaError::BadSignature => f.write_str("deployment not signed by a trusted key"),
            OtaError::BadManifest(what) => write!(f, "bad deployment manifest: {what}"),
            OtaError::WrongRole { expected, got } => {
                write!(f, "deployment for role '{got}', this is '{expected}'")
            }
            OtaError::Replay { sequence, current } => write!(
                f,
                "deployment sequence {sequence} is not above the current {current} (replay)"
            ),
            OtaError::TooLarge { size, max } => {
                write!(f, "component of {size} bytes exceeds the {max} allowed")
            }
            OtaError::Mismatch => f.write_str("component size or sha256 differs from the manifest"),
            OtaError::Load(e) => write!(f, "deployed component rejected: {e}"),
            OtaError::Start(e) => write!(f, "deployed component fails to start: {e}"),
            OtaError::Parameter { port, fault } => write!(
                f,
                "deployed component fails on parameter '{port}' ({}): {}",
                fault.kind, fault.detail
            ),
            OtaError::BadEnvelope(what) => write!(f, "not a deployment: {what}"),
            OtaError::Store(e) => write!(f, "deployment not recorded: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OtaError {}

/// Decides which deployments a participant accepts: trusted keys, role, sequence, size;
/// and records the accepted ones in its [`DeploymentStore`], if it has one.
pub struct Deployer {
    role: String,
    trusted: Vec<[u8; 32]>,
    sequence: u64,
    max_size: u64,
    store: Option<Box<dyn DeploymentStore>>,
}

impl fmt::Debug for Deployer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployer")
            .field("role", &self.role)
            .field("trusted", &self.trusted.len())
            .field("sequence", &self.sequence)
            .field("max_size", &self.max_size)
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl Deployer {
    /// A deployer for `role` trusting the ed25519 public keys `trusted`, having accepted
    /// deployments up to `sequence`, taking components of at most `max_size` bytes.
    pub fn new(role: &str, trusted: Vec<[u8; 32]>, sequence: u64, max_size: u64) -> Self {
        Deployer {
            role: role.into(),
            trusted,
            sequence,
            max_size,
            store: None,
        }
    }

    /// Records accepted deployments in `store` from now on, and raises the sequence to
    /// the stored one if that is higher (the floor survives restarts). Returns the
    /// stored deployment, whose component (if kept) is what the device should run.
    pub fn with_store(
        mut self,
        mut store: Box<dyn DeploymentStore>,
    ) -> Result<(Self, Option<crate::store::Stored>), StoreError> {
        let stored = store.load()?;
        if let Some(s) = &stored {
            self.sequence = self.sequence.max(s.sequence);
        }
        self.store = Some(store);
        Ok((self, stored))
    }

    /// The last accepted sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Checks everything but loading the component; returns the manifest.
    pub fn verify(&self, d: &Deployment<'_>) -> Result<Manifest, OtaError> {
        let signature = ed25519_compact::Signature::from_slice(d.signature)
            .map_err(|_| OtaError::BadSignature)?;
        let signed = self.trusted.iter().any(|key| {
            ed25519_compact::PublicKey::from_slice(key)
                .is_ok_and(|pk| pk.verify(d.manifest, &signature).is_ok())
        });
        if !signed {
            return Err(OtaError::BadSignature);
        }
        let manifest = Manifest::parse(d.manifest)?;
        if manifest.role != self.role {
            return Err(OtaError::WrongRole {
                expected: self.role.clone(),
                got: manifest.role,
            });
        }
        if manifest.sequence <= self.sequence {
            return Err(OtaError::Replay {
                sequence: manifest.sequence,
                current: self.sequence,
            });
        }
        let size = d.component.len() as u64;
        if size > self.max_size || manifest.size > self.max_size {
            return Err(OtaError::TooLarge {
                size: size.max(manifest.size),
                max: self.max_size,
            });
        }
        let digest: [u8; 32] = Sha256::digest(d.component).into();
        if size != manifest.size || digest != manifest.sha256 {
            return Err(OtaError::Mismatch);
        }
        Ok(manifest)
    }

    /// Records `manifest` as accepted (in the store first, if any): later deployments
    /// must have a higher sequence.
    pub(crate) fn accept(&mut self, manifest: &Manifest, component: &[u8]) -> Result<(), OtaError> {
        if let Some(store) = &mut self.store {
            store
                .store(manifest.sequence, component)
                .map_err(OtaError::Store)?;
        }
        self.sequence = manifest.sequence;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_reject_noise() {
        let manifest = Manifest::for_component("fmt", 3, b"\0asm").to_text();
        let envelope = Envelope {
            manifest: manifest.as_bytes(),
            signature: [0xab; 64],
            component: b"\0asm\nsignature x\n\n",
        };
        let bytes = envelope.to_bytes();
        let back = Envelope::parse(&bytes).expect("parses");
        assert_eq!(back.manifest, manifest.as_bytes());
        assert_eq!(back.signature, [0xab; 64]);
        assert_eq!(back.component, envelope.component);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for bad in [
            text.replace("signature ", "signed "),
            text.replace("\n\n\0asm", "\n\0asm"),
            text.replace("signature abab", "signature zzab"),
            text.replace("signature abab", "signature ab"),
        ] {
            assert!(
                matches!(
                    Envelope::parse(bad.as_bytes()),
                    Err(OtaError::BadEnvelope(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn manifests_round_trip_and_reject_noise() {
        let m = Manifest::for_component("fmt", 7, b"component");
        assert_eq!(Manifest::parse(m.to_text().as_bytes()), Ok(m.clone()));
        let text = m.to_text();
        for bad in [
            text.replace("wasmflo-deploy 1", "wasmflo-deploy 2"),
            text.replace("sequence 7", "sequence x"),
            text.replace("role fmt\n", ""),
            text.replace("sha256 ", "sha256 zz"),
        ] {
            assert!(Manifest::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
