//! The edge host on a bare riscv32imac board (qemu `virt` standing in for an ESP32-C6):
//! loads the component embedded in flash, runs it on the scripted inputs of `inputs.txt`
//! and prints every outcome over the UART, then the memory it used, then ends qemu
//! through the board's test device (status 0 on success).
//!
//! Output lines (payloads and reasons in hex, so any bytes survive):
//! - `call N ok` or `call N fault KIND HEX(detail)`, one per input line;
//! - `send N OUTPORT HEX(payload)` for each message call `N` sent;
//! - `loaded HEAP`, `instantiated HEAP`, `started HEAP`: heap bytes in use after each step,
//!   and `peak-loaded`, `peak-started`: the heap high-water mark so far;
//! - `memory BYTES` (the guest's linear memory), `end HEAP` (in use after the inputs),
//!   `heap-peak BYTES`, `stack-peak BYTES`;
//! - `done`.
//!
//! `unsafe` is confined to what a bare-metal program cannot avoid: the allocator, MMIO
//! writes to the UART and the test device, and reading the stack for its high-water mark.
#![no_std]
#![no_main]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use wasmflo_edge::{Component, Engine, Limits, Message, Translation};

/// The component, in flash as on the chip.
static COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/component.wasm"));
/// Lazy: measured, eager translation needs 289 KiB after loading the formatter instead of 145 KiB.
const TRANSLATION: Translation = Translation::Lazy;
/// One call per line: `PORT PAYLOAD`, where `PAYLOAD` is text or `hex:...` bytes.
static INPUTS: &str = include_str!("../inputs.txt");

/// Heap for the engine, the compiled modules, the instance and its linear memory.
const HEAP_SIZE: usize = 472 * 1024;
static mut HEAP_MEM: [u8; HEAP_SIZE] = [0; HEAP_SIZE];

/// qemu `virt`: 16550 UART0 and the SiFive test device (power-off with a status).
const UART0: usize = 0x1000_0000;
const TEST_DEVICE: usize = 0x10_0000;
const STACK_PAINT: u32 = 0xa5a5_a5a5;

/// The board allocator, counting bytes in use and their high-water mark.
struct Counting {
    heap: embedded_alloc::LlffHeap,
    now: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: forwards to LlffHeap, which is a GlobalAlloc; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds GlobalAlloc's contract.
        let ptr = unsafe { self.heap.alloc(layout) };
        if !ptr.is_null() {
            let now = self.now.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds GlobalAlloc's contract.
        unsafe { self.heap.dealloc(ptr, layout) };
        self.now.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting {
    heap: embedded_alloc::LlffHeap::empty(),
    now: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            // SAFETY: UART0's transmit register on qemu `virt`; qemu never makes it busy.
            unsafe { core::ptr::write_volatile(UART0 as *mut u8, b) };
        }
        Ok(())
    }
}

fn exit(status: u32) -> ! {
    let word = if status == 0 {
        0x5555
    } else {
        (status << 16) | 0x3333
    };
    // SAFETY: the test device's control register on qemu `virt`.
    unsafe { core::ptr::write_volatile(TEST_DEVICE as *mut u32, word) };
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Uart, "panic {info}");
    exit(101)
}

unsafe extern "C" {
    static __estack: u8;
    static __sstack: u8;
}

/// The lowest and highest addresses of the stack region.
fn stack_region() -> (usize, usize) {
    // Linker symbols: only their addresses are taken.
    (
        core::ptr::addr_of!(__estack) as usize,
        core::ptr::addr_of!(__sstack) as usize,
    )
}

/// Fills the unused stack below the current frame with a pattern.
#[inline(never)]
fn paint_stack() {
    let marker = 0u32;
    let here = core::ptr::addr_of!(marker) as usize - 512;
    let (bottom, _) = stack_region();
    let mut at = bottom.next_multiple_of(4);
    while at < here {
        // SAFETY: unused stack memory below the live frames.
        unsafe { core::ptr::write_volatile(at as *mut u32, STACK_PAINT) };
        at += 4;
    }
}

