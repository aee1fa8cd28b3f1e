//! The one `bindgen!` for the participant world. Generated types stay inside the crate.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "participant",
    ownership: Borrowing { duplicate_if_necessary: true },
});
