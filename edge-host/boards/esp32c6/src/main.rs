//! The edge host on an ESP32-C6: loads the component embedded in flash, feeds it a few
//! readings and prints what it sends on the serial console, then idles.
//!
//! Build: `cargo build --release` here (CI does, to check it compiles; no board is
//! attached there); flash: `cargo run --release` with `espflash` and a board attached.
//! Untested on hardware: the qemu image (`edge-host/device`) is what the tests boot.
#![no_std]
#![no_main]

extern crate alloc;

use esp_hal::main;
use esp_println::println;
use wasmflo_edge::{Component, Engine, Limits, Message};

esp_bootloader_esp_idf::esp_app_desc!();

/// The component, in flash.
static COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/component.wasm"));

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic {info}");
    loop {
        core::hint::spin_loop();
    }
}

#[main]
fn main() -> ! {
    let _peripherals = esp_hal::init(esp_hal::Config::default());
    // The formatter's device build peaks at 385 KiB of heap in the qemu image (see README).
    esp_alloc::heap_allocator!(size: 400 * 1024);

    match run() {
        Ok(()) => println!("done"),
        Err(e) => println!("error: {e}"),
    }
    loop {
        core::hint::spin_loop();
    }
}

fn run() -> Result<(), wasmflo_edge::LoadError> {
    let component = Component::new(&Engine::new(), COMPONENT)?;
    println!("loaded {}", component.definition().component);
    let mut instance =
        component
            .instantiate(&Limits::device())
            .map_err(|f| wasmflo_edge::LoadError::Start {
                kind: f.kind,
                detail: f.detail,
            })?;
    let _ = instance.start();
    for reading in ["22.3333", "-5.55", "\"hot\""] {
        let outcome = instance.process("in", &Message::json_text(reading));
        for (_, msg) in &outcome.outputs {
            println!(
                "out {}",
                core::str::from_utf8(&msg.data).unwrap_or("<bytes>")
            );
        }
        if let Err(f) = outcome.result {
            println!("fault {f}");
        }
    }
    Ok(())
}
