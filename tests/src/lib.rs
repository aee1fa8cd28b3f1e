//! wasmflo integration tests; `guests` holds the paths of the test components.

/// Component files built from `tests/guests/*` by `build.rs`, one constant per guest.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
