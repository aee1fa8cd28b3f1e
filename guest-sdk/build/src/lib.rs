//! Builds wasmflo guest crates into WebAssembly components, from build scripts or a
//! file watcher.
//!
//! A guest crate is a `cdylib` whose Cargo.toml says which component it provides and,
//! optionally, which target it needs:
//!
//! ```toml
//! [package.metadata.wasmflo]
//! component = "core/Repeat"
//! target = "wasm32-wasip2"   # only for guests that import WASI; default wasm32-unknown-unknown
//!
//! [package.metadata.wasmflo.device]  # optional: this guest's device-profile memory
//! heap = 4096    # bytes; also the bound on the largest message it accepts
//! stack = 4096   # bytes
//! ```
//!
//! [`build_components`] finds such crates, compiles them with one nested
//! `cargo build --profile guest --target <target>` per target into `<target dir>/wasm`
//! (its own lock, so it can run inside an outer cargo build), componentizes each core
//! module with `wit-component` (on wasm32-wasip2 rustc's linker already emits a
//! component, which is used as is), and writes `<out dir>/<component>.wasm`, touching a
//! file only when its bytes change.
//!
//! Modules: `discover` (finding crates), `cargo` (the nested build and the rustup
//! target), `device` (checks of the device profile's memory), `error` ([`BuildError`]).
//!
//! ```no_run
//! let opts = wasmflo_guest_build::BuildOptions::new("/path/to/workspace", "/path/to/out")
//!     .search("/path/to/workspace/components/rust")
//!     .rerun_if_changed(true);
//! for c in wasmflo_guest_build::build_components(&opts)? {
//!     println!("{} -> {} ({} bytes)", c.name, c.path.display(), c.size);
//! }
//! # Ok::<(), wasmflo_guest_build::BuildError>(())
//! ```

mod cargo;
mod device;
mod discover;
mod error;
pub mod foreign;

use std::path::{Path, PathBuf};

pub use cargo::GuestTarget;
pub use device::{LinearMemory, linear_memory};
pub use discover::{DeviceMemory, GuestCrate, MAX_DEVICE_MEMORY, MIN_DEVICE_MEMORY, discover};
pub use error::BuildError;

/// Stack reserved for each guest, in bytes. A default Rust cdylib reserves 1 MiB, which
/// alone costs 16 wasm pages per instance; 64 KiB keeps deep serde_json nesting (its
/// recursion limit is 128) comfortable while letting a small guest fit in two pages.
pub const DEFAULT_STACK_SIZE: u32 = 64 * 1024;

/// The device profile's guest stack, in bytes, for guests that declare none
/// (`[package.metadata.wasmflo.device] stack`): enough for the example participants'
/// JSON (the differential tests run 10,000 generated inputs through it).
pub const DEVICE_STACK_SIZE: u32 = 8 * 1024;

/// The device profile's heap, in bytes: the non-growing allocator's whole arena. The
/// linker gives the guest a memory of 1-byte pages (custom page sizes) fixed at exactly
/// stack + static data + this heap, so a small participant's memory is a fraction of one
/// 64 KiB page. Enough for the example participants' messages (the device differential
/// tests run 10,000 generated inputs through the formatter); a guest needing more or less
/// says so in `[package.metadata.wasmflo.device] heap` ([`DeviceMemory`]).
pub const DEVICE_HEAP_SIZE: u32 = 16 * 1024;

/// What to build and where to put it.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    workspace_root: PathBuf,
    search_dirs: Vec<PathBuf>,
    out_dir: PathBuf,
    target_dir: PathBuf,
    stack_size: u32,
    /// The device profile's heap size, if building for it.
    device_heap: Option<u32>,
    rerun_if_changed: bool,
}

impl BuildOptions {
    /// Builds guests of the workspace at `workspace_root` into `out_dir`, with the
    /// workspace target dir at [`workspace_target_dir`] and no search directories yet.
    pub fn new(workspace_root: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        let workspace_root = workspace_root.into();
        Self {
            target_dir: workspace_target_dir(&workspace_root),
            workspace_root,
            search_dirs: Vec::new(),
            out_dir: out_dir.into(),
            stack_size: DEFAULT_STACK_SIZE,
            device_heap: None,
            rerun_if_changed: false,
        }
    }

    /// Adds a directory holding guest crates (it or its immediate subfolders).
    #[must_use]
    pub fn search(mut self, dir: impl Into<PathBuf>) -> Self {
        self.search_dirs.push(dir.into());
        self
    }

