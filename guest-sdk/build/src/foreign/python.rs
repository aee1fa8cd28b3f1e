//! Python guests: componentize-py (PyPI) in a venv under the target dir.
//!
//! componentize-py embeds CPython (about 18 MiB per component) and imports WASI
//! (cli, io, clocks, random, filesystem), which the host grants per process: nothing
//! by default, so such a guest runs with an empty environment, no files and frozen
//! clocks unless its process grants more.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{ForeignGuest, ForeignOptions, Language, tool};
use crate::BuildError;

/// The pinned componentize-py release.
pub const TOOLCHAIN: &str = "componentize-py==0.25.1";

/// Installs componentize-py into `<target>/toolchains/python/venv` unless it is there;
/// returns the program's path.
pub fn ensure_toolchain(opts: &ForeignOptions) -> Result<PathBuf, BuildError> {
    let venv = opts.toolchain_dir(Language::Python).join("venv");
    let program = venv.join("bin/componentize-py");
    let stamp = venv.join("wasmflo-toolchain");
    if program.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == TOOLCHAIN) {
        return Ok(program);
    }
    let python = std::env::var_os("WASMFLO_PYTHON").unwrap_or_else(|| "python3".into());
    if !tool::available(&python) {
        return Err(BuildError::Toolchain {
            language: Language::Python.name(),
            detail: "python3 (3.9 or newer, with venv) is needed to install componentize-py".into(),
        });
    }
    tool::progress(&format!(
        "installing {TOOLCHAIN} from PyPI into {}",
        venv.display()
    ));
    tool::run(
        Command::new(&python).args(["-m", "venv"]).arg(&venv),
        "the Python toolchain",
    )?;
    tool::run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            TOOLCHAIN,
        ]),
        "the Python toolchain",
    )?;
    std::fs::write(&stamp, TOOLCHAIN).map_err(|e| BuildError::io(&stamp, e))?;
    Ok(program)
}

/// Componentizes one Python guest: its `main` module (default `app.py`) defines
/// `class WitWorld`, and may import `wasmflo` from `guest-sdk/python`.
pub(super) fn build(
    opts: &ForeignOptions,
    guest: &ForeignGuest,
    scratch: &Path,
) -> Result<Vec<u8>, BuildError> {
    let program = ensure_toolchain(opts)?;
    let main = guest.main.as_deref().unwrap_or("app.py");
    let module = main.strip_suffix(".py").unwrap_or(main);
    if !guest.dir.join(format!("{module}.py")).is_file() {
        return Err(BuildError::Foreign {
            component: guest.component.clone(),
            detail: format!("{} has no {module}.py", guest.dir.display()),
        });
    }
    let out = scratch.join("component.wasm");
    tool::progress(&format!(
        "componentize-py {} (bundles CPython; about 15 s)",
        guest.component
    ));
    tool::run(
        Command::new(program)
            .arg("-d")
            .arg(opts.wit_dir())
            .args(["-w", "participant", "componentize", "-p"])
            .arg(&guest.dir)
            .arg("-p")
            .arg(opts.sdk_dir(Language::Python))
            .arg(module)
            .arg("-o")
            .arg(&out),
        &guest.component,
    )?;
    std::fs::read(&out).map_err(|e| BuildError::io(&out, e))
}
