//! The C participants (`components/c/*`, built here with Debian's clang on first use) run
//! unchanged on the edge host: generated inputs give the server host's outputs, fault
//! kinds and nack reasons. They import nothing but the wasmflo host interface.

#![allow(clippy::expect_used, clippy::panic, reason = "test")]

mod common;

use std::path::PathBuf;

use common::{Call, edge_component, process, run_edge, run_server};
use wasmflo_edge::{Limits, Message};
use wasmflo_guest_build::foreign::{ForeignOptions, build_foreign, discover_foreign};

fn c_component(name: &str) -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = wasmflo_guest_build::workspace_target_dir(&root);
    let guests = discover_foreign(&[root.join("components/c")]).expect("discover the C guests");
    let opts = ForeignOptions {
        workspace_root: root.clone(),
        target_dir: target.clone(),
        out_dir: target.join("edge-test-components"),
    };
    build_foreign(&opts, &guests)
        .expect("build the C guests")
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} built"))
        .path
}

/// Readings, half-way tenths, huge and tiny numbers, non-numbers and unit changes.
fn calls() -> Vec<Call> {
    let mut calls = vec![Call::Start];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..2_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let text = match i % 8 {
            0 => format!("{}", f64::from_bits(x)),
            1 => format!("{}.{}5", (x % 2000) as i64 - 1000, x % 10),
            2 => format!("{:e}", (x % 100_000) as f64 / 7.0),
            3 => ["\"C\"", "\"F\"", "\"K\"", "\"X\"", "7"][(x % 5) as usize].to_string(),
            4 => ["null", "\"22\"", "[1]", "1e999", "-0", "", "22x"][(x % 7) as usize].to_string(),
            _ => format!("{}", (x % 40_000) as f64 / 100.0 - 200.0),
        };
        let port = if i % 8 == 3 { "unit" } else { "in" };
        calls.push(process(port, text));
    }
    calls.push(Call::Process("in".into(), Message::json_text("22.25")));
    calls
}

#[test]
fn c_format_runs_on_the_edge_host_as_on_the_server() {
    let path = c_component("c/Format");
    let calls = calls();
    let expected = run_server(&path, &calls);
    let got = run_edge(&edge_component(&path), &calls, &Limits::default());
    let differ: Vec<usize> = (0..calls.len())
        .filter(|&i| got[i] != expected[i])
        .collect();
    assert!(
        differ.is_empty(),
        "{} calls differ; first {:?}: edge {:?}, server {:?}",
        differ.len(),
        differ.first().map(|&i| &calls[i]),
        differ.first().map(|&i| &got[i]),
        differ.first().map(|&i| &expected[i])
    );
    let ok = expected.iter().filter(|s| s.result.is_ok()).count();
    assert!(ok > 1_000, "{ok} calls succeeded");
}

#[test]
fn c_median_runs_on_the_edge_host_as_on_the_server() {
    let path = c_component("c/Median");
    let mut calls = vec![Call::Start, process("window", "\"3\"")];
    for i in 0..500 {
        let reading = if i % 17 == 16 {
            99.0
        } else {
            20.0 + f64::from(i % 7) / 10.0
        };
        calls.push(process("in", format!("{reading}")));
    }
    calls.push(process("window", "4"));
    calls.push(process("in", "\"hot\""));
    let expected = run_server(&path, &calls);
    let got = run_edge(&edge_component(&path), &calls, &Limits::default());
    assert_eq!(got, expected);
    // Spikes never get through a window of 3.
    let spikes = expected
        .iter()
        .flat_map(|s| &s.outputs)
        .filter(|o| o.2 == b"99")
        .count();
    assert_eq!(spikes, 0);
}
