//! `wasmflo-edge`: runs one participant component on the edge host (wasmi), locally or as
//! a MsgFlo participant over MQTT; see [`wasmflo_edge::cli`].

fn main() -> std::process::ExitCode {
    wasmflo_edge::cli::main()
}
