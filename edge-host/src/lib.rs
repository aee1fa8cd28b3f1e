//! wasmflo-edge: runs wasmflo participant components on wasmi, without `std`.
//!
//! The very `.wasm` component file the server host (`wasmflo-host`, on wasmtime) runs
//! loads here unchanged. No microcontroller WebAssembly runtime implements the component
//! model, so this crate does that part itself: it unpacks the component binary, replays
//! its linking instructions on wasmi core instances, and implements the
//! `wasmflo:participant@0.1.0` world's canonical ABI by hand. Each call gets a fuel
//! budget (the CPU deadline) and each instance a memory cap; traps, fuel exhaustion and
//! malformed components are errors, never panics, and faults carry the server host's
//! [`FaultKind`]s.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wasmflo_edge::{Component, Engine, Limits, Message};
//! # let dir = wasmflo_host::component::components_dir();
//! let bytes = std::fs::read(dir.join("temperature/Format.wasm"))?;
//! let component = Component::new(&Engine::new(), &bytes)?;
//! let mut instance = component.instantiate(&Limits::default())?;
//! instance.start().result?;
//! let outcome = instance.process("in", &Message::json_text("22.3333"));
//! assert_eq!(outcome.outputs[0].1.data, b"\"Temperature: 22.3 C\"");
//! # Ok(()) }
//! ```
//!
//! Module map:
//! - `unpack` (private): the component binary into core modules and a
//!   linking plan (index spaces, core instances, `canon lower`/`lift`), pure;
//! - [`instance`]: [`Engine`], [`Component`] and [`Instance`] — executing the plan on wasmi,
//!   lowering arguments, lifting results, post-return, fuel, fault classification;
//! - `host` (private): the `host` interface (send, log, set-timer, cancel-timer) as wasmi
//!   host functions, with the server host's send limits;
//! - `abi` (private): canonical ABI layouts and checked lifting from guest memory;
//! - [`participant`]: [`Participant`] — a component's live instance, recreated after a
//!   poisoning fault with its parameters replayed, and swapped for a deployed component
//!   between calls;
//! - [`mqtt`] (feature `mqtt`): the MsgFlo participant over MQTT (discovery, `role.PORT`
//!   topics, QoS 1, acks after outputs, dead letters, deployments over MQTT);
//! - [`cli`] (feature `std`): the `wasmflo-edge` command;
//! - [`ota`] (feature `ota`): signed deployments — manifest, ed25519 signature, sha256,
//!   trusted keys, replay protection, size limit;
//! - [`store`] (feature `ota`): [`store::DeploymentStore`], where the last accepted
//!   deployment (sequence, component) survives restarts — in memory, in NOR flash
//!   (`flash-store`), or in a file (`std`);
//! - [`limits`]: [`Limits`] and the memory limiter;
//! - [`message`], [`definition`], [`fault`], [`error`]: the shared vocabulary;
//! - [`fuzzing`]: the fuzz target's entry point (`edge-host/fuzz/`), also run by a test.
//!
//! Features:
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `std` | yes | `std::error::Error` impls, wasmi's `std` mode, and the `wasmflo-edge` binary (a local runner) |
//! | `mqtt` | yes | (implies `std`) [`mqtt`]: the binary's MsgFlo participant over MQTT (rumqttc, a current-thread tokio runtime, serde_json) |
//! | `tls` | yes | (implies `mqtt`) `mqtts://` in the MQTT mode: rustls on ring, the system's CAs and `--ca-file` |
//! | `ota` | yes | [`ota`]: signed over-the-air deployment (ed25519-compact, sha2; both no_std) and [`store`], where the last one survives restarts |
//! | `flash-store` | yes | (implies `ota`) `store::FlashDeploymentStore`: the last deployment in two slots of a NOR flash region (any `embedded-storage` 0.3 `NorFlash`), safe against power cuts |
//! | `portable-dispatch` | no | wasmi's loop dispatch; needed on riscv32, where tail-call dispatch would grow the native stack with every guest instruction (the device image enables it) |
//!
//! Without default features the crate builds for `riscv32imac-unknown-none-elf`
//! (ESP32-C6 class); it needs `alloc` and atomics (wasmi uses `Arc`), so `riscv32imc`
//! (ESP32-C3) is out until wasmi supports it.
//!
//! Limits of the hand-written ABI: only the participant world's types; UTF-8 strings only;
//! components with nested components, resources, async or WASI imports are rejected at load
//! with [`LoadError::Unsupported`]. The component-level function types are not re-checked
//! against the world (the server host does that); wasmi checks every core signature.
//! Exports beyond the world's four are ignored.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod abi;
#[cfg(feature = "std")]
pub mod cli;
pub mod definition;
pub mod error;
pub mod fault;
pub mod fuzzing;
#[cfg(any(feature = "ota", feature = "mqtt"))]
mod hex;
mod host;
pub mod instance;
pub mod limits;
pub mod message;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "ota")]
pub mod ota;
pub mod participant;
#[cfg(feature = "ota")]
pub mod store;
mod unpack;

pub use definition::{Definition, PortDef};
pub use error::{LoadError, WORLD};
pub use fault::{Fault, FaultKind};
pub use instance::{Component, Engine, Instance, Translation};
pub use limits::Limits;
pub use message::{CallOutcome, LogLevel, Message, TimerCommand};
pub use participant::Participant;
