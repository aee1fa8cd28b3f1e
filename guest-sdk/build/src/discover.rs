//! Finds guest crates: folders whose Cargo.toml has `[package.metadata.wasmflo] component`
//! (and optionally `target`, and `[package.metadata.wasmflo.device]` with the guest's own
//! device-profile `heap` and `stack` in bytes).

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
    /// Its own device-profile memory (`[package.metadata.wasmflo.device]`), if it says.
    pub device: DeviceMemory,
}

/// A guest's own device-profile memory sizes, in bytes; `None` takes the build's
/// default ([`crate::DEVICE_STACK_SIZE`], [`crate::DEVICE_HEAP_SIZE`] or
/// [`crate::BuildOptions::device_heap`]). Only device builds use them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceMemory {
    /// The allocator's whole arena: it also bounds the largest message the guest accepts.
    pub heap: Option<u32>,
    /// The guest's shadow stack (`-z stack-size`).
    pub stack: Option<u32>,
}

/// Smallest device heap and stack a guest may declare: below this even the SDK's own
/// bookkeeping does not fit, so such a value is a typo, not a choice.
pub const MIN_DEVICE_MEMORY: u32 = 1024;

/// Largest device heap or stack a guest may declare: the device profile is for
/// microcontrollers; a guest needing more has no business in it.
pub const MAX_DEVICE_MEMORY: u32 = 16 << 20;

impl DeviceMemory {
    /// Why these sizes are nonsense, if they are: each must be within
    /// [`MIN_DEVICE_MEMORY`]..=[`MAX_DEVICE_MEMORY`] and a multiple of 16 (the stack
    /// pointer's alignment; the linker would round the heap silently).
    fn problem(&self, target: GuestTarget) -> Option<String> {
        if self.heap.is_some() && target == GuestTarget::Wasm32Wasip2 {
            return Some(
                "`heap` applies only to wasm32-unknown-unknown guests \
                 (wasm32-wasip2's libc needs its one 64 KiB page)"
                    .into(),
            );
        }
        [("heap", self.heap), ("stack", self.stack)]
            .into_iter()
            .find_map(|(key, value)| {
                let v = value?;
                (!(MIN_DEVICE_MEMORY..=MAX_DEVICE_MEMORY).contains(&v) || v % 16 != 0).then(|| {
                    format!(
                        "`{key} = {v}`: expected a multiple of 16 from {MIN_DEVICE_MEMORY} \
                         to {MAX_DEVICE_MEMORY} bytes"
                    )
                })
            })
    }
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
    #[serde(default)]
    device: DeviceMemory,
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
    let Some(Wasmflo {
        component,
        target,
        device,
    }) = package.metadata.and_then(|m| m.wasmflo)
    else {
        return Ok(None);
    };
    if !is_valid_component_name(&component) {
        return Err(BuildError::InvalidComponentName {
            crate_name: package.name,
            component,
        });
    }
    if let Some(detail) = device.problem(target) {
        return Err(BuildError::InvalidDeviceMemory {
            crate_name: package.name,
            component,
            detail,
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
        device,
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
    fn device_memory_is_read() {
        let guest = parse(
            "[package]\nname = \"g\"\n[package.metadata.wasmflo]\ncomponent = \"ns/A\"\n\
             [package.metadata.wasmflo.device]\nheap = 4096\nstack = 2048\n",
        );
        let device = guest.ok().flatten().map(|g| g.device);
        assert_eq!(
            device,
            Some(DeviceMemory {
                heap: Some(4096),
                stack: Some(2048)
            })
        );
        let plain =
            parse("[package]\nname = \"g\"\n[package.metadata.wasmflo]\ncomponent = \"ns/A\"\n");
        assert_eq!(
            plain.ok().flatten().map(|g| g.device),
            Some(DeviceMemory::default())
        );
    }

    #[test]
    fn nonsense_device_memory_is_rejected_naming_the_crate() {
        let with = |table: &str| {
            parse(&format!(
                "[package]\nname = \"g-x\"\n[package.metadata.wasmflo]\ncomponent = \"ns/A\"\n\
                 [package.metadata.wasmflo.device]\n{table}\n"
            ))
        };
        for (table, says) in [
            ("heap = 0", "heap = 0"),
            ("heap = 100", "heap = 100"),
            ("stack = 4100", "stack = 4100"),
            ("heap = 1073741824", "heap = 1073741824"),
        ] {
            let err = with(table);
            assert!(
                err.as_ref()
                    .is_err_and(|e| e.contains("g-x") && e.contains("ns/A") && e.contains(says)),
                "{table}: {err:?}"
            );
        }
        // Negative, non-numeric and misspelled keys fail to parse.
        for table in ["heap = -1", "heap = \"4k\"", "heap_size = 4096"] {
            assert!(with(table).is_err(), "{table}");
        }
        let wasip2 = parse(
            "[package]\nname = \"g-y\"\n[package.metadata.wasmflo]\ncomponent = \"ns/B\"\n\
             target = \"wasm32-wasip2\"\n[package.metadata.wasmflo.device]\nheap = 4096\n",
        );
        assert!(wasip2.is_err_and(|e| e.contains("g-y") && e.contains("wasm32-unknown-unknown")));
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
