//! wasmflo-host: runs flow-based programs whose participants are WebAssembly components.
//!
//! A *graph* (`.fbp` or JSON) names *processes*, each running a *component*, and *edges*
//! between their *ports*. Each process becomes a *participant*: a long-lived, sandboxed
//! instance of its component that receives messages on inport queues and publishes on
//! outport topics, following MsgFlo's model and naming (`role.PORT`).
//!
//! Module map:
//! - [`graph`]: the typed graph model and its pure parsers (`.fbp`, JSON);
//! - [`library`]: MsgFlo library files mapping names to component files or commands;
//! - [`component`]: loading, checking, compiling (cached) and resolving components;
//! - [`runtime`]: the wasmtime engine, the one `bindgen!`, the host interface, instances;
//! - [`participant`]: one participant's loop (receive, call, publish, ack; faults);
//! - [`transport`]: the `Transport` trait, its in-process, MQTT and AMQP backends;
//! - [`discovery`]: MsgFlo discovery messages and the task re-sending them;
//! - [`deploy`]: signed over-the-air deployment to edge hosts, the sending side;
//! - [`foreign`]: foreign participants declared in MsgFlo's YAML (`msgflo-register`);
//! - [`bindings`]: the binding lists coordinators publish for `wasmflo bindings`;
//! - [`network`]: a running graph built from the above;
//! - [`pool`]: a process's instances consuming its queues (sized by hand or by [`scaling`]);
//! - [`metrics`]: per-role counters and the Prometheus text endpoint;
//! - [`workflow`]: Celery-style workflows (chain, group, chord, ...) over task roles;
//! - [`live`]: live coding: file watching, source rebuilds, swapping new versions in;
//! - [`scaling`]: autoscaling policies (guv's and by deadline), its config and simulator;
//! - [`message`], [`fault`]: the shared vocabulary;
//! - [`cli`]: the `wasmflo` command (the only place `anyhow` is used).

pub mod bindings;
pub mod cli;
pub mod component;
pub mod deploy;
pub mod discovery;
pub mod fault;
pub mod foreign;
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod library;
pub mod live;
pub mod message;
pub mod metrics;
pub mod network;
pub mod participant;
pub mod pool;
pub mod protocol;
pub mod runtime;
pub mod scaling;
pub mod transport;
pub mod workflow;
