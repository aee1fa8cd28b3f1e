//! A [`DeploymentStore`] in one file (feature `std`): what `wasmflo-edge --state DIR`
//! uses. The file is replaced atomically — written beside it, synced, renamed over it,
//! and the directory synced — so a crash leaves the old record or the new one, never a
//! mix. Its format:
//!
//! ```text
//! wasmflo-edge-deployment 1
//! sequence N
//! size BYTES
//! sha256 HEX
//!
//! <the component's bytes>
//! ```
//!
//! The sha256 catches a damaged file; a damaged or foreign file is an error, never
//! silently a sequence of 0.

use std::format;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::string::ToString;
use std::vec::Vec;

use sha2::{Digest, Sha256};

use super::{DeploymentStore, StoreError, Stored};

const MAGIC: &str = "wasmflo-edge-deployment 1";

/// Keeps the last accepted deployment in the file at a path.
#[derive(Debug, Clone)]
pub struct FileDeploymentStore {
    path: PathBuf,
}

impl FileDeploymentStore {
    /// A store in the file `path` (created on the first deployment).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileDeploymentStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str, e: &std::io::Error) -> StoreError {
        StoreError::Io {
            op,
            at: self.path.display().to_string(),
            detail: e.to_string(),
        }
    }

    fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::Corrupt {
            at: self.path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<Stored, StoreError> {
        let end = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| self.corrupt("no empty line after the header"))?;
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| self.corrupt("not UTF-8"))?;
        let component = &bytes[end + 2..];
        let mut lines = head.lines();
        if lines.next() != Some(MAGIC) {
            return Err(self.corrupt(&format!("missing `{MAGIC}` header")));
        }
        let mut field = |key: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| self.corrupt(&format!("expected `{key} ...`")))
        };
        let sequence = field("sequence")?
            .parse::<u64>()
            .map_err(|_| self.corrupt("sequence is not a number"))?;
        let size = field("size")?
            .parse::<usize>()
            .map_err(|_| self.corrupt("size is not a number"))?;
        let sha256 = field("sha256")?.to_string();
        if size != component.len() || sha256 != crate::hex::encode(&Sha256::digest(component)) {
            return Err(self.corrupt("the component's size or sha256 differs from the header"));
        }
        Ok(Stored {
            sequence,
            component: Some(component.to_vec()),
        })
    }
}

impl DeploymentStore for FileDeploymentStore {
    fn load(&mut self) -> Result<Option<Stored>, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => self.parse(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read", &e)),
        }
    }

    fn store(&mut self, sequence: u64, component: &[u8]) -> Result<(), StoreError> {
        let mut bytes = Vec::with_capacity(component.len() + 160);
        bytes.extend_from_slice(
            format!(
                "{MAGIC}\nsequence {sequence}\nsize {}\nsha256 {}\n\n",
                component.len(),
                crate::hex::encode(&Sha256::digest(component))
            )
            .as_bytes(),
        );
        bytes.extend_from_slice(component);
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp).map_err(|e| self.io("create", &e))?;
        file.write_all(&bytes).map_err(|e| self.io("write", &e))?;
        file.sync_all().map_err(|e| self.io("sync", &e))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(|e| self.io("rename", &e))?;
        // The rename is durable only once the directory is synced.
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        #[cfg(unix)]
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("sync the directory of", &e))?;
        #[cfg(not(unix))]
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = std::env::temp_dir().join(format!("wasmflo-edge-store-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let mut s = FileDeploymentStore::new(dir.join("fmt.deployment"));
        assert_eq!(s.load(), Ok(None));
        s.store(5, b"\0asm\n\nfive").expect("store");
        s.store(6, b"\0asm\n\nsix").expect("store");
        let got = s.load().expect("load").expect("stored");
        assert_eq!(got.sequence, 6);
        assert_eq!(got.component.as_deref(), Some(&b"\0asm\n\nsix"[..]));
        assert!(!dir.join("fmt.deployment.tmp").exists());
        let mut bytes = fs::read(s.path()).expect("read");
        *bytes.last_mut().expect("byte") ^= 1;
        fs::write(s.path(), &bytes).expect("write");
        assert!(matches!(s.load(), Err(StoreError::Corrupt { .. })));
        fs::write(s.path(), b"sequence 9\n\n").expect("write");
        assert!(matches!(s.load(), Err(StoreError::Corrupt { .. })));
        let _ = fs::remove_dir_all(&dir);
    }
}
