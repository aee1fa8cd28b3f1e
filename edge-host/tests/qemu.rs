//! The edge host booted under qemu-system-riscv32 (512 KiB of RAM, the component in flash)
//! runs the formatter on the scripted inputs of `edge-host/device/inputs.txt` and prints
//! the server host's outputs for the same component file and inputs.

mod common;

use common::device;
use common::{Call, run_server};

#[test]
fn the_device_image_gives_the_server_hosts_outputs() {
    if !device::available("qemu boot test") {
        return;
    }
    let component = device::device_component("temperature/Format");
    let image = device::build_image(&component);
    let output = device::boot(&image);
    assert!(output.contains("\ndone"), "no `done` line: {output}");
    let (calls, figures) = device::parse(&output);

    let inputs = device::inputs();
    let mut script = vec![Call::Start];
    script.extend(inputs.iter().map(|(port, data)| {
        Call::Process(port.clone(), wasmflo_edge::Message::json_text(data.clone()))
    }));
    let expected = run_server(&component, &script);
    assert_eq!(calls.len(), inputs.len(), "{output}");
    for (n, seen) in expected.iter().skip(1).enumerate() {
        let got = &calls[&n];
        let want_result = seen
            .result
            .clone()
            .map_err(|(kind, detail)| (kind, detail.unwrap_or_default()));
        let got_result = got
            .result
            .clone()
            .expect("a result line")
            .map_err(|(kind, detail)| {
                let keep = matches!(
                    kind.as_str(),
                    "invalid-input" | "unavailable" | "internal" | "limit-exceeded"
                );
                (kind, if keep { detail } else { String::new() })
            });
        assert_eq!(got_result, want_result, "input {n}: {:?}", inputs[n]);
        let want_sends: Vec<(usize, Vec<u8>)> = seen
            .outputs
            .iter()
            .map(|(port, _, data, _)| (*port, data.clone()))
            .collect();
        assert_eq!(got.sends, want_sends, "input {n}: {:?}", inputs[n]);
    }
    let sections = device::sections(&image);
    println!(
        "device: heap peak {} B, stack peak {} B, guest memory {} B, flash {} B ({sections:?})",
        figures["heap-peak"],
        figures["stack-peak"],
        figures["memory"],
        device::flash_bytes(&sections)
    );
    assert!(figures["heap-peak"] + figures["stack-peak"] < 512 * 1024);
}