    /// Sets the workspace target dir; the nested build uses its `wasm` subfolder.
    #[must_use]
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.target_dir = dir.into();
        self
    }

    /// Sets the guest stack size in bytes (default [`DEFAULT_STACK_SIZE`]).
    #[must_use]
    pub fn stack_size(mut self, bytes: u32) -> Self {
        self.stack_size = bytes;
        self
    }

    /// The device profile for small targets: a [`DEVICE_STACK_SIZE`] stack, a linear
    /// memory of 1-byte pages (the custom-page-sizes proposal, which both hosts enable)
    /// fixed at stack + static data + a [`DEVICE_HEAP_SIZE`] heap (its maximum is its
    /// initial size, so it never grows and a host never copies it), and the guest SDK's
    /// feature `device`, whose allocator works inside that heap. The built module is
    /// checked for that memory and for `memory.grow`/`memory.size`, which would assume
    /// 64 KiB pages. The result is an ordinary component: the server host runs the same
    /// file. Use a target dir of its own ([`BuildOptions::target_dir`]), or the default
    /// builds are rebuilt each time. A guest's own `[package.metadata.wasmflo.device]`
    /// `heap` and `stack` take the place of these defaults for it.
    #[must_use]
    pub fn device(mut self) -> Self {
        self.stack_size = DEVICE_STACK_SIZE;
        self.device_heap = Some(DEVICE_HEAP_SIZE);
        self
    }

    /// The device profile ([`BuildOptions::device`]) with a default heap of `bytes`
    /// instead of [`DEVICE_HEAP_SIZE`] (guests declaring their own keep theirs).
    #[must_use]
    pub fn device_heap(self, bytes: u32) -> Self {
        let mut opts = self.device();
        opts.device_heap = Some(bytes);
        opts
    }

    /// Prints `cargo:rerun-if-changed` lines for the inputs (only for build scripts).
    #[must_use]
    pub fn rerun_if_changed(mut self, emit: bool) -> Self {
        self.rerun_if_changed = emit;
        self
    }

    /// The directories searched for guest crates.
    pub fn search_dirs(&self) -> &[PathBuf] {
        &self.search_dirs
    }

    /// Where components are written.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }
}

/// One component written by [`build_components`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltComponent {
    /// The component name, such as `core/Repeat`.
    pub name: String,
    /// The Cargo package it was built from.
    pub crate_name: String,
    /// The component file, `<out dir>/<name>.wasm`.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// The workspace target dir: `CARGO_TARGET_DIR` if set (relative to `workspace_root`
/// when relative), else `<workspace_root>/target`.
pub fn workspace_target_dir(workspace_root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root.join(dir),
        _ => workspace_root.join("target"),
    }
}

/// Where component `name` lives under `out_dir`: `core/Repeat` -> `<out_dir>/core/Repeat.wasm`.
pub fn component_path(out_dir: &Path, name: &str) -> PathBuf {
    let mut path = out_dir.to_path_buf();
    path.extend(name.split('/'));
    path.as_mut_os_string().push(".wasm");
    path
}

/// Discovers, compiles and componentizes every guest crate in `opts`' search directories.
pub fn build_components(opts: &BuildOptions) -> Result<Vec<BuiltComponent>, BuildError> {
    if opts.rerun_if_changed {
        emit_rerun_if_changed(opts);
    }
    let guests = discover(&opts.search_dirs)?;
    if guests.is_empty() {
        return Ok(Vec::new());
    }
    let wasm_target_dir = opts.target_dir.join("wasm");
    for (target, group) in by_target(&guests) {
        cargo::ensure_target(&opts.workspace_root, target)?;
        cargo::build(
            &opts.workspace_root,
            &wasm_target_dir,
            &cargo::Flags {
                stack_size: opts.stack_size,
                device_heap: opts.device_heap,
                features: if opts.device_heap.is_some() {
                    &["wasmflo-guest/device"]
                } else {
                    &[]
                },
            },
            target,
            &group,
        )?;
    }
    guests
        .iter()
        .map(|guest| {
            let artifact_path = cargo::artifact_path(&wasm_target_dir, guest);
            let artifact =
                std::fs::read(&artifact_path).map_err(|source| BuildError::MissingModule {
                    crate_name: guest.crate_name.clone(),
                    path: artifact_path.clone(),
                    source,
                })?;
            if opts.device_heap.is_some() && guest.target == GuestTarget::Wasm32UnknownUnknown {
                device::check_module(&guest.crate_name, &artifact)?;
            }
            let component = into_component(&guest.crate_name, artifact)?;
            let path = component_path(&opts.out_dir, &guest.component);
            write_if_changed(&path, &component)?;
            Ok(BuiltComponent {
                name: guest.component.clone(),
                crate_name: guest.crate_name.clone(),
                path,
                size: component.len() as u64,
            })
        })
        .collect()
}

/// `guests` grouped by target, targets in [`GuestTarget::ALL`] order, empty groups left out.
fn by_target(guests: &[GuestCrate]) -> Vec<(GuestTarget, Vec<&GuestCrate>)> {
    GuestTarget::ALL
        .into_iter()
        .filter_map(|target| {
            let group: Vec<&GuestCrate> = guests.iter().filter(|g| g.target == target).collect();
            (!group.is_empty()).then_some((target, group))
        })
        .collect()
}

