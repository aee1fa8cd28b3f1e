//! Builds the device image (`edge-host/device`) and boots it under qemu; shared by the
//! qemu test and the benchmark.
#![allow(dead_code, reason = "the test and the benchmark use different parts")]
#![allow(clippy::expect_used, clippy::panic, reason = "test harness")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "riscv32imac-unknown-none-elf";
pub const QEMU: &str = "qemu-system-riscv32";
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    wasmflo_guest_build::workspace_target_dir(&root())
}

/// Whether the device toolchain and qemu are here. Missing tools fail the run in CI
/// (`CI` set) and skip it elsewhere.
pub fn available(what: &str) -> bool {
    let qemu = Command::new(QEMU)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let target = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        });
    if qemu && target {
        return true;
    }
    let missing = format!(
        "{what}: needs {QEMU} (Debian package qemu-system-misc) and the {TARGET} target (rustup target add {TARGET}); qemu: {qemu}, target: {target}"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{missing}");
    }
    eprintln!("skipped: {missing}");
    false
}

/// `component` (e.g. `temperature/Format`) built from `components/rust` with the device
/// profile (a fixed memory of 1-byte pages, the guest's own stack and heap from
/// `[package.metadata.wasmflo.device]` or 8 KiB and 16 KiB, the SDK's non-growing
/// allocator), in its own target dir so the host's guest builds are not
/// invalidated.
pub fn device_component(component: &str) -> PathBuf {
    let target = target_dir();
    let out = target.join("edge-device-components");
    let opts = wasmflo_guest_build::BuildOptions::new(root(), &out)
        .target_dir(target.join("edge-device"))
        .device()
        .search(root().join("components/rust"));
    wasmflo_guest_build::build_components(&opts).expect("build the device components");
    wasmflo_guest_build::component_path(&out, component)
}

/// Builds the device image embedding `component`; returns the ELF file.
pub fn build_image(component: &Path) -> PathBuf {
    let target = target_dir().join("device");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root().join("edge-host/device"))
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target)
        .env("WASMFLO_EDGE_COMPONENT", component);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the device image");
    assert!(status.success(), "device image build failed: {status}");
    target.join(TARGET).join("release/wasmflo-edge-device")
}

/// Boots `image` on qemu's `virt` board; returns its UART output. Bounded by `timeout`.
pub fn boot(image: &Path) -> String {
    let (ok, text) = try_boot(image);
    assert!(ok, "qemu failed: {text}");
    text
}

/// Boots `image`; returns whether it ended with status 0, and its UART output.
pub fn try_boot(image: &Path) -> (bool, String) {
    let out = Command::new("timeout")
        .args([
            "120",
            QEMU,
            "-machine",
            "virt",
            "-bios",
            "none",
            "-nographic",
            "-m",
            "16M",
            "-kernel",
        ])
        .arg(image)
        .output()
        .expect("run qemu");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// One scripted input of `edge-host/device/inputs.txt`: (port, payload).
pub fn inputs() -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(root().join("edge-host/device/inputs.txt")).expect("inputs");
    text.lines()
        .map(|line| {
            let (port, payload) = line.split_once(' ').unwrap_or((line, ""));
            let data = match payload.strip_prefix("hex:") {
                Some(hex) => unhex(hex),
                None => payload.as_bytes().to_vec(),
            };
            (port.to_string(), data)
        })
        .collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    if text == "-" {
        return Vec::new();
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// What the device printed for one call: result and sends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceCall {
    pub result: Option<Result<(), (String, String)>>,
    pub sends: Vec<(usize, Vec<u8>)>,
}

/// The calls and the `name value` figures of a device run.
pub fn parse(output: &str) -> (BTreeMap<usize, DeviceCall>, BTreeMap<String, u64>) {
    let mut calls: BTreeMap<usize, DeviceCall> = BTreeMap::new();
    let mut figures = BTreeMap::new();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["call", n, "ok"] => {
                calls.entry(n.parse().expect("n")).or_default().result = Some(Ok(()))
            }
            ["call", n, "fault", kind, detail] => {
                let detail = String::from_utf8(unhex(detail)).expect("utf-8 detail");
                calls.entry(n.parse().expect("n")).or_default().result =
                    Some(Err((kind.to_string(), detail)));
            }
            ["send", n, port, data] => calls
                .entry(n.parse().expect("n"))
                .or_default()
                .sends
                .push((port.parse().expect("port"), unhex(data))),
            [name, value] => {
                if let Ok(v) = value.parse() {
                    figures.insert(name.to_string(), v);
                }
            }
            _ => {}
        }
    }
    (calls, figures)
}

/// Sizes of the ELF32 sections of `image` by name.
pub fn sections(image: &Path) -> BTreeMap<String, u64> {
    let elf = std::fs::read(image).expect("read image");
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let u32_at = |at: usize| {
        u64::from(u32::from_le_bytes([
            elf[at],
            elf[at + 1],
            elf[at + 2],
            elf[at + 3],
        ]))
    };
    let shoff = u32_at(0x20) as usize;
    let shentsize = u16_at(0x2e) as usize;
    let shnum = u16_at(0x30) as usize;
    let shstrndx = u16_at(0x32) as usize;
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u32_at(header(shstrndx) + 16) as usize;
    (0..shnum)
        .map(|i| {
            let h = header(i);
            let name_at = strtab + u32_at(h) as usize;
            let end = elf[name_at..]
                .iter()
                .position(|b| *b == 0)
                .map_or(name_at, |p| name_at + p);
            (
                String::from_utf8_lossy(&elf[name_at..end]).into_owned(),
                u32_at(h + 20),
            )
        })
        .collect()
}

/// Flash an image needs: `.text` + `.rodata` + `.data` (+ `.eh_frame`, also kept in flash).
pub fn flash_bytes(sections: &BTreeMap<String, u64>) -> u64 {
    [".text", ".init.rust", ".rodata", ".data", ".eh_frame"]
        .iter()
        .filter_map(|s| sections.get(*s))
        .sum()
}
