//! C guests: bindings from wit-bindgen's C generator, compiled by Debian's clang for
//! `wasm32-wasi` against wasi-libc, linked by lld, componentized by wit-component.
//!
//! Guests link no WASI: no start files, no `stdio` (wasi-libc's `printf` and `strtod`
//! reference `stderr` unless the long-double variants are linked, which
//! `-lc-printscan-long-double` does), so the component imports only the wasmflo host
//! interface and runs on the edge host as well. A guest that calls something needing
//! WASI fails at componentization with the import named.

use std::path::{Path, PathBuf};
use std::process::Command;

use wit_bindgen_core::wit_parser::Resolve;

use super::{ForeignGuest, ForeignOptions, Language, tool};
use crate::BuildError;

/// The toolchain's cache key: Debian bookworm's LLVM and wasi-libc.
pub const TOOLCHAIN: &str = "clang-14+wasi-libc+wit-bindgen-c-0.61";

/// Debian packages that make up the toolchain.
pub const PACKAGES: [&str; 4] = ["clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32"];

const SYSROOT_LIBC: &str = "/usr/lib/wasm32-wasi/libc.a";

/// The C compiler: `$WASMFLO_CLANG`, else `clang`.
fn clang() -> PathBuf {
    std::env::var_os("WASMFLO_CLANG").map_or_else(|| "clang".into(), PathBuf::from)
}

/// Makes sure clang, wasm-ld, wasi-libc and the wasm32 builtins are there, installing
/// them with apt-get when running as root on Debian.
pub fn ensure_toolchain() -> Result<(), BuildError> {
    let ready = || {
        tool::available(clang())
            && tool::available("wasm-ld")
            && Path::new(SYSROOT_LIBC).is_file()
            && builtins_present()
    };
    if ready() {
        return Ok(());
    }
    let missing = || BuildError::Toolchain {
        language: Language::C.name(),
        detail: format!(
            "clang, wasm-ld, wasi-libc or the wasm32 compiler-rt builtins are missing; \
             install them with `apt-get install {}`",
            PACKAGES.join(" ")
        ),
    };
    if !tool::available("apt-get") || !is_root() {
        return Err(missing());
    }
    tool::progress(&format!(
        "installing the C toolchain from Debian: {}",
        PACKAGES.join(" ")
    ));
    let quiet_update = Command::new("apt-get").args(["update", "-qq"]).status();
    if !quiet_update.is_ok_and(|s| s.success()) {
        return Err(missing());
    }
    tool::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "the C toolchain",
    )?;
    if ready() { Ok(()) } else { Err(missing()) }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn builtins_present() -> bool {
    let Ok(out) = Command::new(clang())
        .args(["--target=wasm32-wasi", "-print-libgcc-file-name"])
        .output()
    else {
        return false;
    };
    let path = String::from_utf8_lossy(&out.stdout);
    Path::new(path.trim()).is_file()
}

/// Writes `participant.h`, `participant.c` and `participant_component_type.o` for the
/// participant world into `dir`.
pub fn generate_bindings(wit_dir: &Path, dir: &Path) -> Result<(), BuildError> {
    let fail = |detail: String| BuildError::Bindings {
        wit: wit_dir.to_owned(),
        detail,
    };
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_path(wit_dir)
        .map_err(|e| fail(format!("{e:#}")))?;
    let world = resolve
        .select_world(&[pkg], Some("participant"))
        .map_err(|e| fail(format!("{e:#}")))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| fail(format!("{e:#}")))?;
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    for (name, bytes) in files.iter() {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| BuildError::io(&path, e))?;
    }
    Ok(())
}

/// Compiles, links and componentizes one C guest.
pub(super) fn build(
    opts: &ForeignOptions,
    guest: &ForeignGuest,
    scratch: &Path,
) -> Result<Vec<u8>, BuildError> {
    ensure_toolchain()?;
    let bindings = scratch.join("bindings");
    generate_bindings(&opts.wit_dir(), &bindings)?;
    let sources: Vec<PathBuf> = match &guest.main {
        Some(main) => vec![guest.dir.join(main)],
        None => tool::files_under(&guest.dir)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "c"))
            .collect(),
    };
    if sources.is_empty() {
        return Err(BuildError::Foreign {
            component: guest.component.clone(),
            detail: format!("no .c files in {}", guest.dir.display()),
        });
    }
    let module = scratch.join("module.wasm");
    tool::run(
        Command::new(clang())
            .args(["--target=wasm32-wasi", "-O2", "-Wall", "-Wextra"])
            .arg("-I")
            .arg(&bindings)
            .arg("-I")
            .arg(opts.sdk_dir(Language::C))
            .arg("-I")
            .arg(&guest.dir)
            // A library of exports, not a program: no start files, no entry point.
            .args(["-nostartfiles", "-Wl,--no-entry", "-Wl,--strip-debug"])
            .args(["-Wl,-z,stack-size=65536", "-o"])
            .arg(&module)
            .args(&sources)
            .arg(bindings.join("participant.c"))
            .arg(bindings.join("participant_component_type.o"))
            .args(["-lc-printscan-long-double", "-lm"]),
        &guest.component,
    )?;
    let bytes = std::fs::read(&module).map_err(|e| BuildError::io(&module, e))?;
    crate::componentize(&guest.component, &bytes).map_err(|e| BuildError::Foreign {
        component: guest.component.clone(),
        detail: format!(
            "{} (a C guest may only import the wasmflo host interface: avoid stdio, files, \
             clocks and other WASI calls)",
            error_chain(&e)
        ),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
