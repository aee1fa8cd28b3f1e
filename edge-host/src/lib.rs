//! wasmflo-edge: the no_std edge host. A placeholder until the edge-host issue lands.
#![no_std]