/// Bytes of stack ever used: from the top down to the lowest overwritten word.
fn stack_peak() -> usize {
    let (bottom, top) = stack_region();
    let mut at = bottom.next_multiple_of(4);
    // SAFETY: reads within the stack region.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == STACK_PAINT {
        at += 4;
    }
    top - at
}

struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        if self.0.is_empty() {
            f.write_str("-")?;
        }
        Ok(())
    }
}

fn unhex(text: &str) -> Option<alloc::vec::Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[riscv_rt::entry]
fn main() -> ! {
    // SAFETY: called once, before any allocation; the array is used by nothing else.
    unsafe {
        ALLOCATOR
            .heap
            .init(core::ptr::addr_of_mut!(HEAP_MEM) as usize, HEAP_SIZE)
    };
    paint_stack();
    let mut uart = Uart;
    let _ = writeln!(uart, "boot component {} bytes", COMPONENT.len());
    let component = match Component::new(&Engine::with_translation(TRANSLATION), COMPONENT) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(uart, "load-error {e}");
            exit(2)
        }
    };
    let _ = writeln!(uart, "component {}", component.definition().component);
    let _ = writeln!(uart, "loaded {}", ALLOCATOR.now.load(Ordering::Relaxed));
    let _ = writeln!(
        uart,
        "peak-loaded {}",
        ALLOCATOR.peak.load(Ordering::Relaxed)
    );
    let limits = Limits::device();
    let mut instance = match component.instantiate(&limits) {
        Ok(i) => i,
        Err(f) => {
            let _ = writeln!(uart, "instantiate-error {f}");
            exit(3)
        }
    };
    let _ = writeln!(
        uart,
        "instantiated {}",
        ALLOCATOR.now.load(Ordering::Relaxed)
    );
    let started = instance.start();
    let _ = writeln!(uart, "started {}", ALLOCATOR.now.load(Ordering::Relaxed));
    let _ = writeln!(
        uart,
        "peak-started {}",
        ALLOCATOR.peak.load(Ordering::Relaxed)
    );
    if let Err(f) = started.result {
        let _ = writeln!(uart, "start-error {f}");
        exit(4)
    }
    let mut instance = Some(instance);
    for (n, line) in INPUTS.lines().enumerate() {
        let (port, payload) = line.split_once(' ').unwrap_or((line, ""));
        let data = match payload.strip_prefix("hex:") {
            Some(hex) => unhex(hex).unwrap_or_default(),
            None => payload.as_bytes().to_vec(),
        };
        let Some(live) = instance.as_mut() else {
            exit(5)
        };
        let outcome = live.process(port, &Message::json_text(data));
        match &outcome.result {
            Ok(()) => {
                let _ = writeln!(uart, "call {n} ok");
            }
            Err(f) => {
                let _ = writeln!(
                    uart,
                    "call {n} fault {} {}",
                    f.kind,
                    Hex(f.detail.as_bytes())
                );
            }
        }
        for (port, msg) in &outcome.outputs {
            let _ = writeln!(uart, "send {n} {port} {}", Hex(&msg.data));
        }
        if outcome.result.is_err_and(|f| f.kind.poisons_instance()) {
            // The old instance goes first: its memory and the new one's never coexist.
            drop(instance.take());
            let mut fresh = match component.instantiate(&limits) {
                Ok(i) => i,
                Err(_) => exit(5),
            };
            let _ = fresh.start();
            instance = Some(fresh);
        }
    }
    let memory = instance.as_ref().map_or(0, |i| i.memory_size());
    let _ = writeln!(uart, "memory {memory}");
    let _ = writeln!(uart, "end {}", ALLOCATOR.now.load(Ordering::Relaxed));
    let _ = writeln!(uart, "heap-peak {}", ALLOCATOR.peak.load(Ordering::Relaxed));
    let _ = writeln!(uart, "stack-peak {}", stack_peak());
    let _ = writeln!(uart, "done");
    exit(0)
}
