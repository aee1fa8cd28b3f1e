//! JavaScript guests: ComponentizeJS (npm; SpiderMonkey through StarlingMonkey) under
//! the target dir, driven by a small Node.js script.
//!
//! Every optional engine feature (stdio, random, clocks, http) is disabled, so the
//! component imports no WASI and `console.log` is a no-op: log through the host's
//! `log` import instead (`guest-sdk/js/wasmflo.js`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{ForeignGuest, ForeignOptions, Language, tool};
use crate::BuildError;

/// The pinned ComponentizeJS release.
pub const TOOLCHAIN: &str = "@bytecodealliance/componentize-js@0.23.0";

const DRIVER: &str = r#"// Written by wasmflo-guest-build: componentizes one ES module.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
const [sourcePath, witPath, worldName, out] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath, witPath, worldName,
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
"#;

/// Installs ComponentizeJS into `<target>/toolchains/js` unless it is there; returns
/// the driver script's path.
pub fn ensure_toolchain(opts: &ForeignOptions) -> Result<PathBuf, BuildError> {
    let dir = opts.toolchain_dir(Language::Js);
    let driver = dir.join("componentize.mjs");
    let stamp = dir.join("wasmflo-toolchain");
    if !tool::available("node") || !tool::available("npm") {
        return Err(BuildError::Toolchain {
            language: Language::Js.name(),
            detail: "Node.js 18 or newer with npm is needed to install ComponentizeJS".into(),
        });
    }
    if !(driver.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == TOOLCHAIN)) {
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
        tool::progress(&format!(
            "installing {TOOLCHAIN} from npm into {}",
            dir.display()
        ));
        tool::run(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--prefix",
                ])
                .arg(&dir)
                .arg(TOOLCHAIN),
            "the JavaScript toolchain",
        )?;
        std::fs::write(&driver, DRIVER).map_err(|e| BuildError::io(&driver, e))?;
        std::fs::write(&stamp, TOOLCHAIN).map_err(|e| BuildError::io(&stamp, e))?;
    }
    Ok(driver)
}

/// Componentizes one JavaScript guest: its `main` module (default `index.js`) exports
/// the world's functions, and may import `./wasmflo.js` (from `guest-sdk/js`), which is
/// copied beside it.
pub(super) fn build(
    opts: &ForeignOptions,
    guest: &ForeignGuest,
    scratch: &Path,
) -> Result<Vec<u8>, BuildError> {
    let driver = ensure_toolchain(opts)?;
    let main = guest.main.as_deref().unwrap_or("index.js");
    // The guest's files and the SDK module side by side, so `./wasmflo.js` resolves.
    let src = scratch.join("src");
    let _ = std::fs::remove_dir_all(&src);
    for dir in [opts.sdk_dir(Language::Js), guest.dir.clone()] {
        for file in tool::files_under(&dir)? {
            let rel = file.strip_prefix(&dir).unwrap_or(&file);
            let to = src.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
            }
            std::fs::copy(&file, &to).map_err(|e| BuildError::io(&to, e))?;
        }
    }
    if !src.join(main).is_file() {
        return Err(BuildError::Foreign {
            component: guest.component.clone(),
            detail: format!("{} has no {main}", guest.dir.display()),
        });
    }
    let out = scratch.join("component.wasm");
    tool::progress(&format!(
        "componentize-js {} (bundles SpiderMonkey; about 20 s)",
        guest.component
    ));
    tool::run(
        Command::new("node")
            .arg(&driver)
            .arg(src.join(main))
            .arg(opts.wit_dir())
            .arg("participant")
            .arg(&out),
        &guest.component,
    )?;
    std::fs::read(&out).map_err(|e| BuildError::io(&out, e))
}
