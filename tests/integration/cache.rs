//! The on-disk cache of compiled components: written once, reused, and a damaged entry
//! costs only a recompile.

use std::path::{Path, PathBuf};

use wasmflo_host::component::{DiskCache, Loader, Resolver, components_dir};
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
