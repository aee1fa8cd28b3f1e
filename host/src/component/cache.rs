//! The on-disk cache of compiled components (`.cwasm`), keyed by content and engine.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components: `<dir>/<engine key>/<sha256>.cwasm`.
///
/// Only this host writes there (files are created atomically by rename), and
/// wasmtime checks that an artifact matches the engine's version and settings before
/// using it. Delete the directory at any time to clear it.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DiskCache { dir: dir.into() }
    }

    /// The default location: `$WASMFLO_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmflo`, else
    /// `~/.cache/wasmflo`. `None` if none of these can be determined.
    pub fn default_location() -> Option<Self> {
        if let Some(dir) = std::env::var_os("WASMFLO_CACHE_DIR") {
            return Some(Self::new(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(Self::new(base.join("wasmflo")))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, engine: &Engine, hash: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir
            .join(format!("{:016x}", h.finish()))
            .join(format!("{hash}.cwasm"))
    }

    /// The compiled component for content `hash`, if cached and usable.
    pub fn get(&self, engine: &Engine, hash: &str) -> Option<Component> {
        let bytes = std::fs::read(self.file(engine, hash)).ok()?;
        match deserialize(engine, &bytes) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!("ignoring unusable cache entry {hash}: {e}");
                None
            }
        }
    }

    /// Stores compiled bytes for content `hash`. Failures only cost a recompile later.
    pub fn put(&self, engine: &Engine, hash: &str, compiled: &[u8]) {
        let file = self.file(engine, hash);
        let write = || -> std::io::Result<()> {
            let dir = file.parent().unwrap_or(&self.dir);
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".{hash}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, compiled)?;
            std::fs::rename(&tmp, &file)
        };
        if let Err(e) = write() {
            tracing::debug!("cannot write compile cache {}: {e}", file.display());
        }
    }
}

/// Deserialises compiled component bytes produced by this host's own engine.
#[allow(unsafe_code)]
pub(crate) fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the bytes are either fresh output of `Engine::precompile_component` on this
    // engine, or a cache file this host wrote in its private cache directory. wasmtime
    // verifies the artifact's header, version and engine settings before use; the
    // remaining trust is that nobody else writes into the cache directory.
    unsafe { Component::deserialize(engine, bytes) }
}
