//! The edge host on an ESP32-C6: loads the last deployment kept in flash, or else the
//! component embedded in the image, feeds it a few readings and prints what it sends on
//! the serial console, then idles.
//!
//! The deployment store is a `FlashDeploymentStore` over esp-storage's `FlashStorage`, in
//! the `deploy` partition of `partitions.csv` (0x310000, 512 KiB: two slots of 256 KiB).
//! This example has no networking, so it cannot receive a deployment over the air: it
//! only shows that a stored one survives reboots and is what the board starts from (a
//! networked build would hand the same store to `ota::Deployer::with_store`, which
//! records every deployment it accepts there).
//!
//! Build: `cargo build --release` here (CI does, to check it compiles; no board is
//! attached there); flash: `cargo run --release` with `espflash` and a board attached.
//! A board whose flash held other data where `deploy` now is reads as a damaged store,
//! which stops the start: erase the partition once with `espflash erase-parts
//! --partition-table partitions.csv deploy`.
//! Untested on hardware: the qemu image (`edge-host/device`) is what the tests boot.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;

use esp_bootloader_esp_idf::partitions::{self, PARTITION_TABLE_MAX_LEN};
use esp_hal::main;
use esp_println::println;
use esp_storage::FlashStorage;
use wasmflo_edge::store::{DeploymentStore, FlashDeploymentStore, Stored};
use wasmflo_edge::{Component, Engine, Limits, Message};

esp_bootloader_esp_idf::esp_app_desc!();

/// The component, in flash.
static COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/component.wasm"));

/// The partition (by its name in `partitions.csv`) that holds the deployment store.
const STORE_PARTITION: &str = "deploy";

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic {info}");
    loop {
        core::hint::spin_loop();
    }
}

#[main]
fn main() -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default());
    // The formatter's device build peaks at 165 KiB when its bytes are in RAM, as a
    // stored deployment's are (see README); the rest is room for larger components.
    esp_alloc::heap_allocator!(size: 400 * 1024);

    match stored_deployment(FlashStorage::new(peripherals.FLASH)) {
        Ok(deployed) => {
            let bytes = match &deployed {
                Some(Stored {
                    sequence,
                    component: Some(component),
                }) => {
                    println!("starting from deployment {sequence}");
                    component.as_slice()
                }
                Some(Stored { sequence, .. }) => {
                    println!(
                        "deployment {sequence} is stored without its component (too large for \
                         a slot); starting from the embedded component"
                    );
                    COMPONENT
                }
                None => {
                    println!("no deployment stored; starting from the embedded component");
                    COMPONENT
                }
            };
            match run(bytes) {
                Ok(()) => println!("done"),
                Err(e) => println!("error: {e}"),
            }
        }
        // A damaged store stops the start: running anyway would forget the replay floor.
        Err(e) => println!("error: {e}"),
    }
    loop {
        core::hint::spin_loop();
    }
}

/// What the deployment store in the `deploy` partition holds; `None` also when the
/// partition table has no such partition (flashed without `partitions.csv`).
fn stored_deployment(mut flash: FlashStorage<'static>) -> Result<Option<Stored>, Error> {
    // On the heap: the image's stack is 24 KiB, and esp-storage may put a 4 KiB sector
    // buffer on it while reading.
    let mut table = vec![0u8; PARTITION_TABLE_MAX_LEN];
    let region = partitions::read_partition_table(&mut flash, &mut table)
        .map_err(Error::PartitionTable)?
        .iter()
        .find(|p| p.label_as_str() == STORE_PARTITION)
        .map(|p| (p.offset(), p.len()));
    let Some((offset, size)) = region else {
        println!("no `{STORE_PARTITION}` partition (flash with partitions.csv): nothing stored");
        return Ok(None);
    };
    let mut store = FlashDeploymentStore::new(flash, offset, size).map_err(Error::Region)?;
    println!(
        "deployment store: flash {:#x}..{:#x}, components up to {} bytes",
        store.region().start,
        store.region().end,
        store.max_component()
    );
    store.load().map_err(Error::Store)
}

/// Why the board could not start.
#[derive(Debug)]
enum Error {
    PartitionTable(partitions::Error),
    Region(wasmflo_edge::store::FlashRegionError),
    Store(wasmflo_edge::store::StoreError),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::PartitionTable(e) => write!(f, "partition table: {e}"),
            Error::Region(e) => write!(f, "deployment store: {e}"),
            Error::Store(e) => write!(f, "deployment store: {e}"),
        }
    }
}

fn run(bytes: &[u8]) -> Result<(), wasmflo_edge::LoadError> {
    let component = Component::new(&Engine::new(), bytes)?;
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
