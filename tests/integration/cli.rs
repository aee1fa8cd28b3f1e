//! The `wasmflo` command: the main demo end to end, `inspect`, and bad input.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::support::*;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmflo-test-cli"));
    c.env(
        "WASMFLO_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmflo-cache"),
    );
    c.env_remove("WASMFLO_COMPONENTS_DIR");
    c
}

/// Writes `contents` to `<scratch dir for test>/<name>` and returns the path as text.
fn scratch_file(test: &str, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = scratch(test).join(name);
    std::fs::write(&path, contents).expect("write");
    path.to_str().expect("utf8").to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the CLI to completion; returns (exit success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = cli().args(args).output().expect("cli runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a failed run with exactly one `error:` line mentioning every `needle`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let (ok, _, stderr) = run(args);
    assert!(!ok, "expected failure for {args:?}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line, got: {stderr}");
    for n in needles {
        assert!(
            errors[0].contains(n),
            "{:?} should mention {n:?}",
            errors[0]
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn main_demo_runs_until_interrupted() {
    let graph = repo().join("graphs/temperature.fbp");
    let mut child = cli()
        .arg("run")
        .arg(&graph)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut before = Vec::new();
    let display = loop {
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("the display prints within the deadline");
        if line.contains("[display] Temperature: ") {
            break line;
        }
        before.push(line);
    };
    let noisy = |l: &String| l.contains("WARN") || l.contains("ERROR");
    assert!(!before.iter().any(noisy), "a clean start: {before:?}");
    assert!(display.trim_end().ends_with(" C"), "{display}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    assert!(status.expect("kill").success());
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(DEADLINE) {
        rest.push(line);
    }
    let code = child.wait().expect("exit");
    assert!(code.success(), "clean exit after Ctrl-C: {code:?} {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("stopping: draining")),
        "{rest:?}"
    );
}

#[test]
fn inspect_prints_definition_and_imports() {
    let (ok, stdout, stderr) = run(&[
        "inspect",
        &format!("{}/temperature/Format.wasm", components()),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("component  temperature/Format"), "{stdout}");
    assert!(stdout.contains("unit"), "{stdout}");
    assert!(stdout.contains("[parameter]"), "{stdout}");
    assert!(
        stdout.contains("wasmflo:participant/host@0.1.0"),
        "{stdout}"
    );
    assert!(!stdout.contains("wasi:"), "no WASI imports: {stdout}");
}

fn components() -> String {
    wasmflo_host::component::components_dir()
        .display()
        .to_string()
}

#[test]
fn unknown_component_names_process_line_and_file() {
    let g = scratch_file(
        "unknown",
        "g.fbp",
        "a(core/Repeat) OUT -> IN b(core/Repaet)\n",
    );
    fails_with(&["run", &g], &["g.fbp:1", "process 'b'", "core/Repaet"]);
}

#[test]
fn undeclared_port_names_process_and_port() {
    let g = scratch_file(
        "port",
        "g.fbp",
        "# a comment\na(core/Repeat) OUT -> NOPE b(core/Repeat)\n",
    );
    fails_with(
        &["run", &g],
        &[
            "g.fbp:2",
            "process 'b' (core/Repeat) has no inport 'nope'",
            "inports: in",
        ],
    );
}

#[test]
fn files_that_are_not_participants_are_refused() {
    let dir = scratch("notcomponent");
    let cases: [(&str, &[u8], &str); 3] = [
        ("text.wasm", b"hello", "not a WebAssembly component"),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "core WebAssembly module, not a component",
        ),
        (
            "other.wasm",
            &std::fs::read(wasmflo_tests::guests::OTHER_WORLD).expect("guest"),
            "does not implement the wasmflo:participant@0.1.0 world",
        ),
    ];
    for (file, bytes, needle) in cases {
        std::fs::write(dir.join(file), bytes).expect("write");
        let graph =
            format!(r#"{{"processes": {{"x": {{"component": "{file}"}}}}, "connections": []}}"#);
        let g = dir.join(format!("{file}.json"));
        std::fs::write(&g, graph).expect("write");
        fails_with(
            &["run", g.to_str().expect("utf8")],
            &[file, "process 'x'", needle],
        );
        fails_with(
            &["inspect", dir.join(file).to_str().expect("utf8")],
            &[file, needle],
        );
    }
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let g = scratch_file("syntax", "g.fbp", "a(core/Repeat) OUT -> -> b\n");
    fails_with(&["run", &g], &["g.fbp: line 1, column 23: expected "]);
}

#[test]
fn graph_prints_json_like_fbp_and_fbp_that_round_trips() {
    let path = repo().join("graphs/temperature.fbp");
    let file = path.to_str().expect("utf8");
    let expected = fbp(&std::fs::read_to_string(&path).expect("read")).to_json();

    let (ok, stdout, stderr) = run(&["graph", file]);
    assert!(ok, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(printed, expected);
    let pretty = serde_json::to_string_pretty(&expected).expect("serialize");
    assert_eq!(
        stdout,
        format!("{pretty}\n"),
        "2-space indent, key order as fbp"
    );

    let (ok, text, stderr) = run(&["graph", "--format", "fbp", file]);
    assert!(ok, "{stderr}");
    assert_eq!(fbp(&text).to_json(), expected);
    let again = scratch_file("graph", "again.fbp", &text);
    let (ok, reprinted, stderr) = run(&["graph", &again]);
    assert!(ok, "{stderr}");
    assert_eq!(reprinted, stdout);
}

#[test]
fn validate_reports_counts_and_errors() {
    let file = repo().join("graphs/temperature.fbp");
    let (ok, stdout, stderr) = run(&["validate", file.to_str().expect("utf8")]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "ok: 3 processes, 5 connections");

    let syntax = scratch_file(
        "validate",
        "syntax.fbp",
        "a(core/Repeat) OUT -> IN b(core/Drop)\na OUT -> -> b\n",
    );
    for command in ["validate", "graph"] {
        fails_with(
            &[command, &syntax],
            &["syntax.fbp: line 2, column 10: expected "],
        );
    }
    // No extension: the content decides (.fbp here).
    let undeclared = scratch_file("validate", "undeclared", "a(core/Repeat) OUT -> IN ghost\n");
    fails_with(
        &["validate", &undeclared],
        &["undeclared: ", "undefined target node \"ghost\""],
    );
}

#[test]
fn library_maps_names_to_components_and_commands() {
    let repeat = Path::new(&components()).join("core/Repeat.wasm");
    let library = scratch_file(
        "library",
        "lib.json",
        serde_json::json!({
            "name": "unused-package-name",
            "msgflo": {
                "namespace": "myns",
                "components": {
                    "myns/Repeater": repeat.to_str().expect("utf8"),
                    "myns/Worker": "python3 worker.py --name #ROLE --iips #IIPS",
                },
            },
        })
        .to_string(),
    );
    let g = scratch_file(
        "library",
        "g.fbp",
        "'hello' -> IN a(myns/Repeater) OUT -> IN b(core/Drop)\n",
    );
    let (ok, stdout, stderr) = run(&["validate", "--library", &library, &g]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "ok: 2 processes, 2 connections");
    let (ok, _, stderr) = run(&["run", "--library", &library, "--for", "1s", &g]);
    assert!(ok, "{stderr}");

    // Without the library the name means nothing.
    fails_with(
        &["validate", "--library", "/nonexistent.json", &g],
        &["/nonexistent.json: cannot read library"],
    );
    fails_with(&["run", &g], &["g.fbp:1", "process 'a'", "myns/Repeater"]);

    let external = scratch_file(
        "library",
        "external.fbp",
        "a(core/Repeat) OUT -> IN w(Worker)\n",
    );
    let (ok, _, stderr) = run(&["validate", "--library", &library, &external]);
    assert!(ok, "a command is a valid mapping: {stderr}");
    fails_with(
        &["run", "--library", &library, &external],
        &[
            "external.fbp:1: process 'w': component 'Worker' is an external participant \
             (command `python3 worker.py --name #ROLE --iips #IIPS`); it needs --broker",
        ],
    );

    let unknown = scratch_file("library", "unknown.fbp", "a(core/Repeat)\n\nb(myns/Nope)\n");
    fails_with(
        &["validate", "--library", &library, &unknown],
        &[
            "unknown.fbp:3: process 'b'",
            "unknown component 'myns/Nope'",
            "lib.json",
        ],
    );
}

#[test]
fn library_beside_the_graph_is_the_default() {
    let dir = scratch("library-beside");
    std::fs::remove_file(dir.join("msgflo.json")).ok();
    let g = scratch_file(
        "library-beside",
        "g.fbp",
        "a(Repeater) OUT -> IN b(core/Drop)\n",
    );
    // A package.json without a `msgflo` key is not a library: names are not checked.
    scratch_file("library-beside", "package.json", r#"{"name": "p"}"#);
    let (ok, _, stderr) = run(&["validate", &g]);
    assert!(ok, "{stderr}");
    let repeat = Path::new(&components()).join("core/Repeat.wasm");
    let text = serde_json::json!({
        "name": "p",
        "msgflo": { "components": { "p/Repeater": repeat.to_str().expect("utf8") } },
    });
    scratch_file("library-beside", "package.json", text.to_string());
    let (ok, _, stderr) = run(&["validate", &g]);
    assert!(ok, "package name is the namespace: {stderr}");
    scratch_file("library-beside", "msgflo.json", r#"{"components": {}}"#);
    fails_with(
        &["validate", &g],
        &[
            "g.fbp:1: process 'a'",
            "unknown component 'Repeater'",
            "msgflo.json",
        ],
    );
    std::fs::remove_file(dir.join("msgflo.json")).ok();
}

#[test]
fn graph_draws_svg() {
    let file = repo().join("graphs/inside-outside.fbp");
    let (ok, stdout, stderr) = run(&["graph", file.to_str().expect("utf8"), "--format", "svg"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("<svg "), "{stdout}");
    assert!(stdout.trim_end().ends_with("</svg>"));
    assert!(stdout.contains(">combine</text>"));
}

#[test]
fn run_watch_swaps_a_rewritten_component_in() {
    // Private copies of the demo's components, so the test can rewrite one.
    let dir = scratch("watch");
    let comps = dir.join("components");
    std::fs::create_dir_all(comps.join("temperature")).expect("dir");
    let built = wasmflo_host::component::components_dir();
    for name in ["Sensor", "Format", "Display"] {
        let file = format!("temperature/{name}.wasm");
        std::fs::copy(built.join(&file), comps.join(&file)).expect("copy");
    }
    let graph = dir.join("temperature.fbp");
    std::fs::copy(repo().join("graphs/temperature.fbp"), &graph).expect("copy graph");
    // A fast sensor, so the stream is steady.
    let src = std::fs::read_to_string(&graph).expect("graph");
    std::fs::write(
        &graph,
        src.replace("'1000' -> INTERVAL", "'20' -> INTERVAL"),
    )
    .expect("w");

    let mut child = cli()
        .env("WASMFLO_COMPONENTS_DIR", &comps)
        .arg("run")
        .arg(&graph)
        .arg("--watch")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| loop {
        let line = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("{needle:?} within the deadline"));
        if line.contains(needle) {
            break line;
        }
    };
    wait_for("[display] Temperature: ");

    let format = comps.join("temperature/Format.wasm");
    let bytes = std::fs::read(&format).expect("read");
    let next = crate::live::with_custom_section(&bytes, "cli-watch-test", b"v2");
    let tmp = format.with_extension("tmp");
    std::fs::write(&tmp, &next).expect("write");
    std::fs::rename(&tmp, &format).expect("rename");
    let version = wasmflo_host::component::hash_bytes(&next);
    let swapped = wait_for("now running version");
    assert!(swapped.contains(&version[..12]), "{swapped}");
    assert!(swapped.contains("format"), "{swapped}");
    // The graph keeps running on the new code.
    wait_for("[display] Temperature: ");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    assert!(status.expect("kill").success());
    let summary = wait_for("format: ");
    assert!(summary.contains("1 swaps (0 rejected)"), "{summary}");
    assert!(child.wait().expect("exit").success());
}
