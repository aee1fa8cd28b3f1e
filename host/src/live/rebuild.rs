//! `--watch` for Rust sources: rebuilds a component from its guest crate when a source
//! file changes.
//!
//! A component file in use is matched to a guest crate of this workspace (a crate with
//! `[package.metadata.wasmflo] component = "ns/Name"` under `components/` or
//! `tests/guests/` whose built file is that path, inside the workspace's target dir or
//! the components dir). Its `src/` folder and `Cargo.toml`
//! are watched; a change, once quiet for [`QUIET`], runs the same build `cargo build`
//! runs (`wasmflo-guest-build`), with cargo's progress on stderr. The rebuilt file is
//! written by rename and picked up by the [watcher](super::watcher) like any edit.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};
use wasmflo_guest_build::{
    BuildOptions, GuestCrate, build_components, component_path, discover, workspace_target_dir,
};

use super::LiveError;

/// Source edits closer together than this trigger one build.
pub const QUIET: Duration = Duration::from_millis(150);

/// The workspace this binary was built from, if it is still there.
fn workspace_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("Cargo.toml")
        .is_file()
        .then(|| root.to_path_buf())
}

/// Where this workspace keeps guest crates: `components/<lang>/` and `tests/guests/`.
fn guest_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("tests/guests")];
    if let Ok(langs) = std::fs::read_dir(root.join("components")) {
        dirs.extend(langs.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    dirs
}

/// The guest crates whose built component is one of `files`, with the folder it is
/// built into.
pub fn source_crates(files: &HashSet<PathBuf>) -> Vec<(GuestCrate, PathBuf)> {
    let Some(root) = workspace_root() else {
        return Vec::new();
    };
    let dirs = guest_dirs(&root);
    let Ok(guests) = discover(&dirs) else {
        return Vec::new();
    };
    // Only files this workspace builds: a copy elsewhere is someone else's to rebuild.
    let target = super::canonical(&workspace_target_dir(&root));
    let components = super::canonical(&crate::component::components_dir());
    let mut found = Vec::new();
    for file in files {
        for guest in &guests {
            // `<out>/<ns>/<Name>.wasm`: the out dir is the file's ancestor that many levels up.
            let depth = guest.component.split('/').count();
            let Some(out) = file.ancestors().nth(depth) else {
                continue;
            };
            let ours = out.starts_with(&target) || out.starts_with(&components);
            if ours && &component_path(out, &guest.component) == file {
                found.push((guest.clone(), out.to_path_buf()));
            }
        }
    }
    found
}

/// The main source file of component `name` (`src/lib.rs` of its guest crate in this
/// workspace), with its text.
pub fn source_of(name: &str) -> Option<(PathBuf, String)> {
    let root = workspace_root()?;
    let dirs = guest_dirs(&root);
    let guest = discover(&dirs)
        .ok()?
        .into_iter()
        .find(|g| g.component == name)?;
    let file = guest.dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&file).ok()?;
    Some((file, code))
}

/// Replaces the main source file of component `name` with `code` (when different) and
/// rebuilds it; returns the component file. Errors say what failed, compiler output
/// included.
pub fn build_source(name: &str, code: &str) -> Result<PathBuf, String> {
    let root = workspace_root().ok_or("this runtime has no source workspace to build in")?;
    let (file, old) = source_of(name)
        .ok_or_else(|| format!("no Rust source for component '{name}' in this workspace"))?;
    let dir = file
        .parent()
        .and_then(Path::parent)
        .ok_or("unexpected crate layout")?
        .to_path_buf();
    let out = if dir.starts_with(root.join("components")) {
        crate::component::components_dir()
    } else {
        workspace_target_dir(&root).join("test-components")
    };
    if old != code {
        std::fs::write(&file, code).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    eprintln!("wasmflo: building {name} from {} ...", dir.display());
    let built = build_components(&BuildOptions::new(&root, &out).search(&dir))
        .map_err(|e| format!("building {name} failed: {e}"))?;
    built
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.path)
        .ok_or_else(|| format!("building {name} produced no component"))
}

/// Watches the source crates of `files` and rebuilds on change.
pub fn watch_sources(
    files: &HashSet<PathBuf>,
) -> Result<Vec<notify::RecommendedWatcher>, LiveError> {
    let Some(root) = workspace_root() else {
        tracing::info!("--watch: no source workspace; watching component files only");
        return Ok(Vec::new());
    };
    let mut watchers = Vec::new();
    for (guest, out) in source_crates(files) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            if event.paths.iter().any(|p| is_source(p)) {
                let _ = tx.send(());
            }
        })
        .map_err(|source| LiveError::Watch {
            path: guest.dir.clone(),
            source,
        })?;
        for watched in [guest.dir.join("src"), guest.dir.join("Cargo.toml")] {
            if watched.exists() {
                watcher
                    .watch(&watched, RecursiveMode::Recursive)
                    .map_err(|source| LiveError::Watch {
                        path: watched.clone(),
                        source,
                    })?;
            }
        }
        tracing::info!(
            "watching the source of {} in {}",
            guest.component,
            guest.dir.display()
        );
        let root = root.clone();
        let spawned = std::thread::Builder::new()
            .name("wasmflo-rebuild".into())
            .spawn(move || rebuild_loop(&root, &guest, &out, &rx));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the rebuild thread: {e}");
        }
        watchers.push(watcher);
    }
    Ok(watchers)
}

fn is_source(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // Editors' swap and backup files are not sources.
    !(name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp"))
}

/// Waits for source changes, lets them go quiet, and rebuilds; one build at a time.
fn rebuild_loop(root: &Path, guest: &GuestCrate, out: &Path, rx: &std::sync::mpsc::Receiver<()>) {
    while rx.recv().is_ok() {
        while rx.recv_timeout(QUIET).is_ok() {}
        eprintln!(
            "wasmflo: rebuilding {} from {} ...",
            guest.component,
            guest.dir.display()
        );
        let started = Instant::now();
        let opts = BuildOptions::new(root, out).search(&guest.dir);
        match build_components(&opts) {
            Ok(built) => {
                for c in built {
                    eprintln!(
                        "wasmflo: built {} ({} bytes) in {:.1}s",
                        c.name,
                        c.size,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Err(e) => eprintln!(
                "wasmflo: rebuilding {} failed: {e}; keeping the running version",
                guest.component
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_component_maps_to_its_source_crate() {
        let file = crate::component::components_dir().join("temperature/Format.wasm");
        let files = HashSet::from([file.clone()]);
        let found = source_crates(&files);
        assert_eq!(found.len(), 1, "{found:?}");
        let (guest, out) = &found[0];
        assert_eq!(guest.component, "temperature/Format");
        assert!(guest.dir.ends_with("components/rust/temperature-format"));
        assert_eq!(component_path(out, &guest.component), file);
        let elsewhere = HashSet::from([PathBuf::from("/elsewhere/temperature/Format.wasm")]);
        assert!(source_crates(&elsewhere).is_empty());
    }

    #[test]
    fn editor_scratch_files_are_not_sources() {
        assert!(is_source(Path::new("src/lib.rs")));
        assert!(!is_source(Path::new("src/.lib.rs.swp")));
        assert!(!is_source(Path::new("src/lib.rs~")));
    }
}
