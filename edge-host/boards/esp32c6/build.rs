//! Copies the component to embed (`WASMFLO_EDGE_COMPONENT`, default: the device build of
//! `temperature/Format` that `edge-host/tests/qemu.rs` makes) into `OUT_DIR`.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    println!("cargo:rerun-if-env-changed=WASMFLO_EDGE_COMPONENT");
    let component = match std::env::var_os("WASMFLO_EDGE_COMPONENT") {
        Some(path) => PathBuf::from(path),
        None => manifest.join("../../../target/edge-device-components/temperature/Format.wasm"),
    };
    println!("cargo:rerun-if-changed={}", component.display());
    std::fs::copy(&component, out.join("component.wasm")).map_err(|e| {
        format!(
            "{}: {e} (run `cargo test -p wasmflo-edge --test qemu` first, or set WASMFLO_EDGE_COMPONENT)",
            component.display()
        )
    })?;
    Ok(())
}
