//! Finds guest crates: folders whose Cargo.toml has `[package.metadata.wasmflo] component`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::BuildError;

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
        manifest: manifest_path.clone(),
        source,
    })?;
    let Some(package) = manifest.package else {
        return Ok(None);
    };
    let Some(component) = package
        .metadata
        .and_then(|m| m.wasmflo)
        .map(|w| w.component)
    else {
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
