//! Runs the nested `cargo build` for one wasm32 target and makes sure its standard library
//! is installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::BuildError;
use crate::discover::GuestCrate;

/// The target a guest crate is compiled for: `[package.metadata.wasmflo] target`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum GuestTarget {
    /// No imports but the wasmflo world; the core module is componentized here.
    #[default]
    #[serde(rename = "wasm32-unknown-unknown")]
    Wasm32UnknownUnknown,
    /// Guests that may import WASI preview 2; rustc's linker already emits a component.
    #[serde(rename = "wasm32-wasip2")]
    Wasm32Wasip2,
}

impl GuestTarget {
    /// Every target, in the order their nested builds run.
    pub const ALL: [Self; 2] = [Self::Wasm32UnknownUnknown, Self::Wasm32Wasip2];

    /// The rustc target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Self::Wasm32UnknownUnknown => "wasm32-unknown-unknown",
            Self::Wasm32Wasip2 => "wasm32-wasip2",
        }
    }
}

/// The cargo profile guests are compiled with (defined in the workspace Cargo.toml).
pub(crate) const PROFILE: &str = "guest";

/// Variables cargo sets for a build script (or a user set for the outer build) that must
/// not leak into the nested build: they would retarget it, change its flags, wrap its
/// compiler in clippy, or invalidate its cache on every run.
const REMOVED_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
];

/// Prefixes of per-package variables cargo sets for build scripts.
const REMOVED_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_BIN_",
    "DEP_",
];

fn is_removed(name: &str) -> bool {
    REMOVED_VARS.contains(&name) || REMOVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

pub(crate) fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn rustc_program() -> OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

pub(crate) fn clean_command(program: impl Into<OsString>, workspace_root: &Path) -> Command {
    let mut cmd = Command::new(program.into());
    cmd.current_dir(workspace_root);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_removed) {
            cmd.env_remove(&name);
        }
    }
    // Child stdout would be read as `cargo:` directives inside a build script.
    cmd.stdout(Stdio::from(std::io::stderr()));
    cmd
}