/// A linked artifact as a component: unchanged if the linker already made one (wasip2),
/// else componentized.
fn into_component(crate_name: &str, artifact: Vec<u8>) -> Result<Vec<u8>, BuildError> {
    if wasmparser::Parser::is_component(&artifact) {
        Ok(artifact)
    } else {
        componentize(crate_name, &artifact)
    }
}

/// Wraps a core module carrying wit-bindgen's component-type section into a component.
pub fn componentize(crate_name: &str, module: &[u8]) -> Result<Vec<u8>, BuildError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::Componentize {
        crate_name: crate_name.to_owned(),
        source,
    };
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .map_err(|e| err(e.into()))?
        .encode()
        .map_err(|e| err(e.into()))
}

/// Writes `bytes` to `path` through a temporary file and a rename, unless the file
/// already holds exactly these bytes, so mtimes only move on real changes and a
/// watcher never sees a half-written component.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    }
    // A name of its own per writer: concurrent builds of one component must not rename
    // each other's half-written file away.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("wasm.{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| BuildError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| BuildError::io(path, e))
}

fn emit_rerun_if_changed(opts: &BuildOptions) {
    let root = &opts.workspace_root;
    let inputs = opts.search_dirs.iter().cloned().chain([
        root.join("guest-sdk/src"),
        root.join("guest-sdk/Cargo.toml"),
        root.join("wit"),
        // `[profile.guest]` lives here.
        root.join("Cargo.toml"),
    ]);
    for input in inputs {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
}

/// Runs a build script's body; on error prints it with its causes and exits with 1, the
/// way cargo expects a failed build script to end.
pub fn run_build_script(body: impl FnOnce() -> Result<(), Box<dyn std::error::Error>>) {
    if let Err(err) = body() {
        let mut text = format!("error: {err}");
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        eprintln!("{text}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(component: &str, target: GuestTarget) -> GuestCrate {
        GuestCrate {
            component: component.to_owned(),
            crate_name: component.replace('/', "-"),
            lib_name: component.replace('/', "_"),
            dir: PathBuf::from("/g"),
            target,
            device: DeviceMemory::default(),
        }
    }

    #[test]
    fn guests_are_grouped_by_target() {
        let guests = [
            guest("a/P2", GuestTarget::Wasm32Wasip2),
            guest("b/Plain", GuestTarget::Wasm32UnknownUnknown),
            guest("c/P2", GuestTarget::Wasm32Wasip2),
        ];
        let groups: Vec<(GuestTarget, Vec<&str>)> = by_target(&guests)
            .into_iter()
            .map(|(t, g)| (t, g.iter().map(|g| g.component.as_str()).collect()))
            .collect();
        assert_eq!(
            groups,
            [
                (GuestTarget::Wasm32UnknownUnknown, vec!["b/Plain"]),
                (GuestTarget::Wasm32Wasip2, vec!["a/P2", "c/P2"]),
            ]
        );
        let plain = [guest("b/Plain", GuestTarget::Wasm32UnknownUnknown)];
        assert_eq!(by_target(&plain).len(), 1);
        assert!(by_target(&[]).is_empty());
    }

    #[test]
    fn components_pass_through_and_modules_are_componentized() -> Result<(), BuildError> {
        // The smallest component: magic, version 0x0d, layer 1.
        let component = b"\0asm\x0d\x00\x01\x00".to_vec();
        assert_eq!(into_component("c", component.clone())?, component);
        // An empty core module becomes an (empty) component.
        let module = b"\0asm\x01\x00\x00\x00".to_vec();
        assert!(!wasmparser::Parser::is_component(&module));
        assert!(wasmparser::Parser::is_component(&into_component(
            "m", module
        )?));
        Ok(())
    }

    #[test]
    fn component_paths_follow_names() {
        let out = Path::new("/out");
        assert_eq!(
            component_path(out, "core/Repeat"),
            Path::new("/out/core/Repeat.wasm")
        );
        assert_eq!(
            component_path(out, "a/b/C.x"),
            Path::new("/out/a/b/C.x.wasm")
        );
    }

    #[test]
    fn write_if_changed_keeps_identical_files() -> Result<(), BuildError> {
        let dir = std::env::temp_dir().join(format!("wasmflo-guest-build-{}", std::process::id()));
        let path = dir.join("ns/Thing.wasm");
        write_if_changed(&path, b"one")?;
        let old = std::time::SystemTime::UNIX_EPOCH;
        let set_old = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(old));
        assert!(set_old.is_ok());
        write_if_changed(&path, b"one")?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        assert_eq!(mtime, Some(old));
        write_if_changed(&path, b"two")?;
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"two"[..]));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
