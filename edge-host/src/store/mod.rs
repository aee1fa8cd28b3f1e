//! Where an edge host keeps its last accepted deployment across restarts (feature `ota`):
//! the sequence (the floor replays are refused below) and, where there is room, the
//! component itself, so a restarted device runs what was deployed last.
//!
//! [`DeploymentStore`] has three implementations: `FlashDeploymentStore` (feature
//! `flash-store`) keeps it in two slots of a NOR flash region, surviving power cuts (a
//! device's store: esp-storage's `FlashStorage` on an ESP32; `MemoryNorFlash` is NOR
//! flash in RAM for tests); [`MemoryDeploymentStore`] keeps it in RAM (for tests, or a
//! device without storage, where a reboot forgets it); `FileDeploymentStore` (feature
//! `std`) in one file written atomically.
//!
//! A [`Deployer`](crate::ota::Deployer) given a store records every deployment it
//! accepts before the new component is swapped in; a failing store rejects the
//! deployment, so a device never runs code whose sequence it could forget.

#[cfg(feature = "std")]
mod file;
#[cfg(feature = "flash-store")]
mod flash;
mod memory;
#[cfg(feature = "flash-store")]
mod memory_flash;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

#[cfg(feature = "std")]
pub use file::FileDeploymentStore;
#[cfg(feature = "flash-store")]
pub use flash::{FlashDeploymentStore, FlashRegionError};
pub use memory::MemoryDeploymentStore;
#[cfg(feature = "flash-store")]
pub use memory_flash::{MemoryNorFlash, MemoryNorFlashError};

/// The last accepted deployment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its sequence: later deployments must be above it.
    pub sequence: u64,
    /// The component, if the store keeps components.
    pub component: Option<Vec<u8>>,
}

/// Durable storage of the last accepted deployment.
pub trait DeploymentStore {
    /// The last accepted deployment, or `None` if there was none.
    fn load(&mut self) -> Result<Option<Stored>, StoreError>;

    /// Records an accepted deployment. It must be durable when this returns (a power
    /// cut after it must not bring back an older sequence); writing the component is
    /// optional, the sequence is not. After an error the deployment is not accepted,
    /// though a store that could not undo a half-done write says a restart may load it;
    /// storing the same deployment again must then succeed.
    fn store(&mut self, sequence: u64, component: &[u8]) -> Result<(), StoreError>;
}

/// Why the store could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The storage failed.
    Io {
        /// What was being done: `read`, `write`, `sync`, `rename`...
        op: &'static str,
        /// Where (a path, a partition, a key).
        at: String,
        /// The storage's own error text.
        detail: String,
    },
    /// A sequence below the stored one, or the stored one with another component:
    /// refused by a store that must never lower its floor (the flash store).
    Backwards {
        /// Where.
        at: String,
        /// The sequence refused.
        sequence: u64,
        /// The sequence stored.
        stored: u64,
    },
    /// What is stored is not a deployment record.
    Corrupt {
        /// Where.
        at: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { op, at, detail } => write!(f, "{at}: cannot {op}: {detail}"),
            StoreError::Backwards {
                at,
                sequence,
                stored,
            } => write!(
                f,
                "{at}: sequence {sequence} is not above the stored sequence {stored}"
            ),
            StoreError::Corrupt { at, detail } => {
                write!(f, "{at}: not a deployment record: {detail}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StoreError {}
