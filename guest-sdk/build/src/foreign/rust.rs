//! Rust guest crates outside this workspace (for example made by `wasmflo new` in a
//! project of one's own): built with their own `cargo build`, componentized like the
//! workspace's.

use std::path::Path;

use super::{ForeignOptions, tool};
use crate::cargo::{GuestTarget, clean_command, ensure_target};
use crate::{BuildError, GuestCrate};

/// Builds one standalone guest crate with `cargo build --release` into
/// `<target>/polyglot/rust` and returns its component bytes.
pub fn build_standalone(opts: &ForeignOptions, guest: &GuestCrate) -> Result<Vec<u8>, BuildError> {
    ensure_target(&opts.workspace_root, guest.target)?;
    let target_dir = opts.target_dir.join("polyglot").join("rust");
    let triple = guest.target.triple();
    tool::progress(&format!(
        "cargo build {} ({}, standalone crate)",
        guest.component,
        guest.dir.display()
    ));
    tool::run(
        clean_command(crate::cargo::cargo_program(), &guest.dir)
            .args(["build", "--release", "--target", triple, "--manifest-path"])
            .arg(guest.dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir),
        &guest.component,
    )?;
    let artifact = target_dir
        .join(triple)
        .join("release")
        .join(format!("{}.wasm", guest.lib_name));
    let bytes = std::fs::read(&artifact).map_err(|source| BuildError::MissingModule {
        crate_name: guest.crate_name.clone(),
        path: artifact.clone(),
        source,
    })?;
    if guest.target == GuestTarget::Wasm32Wasip2 || wasmparser::Parser::is_component(&bytes) {
        return Ok(bytes);
    }
    crate::componentize(&guest.crate_name, &bytes)
}

/// Whether `dir` (which need not exist yet) is a member of the workspace at `root`:
/// under `components/` or `tests/guests/`, whose crates the workspace's globs include.
pub fn in_workspace(root: &Path, dir: &Path) -> bool {
    let canonical = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            let parent = p.parent()?.canonicalize().ok()?;
            Some(parent.join(p.file_name()?))
        })
    };
    match (root.canonicalize(), canonical(dir)) {
        (Ok(root), Some(dir)) => {
            dir.starts_with(root.join("components")) || dir.starts_with(root.join("tests/guests"))
        }
        _ => false,
    }
}
