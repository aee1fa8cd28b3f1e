//! Finds guest crates: folders whose Cargo.toml has `[package.metadata.wasmflo] component`
//! (and optionally `target`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::BuildError;
use crate::cargo::GuestTarget;

/// A guest crate found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCrate {
    /// The component name, such as `core/Repeat`.
    pub component: String,
    /// The Cargo package name.
    pub crate_name: String,
    /// The library target name (package name with `-` as `_` unless `[lib] name` is set).
    pub lib_name: String,
    /// The crate folder.
    pub dir: PathBuf,
    /// The target it is compiled for (`wasm32-unknown-unknown` unless it says otherwise).
    pub target: GuestTarget,
}

#[derive(Deserialize)]
struct Manifest {
    package: Option<Package>,
    lib: Option<Lib>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    wasmflo: Option<Wasmflo>,
}

#[derive(Deserialize)]
struct Wasmflo {
    component: String,
    #[serde(default)]
    target: GuestTarget,
}

#[derive(Deserialize)]
struct Lib {
    name: Option<String>,
}

/// Guest crates in each of `dirs` or in its immediate subfolders, sorted by component name.
///
/// A missing search directory is skipped; two crates with one component name are an error.
pub fn discover(dirs: &[PathBuf]) -> Result<Vec<GuestCrate>, BuildError> {
    let mut found: BTreeMap<String, GuestCrate> = BTreeMap::new();
    for dir in dirs {
        let mut candidates = vec![dir.clone()];
        if dir.is_dir() {
            let entries = std::fs::read_dir(dir).map_err(|e| BuildError::io(dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| BuildError::io(dir, e))?;
                if entry.path().is_dir() {
                    candidates.push(entry.path());
                }
            }
        }
        for candidate in candidates {
            let Some(guest) = read_guest(&candidate)? else {
                continue;
            };
            if let Some(first) = found.get(&guest.component) {
                if first.dir == guest.dir {
                    continue;
                }
                return Err(BuildError::DuplicateComponent {
                    component: guest.component,
                    first: first.crate_name.clone(),
                    second: guest.crate_name,
                });
            }
            found.insert(guest.component.clone(), guest);
        }
    }
    Ok(found.into_values().collect())
}

fn read_guest(dir: &Path) -> Result<Option<GuestCrate>, BuildError> {
    let manifest_path = dir.join("Cargo.toml");
    if !manifest_path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&manifest_path).map_err(|e| BuildError::io(&manifest_path, e))?;
    let manifest: Manifest = toml::from_str(&text).map_err(|source| BuildError::Manifest {
        manifest: manifest_path,
        source,
    })?;
    guest_from_manifest(dir, manifest)
}

/// The guest crate `manifest` (found in `dir`) describes, if it is one.
fn guest_from_manifest(dir: &Path, manifest: Manifest) -> Result<Option<GuestCrate>, BuildError> {
    let Some(package) = manifest.package else {
        return Ok(None);
    };
    let Some(Wasmflo { component, target }) = package.metadata.and_then(|m| m.wasmflo) else {
        return Ok(None);
    };
    if !is_valid_component_name(&component) {
        return Err(BuildError::InvalidComponentName {
            crate_name: package.name,
            component,
        });
    }
    let lib_name = manifest
        .lib
        .and_then(|lib| lib.name)
        .unwrap_or_else(|| package.name.replace('-', "_"));
    Ok(Some(GuestCrate {
        component,
        crate_name: package.name,
        lib_name,
        dir: dir.to_path_buf(),
        target,
    }))
}

/// `namespace/Name`: two or more non-empty segments of `[A-Za-z0-9._-]`, none `.` or `..`,
/// so the name maps safely onto a relative file path.
pub(crate) fn is_valid_component_name(name: &str) -> bool {
    let segments: Vec<&str> = name.split('/').collect();
    segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<GuestCrate>, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        guest_from_manifest(Path::new("/g"), manifest).map_err(|e| e.to_string())
    }

    #[test]
    fn target_defaults_to_unknown_unknown() {
        let guest =
            parse("[package]\nname = \"g-a\"\n[package.metadata.wasmflo]\ncomponent = \"ns/A\"\n");
        let guest = guest.ok().flatten();
        assert_eq!(
            guest.map(|g| (g.target, g.lib_name)),
            Some((GuestTarget::Wasm32UnknownUnknown, "g_a".to_owned()))
        );
    }

    #[test]
    fn target_wasip2_is_read() {
        let guest = parse(
            "[package]\nname = \"g\"\n[package.metadata.wasmflo]\ncomponent = \"ns/A\"\n\
             target = \"wasm32-wasip2\"\n",
        );
        let target = guest.ok().flatten().map(|g| g.target);
        assert_eq!(target, Some(GuestTarget::Wasm32Wasip2));
        assert_eq!(GuestTarget::Wasm32Wasip2.triple(), "wasm32-wasip2");
    }

    #[test]
    fn unknown_target_is_rejected() {
        let err = parse(
            "[package]\nname = \"g\"\n[package.metadata.wasmflo]\ncomponent = \"ns/A\"\n\
             target = \"wasm32-wasip1\"\n",
        );
        assert!(err.is_err_and(|e| e.contains("wasm32-wasip1")));
    }

    #[test]
    fn crates_without_metadata_are_skipped() {
        assert!(matches!(parse("[package]\nname = \"x\"\n"), Ok(None)));
        assert!(matches!(parse("[workspace]\n"), Ok(None)));
    }

    #[test]
    fn component_names() {
        assert!(is_valid_component_name("core/Repeat"));
        assert!(is_valid_component_name("temperature/Sensor"));
        assert!(is_valid_component_name("a/b/C-1.x"));
        assert!(!is_valid_component_name("Repeat"));
        assert!(!is_valid_component_name("core/"));
        assert!(!is_valid_component_name("/core/Repeat"));
        assert!(!is_valid_component_name("core/../x"));
        assert!(!is_valid_component_name("core\\Repeat/x"));
        assert!(!is_valid_component_name("core/Re peat"));
    }
}
