//! The on-disk cache of compiled components: written once, reused, and a damaged entry
//! costs only a recompile.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use wasmflo_host::component::{DiskCache, KEEP_UNUSED_VERSIONS, Loader, Resolver, components_dir};
use wasmflo_host::runtime::{Runtime, RuntimeConfig};

fn cwasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(cwasm_files(&path));
        } else if path.extension().is_some_and(|e| e == "cwasm") {
            out.push(path);
        }
    }
    out
}

fn loader(cache: &Path) -> Loader {
    let config = RuntimeConfig {
        max_instances: 8,
        ..RuntimeConfig::default()
    };
    Loader::new(
        Runtime::new(&config).expect("engine"),
        Some(DiskCache::new(cache)),
    )
}

#[test]
fn compiled_once_then_reused_and_damage_is_repaired() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache-test");
    let _ = std::fs::remove_dir_all(&cache);
    let repeat = Resolver::new(components_dir(), ".")
        .resolve("core/Repeat")
        .expect("built");

    let first = loader(&cache).load(&repeat).expect("loads");
    let files = cwasm_files(&cache);
    assert_eq!(files.len(), 1, "one compiled artifact: {files:?}");
    assert!(
        files[0].ends_with(format!("{}.cwasm", first.hash)),
        "{files:?}"
    );
    let written = std::fs::metadata(&files[0])
        .and_then(|m| m.modified())
        .expect("mtime");

    // A second host process (a new engine) reuses the artifact instead of rewriting it.
    let second = loader(&cache).load(&repeat).expect("loads from cache");
    assert_eq!(second.definition, first.definition);
    let again = std::fs::metadata(&files[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(
        again, written,
        "the cached artifact was used, not rewritten"
    );

    // A damaged entry is ignored, the component recompiled, and the entry rewritten.
    std::fs::write(&files[0], b"not a compiled component").expect("damage");
    let third = loader(&cache)
        .load(&repeat)
        .expect("loads despite a damaged cache");
    assert_eq!(third.definition, first.definition);
    let repaired = std::fs::read(&files[0]).expect("entry");
    assert_ne!(repaired, b"not a compiled component");
}

/// A live-coding session loads a new version on every save: versions nobody uses are
/// dropped beyond the most recent few, versions in use never are.
#[test]
fn unused_versions_are_evicted_in_use_ones_kept() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache-evict-test");
    let _ = std::fs::remove_dir_all(&cache);
    let repeat = Resolver::new(components_dir(), ".")
        .resolve("core/Repeat")
        .expect("built");
    let bytes = std::fs::read(&repeat).expect("read");
    let version = |i: usize| {
        crate::live::with_custom_section(&bytes, "wasmflo-test-version", &i.to_le_bytes())
    };
    let loader = loader(&cache);
    let path = Path::new("Repeat.wasm");
    let in_use = loader.load_bytes(path, &version(0)).expect("loads");
    let edits = KEEP_UNUSED_VERSIONS + 8;
    for i in 1..=edits {
        let loaded = loader.load_bytes(path, &version(i)).expect("loads");
        assert!(
            loader.versions_in_memory() <= KEEP_UNUSED_VERSIONS + 2,
            "after {i} edits the loader holds {} versions",
            loader.versions_in_memory()
        );
        drop(loaded);
    }
    // The one in use, the kept unused ones, and the last edit (freed after the last load,
    // which is when eviction runs).
    assert_eq!(loader.versions_in_memory(), KEEP_UNUSED_VERSIONS + 2);
    // The version in use was kept: loading it again is the same compiled component.
    let again = loader.load_bytes(path, &version(0)).expect("loads");
    assert!(Arc::ptr_eq(&again, &in_use));
    // An evicted one loads again (from the disk cache), a different object than before.
    let evicted = loader.load_bytes(path, &version(1)).expect("loads again");
    assert_eq!(evicted.definition, in_use.definition);
    assert_ne!(evicted.hash, in_use.hash);
}