/// Installs `target`'s standard library with rustup unless the sysroot already has it.
pub(crate) fn ensure_target(workspace_root: &Path, target: GuestTarget) -> Result<(), BuildError> {
    let triple = target.triple();
    let rustc = rustc_program();
    let output = clean_command(&rustc, workspace_root)
        .args(["--print", "sysroot"])
        .stdout(Stdio::piped())
        .output()
        .map_err(|source| BuildError::Spawn {
            program: rustc.to_string_lossy().into_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(BuildError::Sysroot {
            program: rustc.to_string_lossy().into_owned(),
            status: output.status,
        });
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if sysroot.join("lib/rustlib").join(triple).is_dir() {
        return Ok(());
    }
    eprintln!("wasmflo-guest-build: installing the {triple} target with rustup");
    let status = clean_command("rustup", workspace_root)
        .args(["target", "add", triple])
        .status()
        .map_err(|source| BuildError::Spawn {
            program: "rustup".into(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::MissingTarget {
            target: triple,
            sysroot,
            status,
        })
    }
}

/// How guests are compiled and linked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flags<'a> {
    /// `-z stack-size`, in bytes (in device builds, for guests that declare none).
    pub stack_size: u32,
    /// The device profile's heap in bytes (for guests that declare none), or `None` for
    /// the linker's default memory.
    pub device_heap: Option<u32>,
    /// Cargo features to enable (`package/feature`).
    pub features: &'a [&'a str],
}

/// One fixed 64 KiB page: the device profile's memory on wasm32-wasip2, whose libc
/// (`malloc`, `sbrk`) assumes 64 KiB pages.
const WASIP2_DEVICE_MEMORY: u32 = 64 * 1024;

impl Flags<'_> {
    /// The rustflags every crate of a `target` build gets, as `CARGO_ENCODED_RUSTFLAGS`
    /// (separated by 0x1f). In device builds the stack and heap are not among them: they
    /// are each guest's own ([`Flags::guest_rustc_args`]).
    fn encoded_rustflags(&self, target: GuestTarget) -> String {
        let flags = match (self.device_heap, target) {
            (None, _) => vec![format!("-Clink-arg=-zstack-size={}", self.stack_size)],
            // 1-byte pages, the memory exactly stack + data + heap, never growing; the
            // linker's `__heap_end` tells the guest's allocator where the heap ends.
            (Some(_), GuestTarget::Wasm32UnknownUnknown) => vec![
                "-Clink-arg=--page-size=1".into(),
                "-Clink-arg=--no-growable-memory".into(),
            ],
            (Some(_), GuestTarget::Wasm32Wasip2) => vec![
                format!("-Clink-arg=--initial-memory={WASIP2_DEVICE_MEMORY}"),
                format!("-Clink-arg=--max-memory={WASIP2_DEVICE_MEMORY}"),
            ],
        };
        flags.join("\x1f")
    }

    /// A device build's rustc arguments for `guest`'s own crate: its opt-level, stack and
    /// (on wasm32-unknown-unknown) heap, its own or the build's defaults.
    fn guest_rustc_args(&self, guest: &GuestCrate) -> Vec<String> {
        let stack = guest.device.stack.unwrap_or(self.stack_size);
        // opt-level 3 for the guest's own crate, whose session runs fat LTO over the whole
        // guest: a smaller component, and less for wasmi to keep in RAM (formatter: 137.1
        // -> 134.4 KiB peak), with opt-level s's inline threshold (75; 133.7 KiB; 1000
        // gave 138.8). Not for the dependencies: opt-level 3 (or z) before LTO made the
        // device peak worse (140.0, 154.7 KiB).
        let mut args = vec![
            "-Copt-level=3".to_owned(),
            "-Cllvm-args=-inline-threshold=75".to_owned(),
            format!("-Clink-arg=-zstack-size={stack}"),
        ];
        if guest.target == GuestTarget::Wasm32UnknownUnknown
            && let Some(heap) = guest.device.heap.or(self.device_heap)
        {
            args.push(format!("-Clink-arg=--initial-heap={heap}"));
        }
        args
    }
}

/// Builds all `guests` for `target`; cargo's progress goes to stderr. A standard build is
/// one `cargo build`; a device build is one `cargo rustc` per guest, since each guest's
/// stack and heap are link arguments of its own (as rustflags they would apply to, and
/// rebuild, every dependency).
pub(crate) fn build(
    workspace_root: &Path,
    wasm_target_dir: &Path,
    flags: &Flags<'_>,
    target: GuestTarget,
    guests: &[&GuestCrate],
) -> Result<(), BuildError> {
    if flags.device_heap.is_none() {
        return run_cargo(workspace_root, wasm_target_dir, flags, target, guests, &[]);
    }
    for guest in guests {
        let args = flags.guest_rustc_args(guest);
        run_cargo(
            workspace_root,
            wasm_target_dir,
            flags,
            target,
            &[guest],
            &args,
        )?;
    }
    Ok(())
}

