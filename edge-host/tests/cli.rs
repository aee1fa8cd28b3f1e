//! The `wasmflo-edge` binary runs a component locally and prints what it sends.

mod common;

use std::process::Command;

#[allow(clippy::expect_used, reason = "test helper")]
fn edge(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmflo-edge"))
        .args(args)
        .output()
        .expect("run wasmflo-edge");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_the_formatter_on_inputs() {
    let path = common::component("temperature/Format");
    let role = format!("fmt={}", path.display());
    let (code, stdout, stderr) = edge(&[
        &role,
        "--input",
        "in=22.3333",
        "--input",
        "unit=\"F\"",
        "--input",
        "in=22.3333",
        "--input",
        "in=\"hot\"",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "fmt.out <- \"Temperature: 22.3 C\"");
    assert_eq!(lines[1], "fmt.out <- \"Temperature: 72.2 F\"");
    assert!(
        lines[2].starts_with("fmt: in: invalid-input: expected a temperature"),
        "{stdout}"
    );
}

#[test]
fn sensor_timers_and_logs_are_printed() {
    let path = common::component("temperature/Sensor");
    let (code, stdout, _) = edge(&[&format!("s={}", path.display()), "--timer", "0"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "s: timer 0 set: 1000 ms, repeating",
            "s.out <- 21.166666666666668"
        ]
    );
}

#[test]
fn bad_usage_and_bad_files_fail_with_a_message() {
    let (code, _, stderr) = edge(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("usage"));
    let (code, _, stderr) = edge(&["x=/nonexistent.wasm"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read component"), "{stderr}");
    let (code, _, stderr) = edge(&["x=Cargo.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");
    let (code, _, stderr) = edge(&["x=a.wasm", "--broker", "mqtt://h", "--input", "in=1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("do not go with --broker"), "{stderr}");
    let (code, _, stderr) = edge(&["x=a.wasm", "--trust", "k.pub"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--trust needs --broker"), "{stderr}");
    let (code, _, stderr) = edge(&["a b=x.wasm"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("a role is letters"), "{stderr}");
}

#[test]
fn the_mqtt_mode_fails_with_a_message() {
    let path = common::component("temperature/Format");
    let role = format!("fmt={}", path.display());
    let (code, _, stderr) = edge(&[&role, "--broker", "amqp://h"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("invalid broker URL 'amqp://h'"), "{stderr}");
    // Port 1 on this machine: nothing listens.
    let (code, _, stderr) = edge(&[&role, "--broker", "mqtt://127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot connect to broker mqtt://127.0.0.1:1"),
        "{stderr}"
    );
    let (code, _, stderr) = edge(&[&role, "--broker", "mqtt://h", "--trust", "/nonexistent.pub"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent.pub: cannot read public key"),
        "{stderr}"
    );
}
