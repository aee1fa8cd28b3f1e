//! The one `bindgen!` for the participant world. Generated types stay inside the crate.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "participant",
    ownership: Borrowing { duplicate_if_necessary: true },
    // `send` may trap: a guest that ignores refusals and keeps sending is stopped at once
    // instead of burning its whole CPU deadline.
    imports: { "wasmflo:participant/host.send": trappable },
});
