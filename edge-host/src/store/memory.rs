//! A [`DeploymentStore`] in RAM: what a device without storage has (a reboot forgets
//! it), and what tests use.

use alloc::vec::Vec;

use super::{DeploymentStore, StoreError, Stored};

/// Keeps the last accepted deployment in memory; optionally without the component.
#[derive(Debug, Clone, Default)]
pub struct MemoryDeploymentStore {
    stored: Option<Stored>,
    sequence_only: bool,
}

impl MemoryDeploymentStore {
    /// An empty store that keeps components.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that keeps only sequences, as a device with no room for a
    /// second component would.
    pub fn sequence_only() -> Self {
        MemoryDeploymentStore {
            stored: None,
            sequence_only: true,
        }
    }
}

impl DeploymentStore for MemoryDeploymentStore {
    fn load(&mut self) -> Result<Option<Stored>, StoreError> {
        Ok(self.stored.clone())
    }

    fn store(&mut self, sequence: u64, component: &[u8]) -> Result<(), StoreError> {
        let component = (!self.sequence_only).then(|| Vec::from(component));
        self.stored = Some(Stored {
            sequence,
            component,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_deployment() {
        let mut s = MemoryDeploymentStore::new();
        assert_eq!(s.load(), Ok(None));
        s.store(5, b"five").expect("store");
        s.store(6, b"six").expect("store");
        let got = s.load().expect("load").expect("stored");
        assert_eq!(
            (got.sequence, got.component.as_deref()),
            (6, Some(&b"six"[..]))
        );
        let mut s = MemoryDeploymentStore::sequence_only();
        s.store(7, b"seven").expect("store");
        assert_eq!(s.load().expect("load").map(|s| s.component), Some(None));
    }
}
