//! Integration tests: real components on the real host. One test binary, a module per area.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod actuators;
mod batch;
mod brokers;
mod cache;
mod cli;
mod coordinator;
mod edge;
mod edge_deploy;
mod fault_injection;
mod faults;
mod fbp_oracle;
mod fuzz;
mod graphs;
mod live;
mod msgflo_interop;
mod polyglot;
mod pool_parameters;
mod protocol;
mod rabbit_restart;
mod sandbox;
mod scaling;
mod support;
mod tls;
mod workflow;
mod workflow_broker;
mod workflow_edge;