/// `cargo build` of `guests`, or with `rustc_args` `cargo rustc` of the one guest's library
/// with those arguments for its own crate.
fn run_cargo(
    workspace_root: &Path,
    wasm_target_dir: &Path,
    flags: &Flags<'_>,
    target: GuestTarget,
    guests: &[&GuestCrate],
    rustc_args: &[String],
) -> Result<(), BuildError> {
    let mut cmd = clean_command(cargo_program(), workspace_root);
    let subcommand = if rustc_args.is_empty() {
        "build"
    } else {
        "rustc"
    };
    cmd.args([
        subcommand,
        "--profile",
        PROFILE,
        "--target",
        target.triple(),
    ])
    .arg("--manifest-path")
    .arg(workspace_root.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(wasm_target_dir);
    for guest in guests {
        cmd.args(["-p", &guest.crate_name]);
    }
    if !flags.features.is_empty() {
        cmd.arg("--features").arg(flags.features.join(","));
    }
    if !rustc_args.is_empty() {
        cmd.arg("--lib").arg("--").args(rustc_args);
    }
    // Only target artifacts see these flags; build scripts and proc macros do not.
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags.encoded_rustflags(target));
    let crates = || guests.iter().map(|g| g.crate_name.clone()).collect();
    let status = cmd.status().map_err(|source| BuildError::Spawn {
        program: cargo_program().to_string_lossy().into_owned(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Cargo {
            crates: crates(),
            status,
        })
    }
}

/// Where cargo leaves the linked artifact of `guest`: a core module, or on wasip2 a
/// component.
pub(crate) fn artifact_path(wasm_target_dir: &Path, guest: &GuestCrate) -> PathBuf {
    wasm_target_dir
        .join(guest.target.triple())
        .join(PROFILE)
        .join(format!("{}.wasm", guest.lib_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::DeviceMemory;

    fn guest(target: GuestTarget, device: DeviceMemory) -> GuestCrate {
        GuestCrate {
            component: "ns/A".into(),
            crate_name: "ns-a".into(),
            lib_name: "ns_a".into(),
            dir: PathBuf::from("/g"),
            target,
            device,
        }
    }

    #[test]
    fn device_flags_fix_the_memory() {
        let plain = Flags {
            stack_size: 65536,
            device_heap: None,
            features: &[],
        };
        assert_eq!(
            plain.encoded_rustflags(GuestTarget::Wasm32UnknownUnknown),
            "-Clink-arg=-zstack-size=65536"
        );
        let device = Flags {
            stack_size: 8192,
            device_heap: Some(16384),
            features: &["wasmflo-guest/device"],
        };
        assert_eq!(
            device.encoded_rustflags(GuestTarget::Wasm32UnknownUnknown),
            "-Clink-arg=--page-size=1\x1f-Clink-arg=--no-growable-memory"
        );
        assert_eq!(
            device.encoded_rustflags(GuestTarget::Wasm32Wasip2),
            "-Clink-arg=--initial-memory=65536\x1f-Clink-arg=--max-memory=65536"
        );
        let defaults = guest(GuestTarget::Wasm32UnknownUnknown, DeviceMemory::default());
        assert_eq!(
            device.guest_rustc_args(&defaults),
            [
                "-Copt-level=3",
                "-Cllvm-args=-inline-threshold=75",
                "-Clink-arg=-zstack-size=8192",
                "-Clink-arg=--initial-heap=16384"
            ]
        );
        let own = guest(
            GuestTarget::Wasm32UnknownUnknown,
            DeviceMemory {
                heap: Some(4096),
                stack: Some(4096),
            },
        );
        assert_eq!(
            device.guest_rustc_args(&own),
            [
                "-Copt-level=3",
                "-Cllvm-args=-inline-threshold=75",
                "-Clink-arg=-zstack-size=4096",
                "-Clink-arg=--initial-heap=4096"
            ]
        );
        let wasip2 = guest(
            GuestTarget::Wasm32Wasip2,
            DeviceMemory {
                heap: None,
                stack: Some(2048),
            },
        );
        assert_eq!(
            device.guest_rustc_args(&wasip2),
            [
                "-Copt-level=3",
                "-Cllvm-args=-inline-threshold=75",
                "-Clink-arg=-zstack-size=2048"
            ]
        );
    }

    #[test]
    fn removes_build_script_variables() {
        assert!(is_removed("CARGO_CFG_TARGET_ARCH"));
        assert!(is_removed("CARGO_FEATURE_STD"));
        assert!(is_removed("CARGO_PKG_NAME"));
        assert!(is_removed("RUSTC_WORKSPACE_WRAPPER"));
        assert!(is_removed("CARGO_TARGET_DIR"));
        assert!(!is_removed("CARGO_HOME"));
        assert!(!is_removed("RUSTUP_TOOLCHAIN"));
        assert!(!is_removed("PATH"));
    }
}
