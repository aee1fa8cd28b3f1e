//! Participants in C, Python and JavaScript beside Rust: built from source here (the
//! toolchains install on first use), compared with the Rust formatter on generated
//! inputs, run together in one graph, run standalone on both brokers, scaffolded by
//! `wasmflo new`, and refused with clear errors when built wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use wasmflo_guest_build::foreign::{ForeignOptions, build_foreign, discover_foreign};
use wasmflo_guest_build::{component_path, workspace_target_dir};
use wasmflo_host::component::components_dir;
use wasmflo_host::message::Message;
use wasmflo_host::runtime::Limits;

use crate::brokers::{self, AMQP, MQTT, broker, client, consume, role};
use crate::support::*;

/// The formatter in every language, Rust first (the oracle).
pub const FORMATTERS: [&str; 4] = [
    "temperature/Format",
    "c/Format",
    "python/Format",
    "js/Format",
];

/// Builds `components/{c,python,js}/*` into the components dir once per test binary
/// (a no-op when their inputs did not change since the last build).
pub fn polyglot() -> &'static BTreeMap<String, PathBuf> {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo();
        let dirs: Vec<PathBuf> = ["c", "python", "js"]
            .iter()
            .map(|l| root.join("components").join(l))
            .collect();
        let guests = discover_foreign(&dirs).expect("discover the polyglot components");
        let opts = ForeignOptions {
            workspace_root: root.clone(),
            target_dir: workspace_target_dir(&root),
            out_dir: components_dir(),
        };
        build_foreign(&opts, &guests)
            .expect("build the polyglot components")
            .into_iter()
            .map(|c| (c.name, c.path))
            .collect()
    })
}

fn path_of(name: &str) -> PathBuf {
    if name.starts_with("temperature/") {
        component_path(&components_dir(), name)
    } else {
        polyglot()
            .get(name)
            .unwrap_or_else(|| panic!("{name} was not built"))
            .clone()
    }
}

// --- differential: every formatter against the Rust one --------------------------------

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A double from any sign and mantissa and an exponent that keeps it below 2^50, or NaN
/// or an infinity. Larger finite values print every integer digit, where the Rust
/// guest's JSON parser (serde_json without `float_roundtrip`, kept off to keep
/// components small) can be one unit in the last place off the nearest double; the
/// exact-fast-path cases below still reach those magnitudes.
fn any_double(rng: &mut Rng) -> f64 {
    let bits = rng.next();
    let exponent = match rng.below(20) {
        0 => 0x7ff,
        1 => 0,
        _ => 1023 - 60 + rng.below(110),
    };
    f64::from_bits((bits & 0x800f_ffff_ffff_ffff) | (exponent << 52))
}

fn number_text(rng: &mut Rng) -> String {
    match rng.below(9) {
        // NaN and infinities print as non-JSON text.
        0 => format!("{}", any_double(rng)),
        1 => format!("{:e}", any_double(rng)),
        2 => {
            let specials = [
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                0.0,
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE,
                5e-324,
                22.25,
                -22.25,
                -5.55,
                0.05,
                -0.05,
                -0.04999999999,
                0.95,
                -273.15,
                1e21,
                -1e22,
            ];
            format!("{:?}", specials[rng.below(specials.len() as u64) as usize])
        }
        // Typical readings with a random number of decimals.
        3 => {
            let value =
                (rng.below(40_000) as f64 - 20_000.0) / 100.0 + rng.below(1000) as f64 / 1e7;
            format!("{value:.*}", rng.below(12) as usize)
        }
        // Exactly half-way tenths: where rounding rules differ between languages.
        4 => format!("{}.{}5", rng.below(2000) as i64 - 1000, rng.below(10)),
        // Exponents past f64's range, tiny ones, and large ones a JSON parser gets
        // exactly (a small mantissa times 10^0..=22).
        5 => {
            let exponent = match rng.below(3) {
                0 => format!("-{}", rng.below(700)),
                1 => format!("{}{}", rng.pick(&["", "+"]), rng.below(23)),
                _ => format!("{}", 309 + rng.below(400)),
            };
            format!("{}{}e{exponent}", rng.pick(&["", "-"]), rng.below(100))
        }
        // Near-JSON and garbage around numbers.
        6 => rng
            .pick(&[
                " 22 ",
                "22x",
                "0x16",
                "+1",
                "01",
                ".5",
                "1.",
                "--1",
                "1e",
                "-",
                "",
                "\n-0\t",
                "22.5.5",
                "1_000",
                "١٢",
                "NaN",
                "Infinity",
                "-Infinity",
                "\u{feff}22",
                "-0.0",
            ])
            .to_string(),
        7 => format!("{}", rng.next() as i64),
        _ => format!("{}", rng.below(200) as f64 - 100.0),
    }
}

fn payload(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=6 => number_text(rng).into_bytes(),
        7 => (0..rng.below(16)).map(|_| rng.next() as u8).collect(),
        8 => rng
            .pick(&[
                "\"22.5\"",
                "null",
                "true",
                "[1]",
                "{\"t\":1}",
                "\"\"",
                "\"hot\"",
                "[]",
                "{}",
                "\"NaN\"",
                "false",
            ])
            .into(),
        _ => format!("[{}]", number_text(rng)).into_bytes(),
    }
}

fn message(rng: &mut Rng, data: Vec<u8>) -> Message {
    let mut msg = Message::json_text(data);
    msg.content_type = match rng.below(25) {
        0 => "text/plain",
        1 => "application/json; charset=utf-8",
        2 => "application/vnd.reading+json",
        _ => "",
    }
    .into();
    if rng.below(10) == 0 {
        msg.set_meta("correlation-id", rng.next().to_string());
    }
    msg
}

/// (port, message) pairs: readings mostly, unit changes sometimes.
fn inputs(seed: u64, n: usize) -> Vec<(String, Message)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            if rng.below(40) == 0 {
                let unit = rng.pick(&[
                    "\"C\"",
                    "\"F\"",
                    "\"K\"",
                    "\"R\"",
                    "\"c\"",
                    "5",
                    "null",
                    "\"\"",
                    "\"\\u0046\"",
                    "\"toString\"",
                ]);
                ("unit".to_string(), Message::json_text(unit))
            } else {
                let data = payload(&mut rng);
                ("in".to_string(), message(&mut rng, data))
            }
        })
        .collect()
}

/// What one call did, in a form every language must reproduce exactly: the messages
/// sent (outport, content type, payload, metadata) and `ok` or the nack's kind. Nack
/// reasons are each language's own words.
type Outcome = (Vec<(usize, String, Vec<u8>, Vec<(String, String)>)>, String);

fn run(name: &str, calls: &[(String, Message)]) -> Vec<Outcome> {
    let loaded = loader().load(&path_of(name)).expect("component loads");
    let mut instance = loaded
        .instantiate(Arc::from(name), &Limits::default())
        .expect("instantiates");
    assert!(instance.start().result.is_ok(), "{name} starts");
    calls
        .iter()
        .map(|(port, msg)| {
            let out = instance.process(port, msg);
            let result = match out.result {
                Ok(()) => "ok".to_string(),
                Err((kind, _)) => kind.as_str().to_string(),
            };
            let sent = out
                .outputs
                .into_iter()
                .map(|(i, m)| (i, m.content_type, m.data.to_vec(), m.metadata))
                .collect();
            (sent, result)
        })
        .collect()
}

#[test]
fn every_formatter_matches_the_rust_one_on_generated_inputs() {
    let calls = inputs(0x5eed_0fc0_ffee, 1_500);
    let expected = run(FORMATTERS[0], &calls);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, result) in &expected {
        *outcomes.entry(result).or_default() += 1;
    }
    // The generator reaches both outcomes in bulk, and nothing traps.
    assert!(
        outcomes.get("ok").copied().unwrap_or(0) > 600,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get("invalid-input").copied().unwrap_or(0) > 300,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    for name in &FORMATTERS[1..] {
        let got = run(name, &calls);
        let differ: Vec<usize> = (0..calls.len())
            .filter(|&i| got[i] != expected[i])
            .collect();
        if let Some(&i) = differ.first() {
            panic!(
                "{name}: {} of {} calls differ from temperature/Format; first, call {i} \
                 ({} {:?} {:?}): got {:?}, Rust gave {:?}",
                differ.len(),
                calls.len(),
                calls[i].0,
                calls[i].1.content_type,
                String::from_utf8_lossy(&calls[i].1.data),
                got[i],
                expected[i]
            );
        }
    }
}

// --- one graph, four languages -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_mixes_all_four_languages() {
    polyglot();
    let graph = fbp("
        '0' -> INTERVAL sensor(temperature/Sensor)
        '22.0' -> BASE sensor
        '3' -> WINDOW median(c/Median)
        sensor OUT -> IN median
        median OUT -> IN rust(temperature/Format)
        median OUT -> IN c(c/Format)
        median OUT -> IN python(python/Format)
        median OUT -> IN js(js/Format)
        '5' -> WINDOW stats(python/Stats)
        '{{count}} readings, max {{max|fixed:1}}' -> TEMPLATE summary(js/Template)
        median OUT -> IN stats OUT -> IN summary
    ");
    let mut net = start_project(&graph).await;
    let mut readings = net.probe("sensor.OUT").await;
    let mut medians = net.probe("median.OUT").await;
    let mut texts = Vec::new();
    for p in ["rust", "c", "python", "js"] {
        texts.push(net.probe(&format!("{p}.OUT")).await);
    }
    let mut summaries = net.probe("summary.OUT").await;
    let mut window: Vec<f64> = Vec::new();
    for n in 1..=6 {
        net.send("sensor.TRIGGER", "null").await;
        let reading = next_json(&mut readings).await.as_f64().expect("a reading");
        window.push(reading);
        if window.len() > 3 {
            window.remove(0);
        }
        let mut sorted = window.clone();
        sorted.sort_by(f64::total_cmp);
        let median = next_json(&mut medians).await.as_f64().expect("a median");
        assert_eq!(median, sorted[sorted.len() / 2], "median of {window:?}");
        let rust = next_json(&mut texts[0]).await;
        for sub in &mut texts[1..] {
            assert_eq!(next_json(sub).await, rust);
        }
        let summary = next_json(&mut summaries).await;
        assert!(
            summary
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{} readings, max ", n.min(5)))),
            "{summary}"
        );
    }
    let reports = net.stop().await;
    for r in &reports {
        assert_eq!(r.stats.failed, 0, "{} failed", r.process);
    }
}

// --- standalone participants on both brokers --------------------------------------------

/// Every non-Rust participant, one input and the output it must give.
const STANDALONE: [(&str, &str, &str); 6] = [
    ("c/Format", "22.25", r#""Temperature: 22.3 C""#),
    ("python/Format", "22.25", r#""Temperature: 22.3 C""#),
    ("js/Format", "22.25", r#""Temperature: 22.3 C""#),
    ("c/Median", "22.25", "22.25"),
    ("js/Template", r#"{"value": 7}"#, r#""7""#),
    (
        "python/Stats",
        "4",
        r#"{"count":1,"mean":4.0,"median":4.0,"stdev":0.0,"min":4.0,"max":4.0,"p10":4.0,"p90":4.0}"#,
    ),
];

async fn standalone_on(url: &str) {
    polyglot();
    // Compiled into the participants' cache first: a cold compile of the Python and
    // JavaScript components takes longer than the wait for `ready` on a loaded machine.
    for (name, _, _) in STANDALONE {
        let status = tokio::task::block_in_place(|| {
            brokers::cli()
                .arg("inspect")
                .arg(path_of(name))
                .stdout(std::process::Stdio::null())
                .status()
        })
        .expect("wasmflo inspect");
        assert!(status.success(), "wasmflo inspect {name}: {status}");
    }
    let t = client(url).await;
    for (name, input, expected) in STANDALONE {
        let r = role("solo");
        let mut out = consume(&t, &format!("{r}.OUT")).await;
        let mut p = brokers::participant(url, &[format!("{r}={name}")]);
        p.stdout_line(&format!("ready {r}")).await;
        t.send_to_queue(&format!("{r}.IN"), Message::json_text(input))
            .await
            .expect("send");
        let got: Value = serde_json::from_slice(&brokers::next(&mut out).await.data).expect("JSON");
        let expected: Value = serde_json::from_str(expected).expect("expected JSON");
        assert_eq!(got, expected, "{name} on {url}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn non_rust_participants_run_standalone_on_mqtt() {
    if let Some(url) = broker(MQTT) {
        standalone_on(url).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn non_rust_participants_run_standalone_on_amqp() {
    if let Some(url) = broker(AMQP) {
        standalone_on(url).await;
    }
}

// --- wasmflo new: every language's scaffold builds and runs -----------------------------

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("polyglot")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn cli_ok(args: &[&str], out_dir: &Path) -> String {
    let out = brokers::cli()
        .args(args)
        .env("WASMFLO_COMPONENTS_DIR", out_dir)
        .output()
        .expect("run the CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "wasmflo {args:?} failed:\n{text}");
    text
}

#[test]
fn new_scaffolds_a_participant_that_builds_and_runs_in_every_language() {
    polyglot(); // the toolchains are installed by now
    let base = scratch("new");
    let out = base.join("components");
    let out_s = out.to_str().expect("utf-8 path");
    // The scaffolds' graphs show their output through core/Output.
    let output = component_path(&out, "core/Output");
    std::fs::create_dir_all(output.parent().expect("dir")).expect("out dir");
    std::fs::copy(component_path(&components_dir(), "core/Output"), &output).expect("copy");
    for lang in ["c", "python", "js", "rust"] {
        let dir = base.join(lang);
        let dir_s = dir.to_str().expect("utf-8 path");
        let name = format!("scaffold/Count{lang}");
        cli_ok(&["new", &name, "--lang", lang, "--dir", dir_s], &out);
        cli_ok(&["build", dir_s, "--out", out_s], &out);
        let graph = base.join(format!("{lang}.fbp"));
        std::fs::write(
            &graph,
            format!("'hello' -> IN count({name}) OUT -> IN show(core/Output)\n"),
        )
        .expect("write graph");
        let text = cli_ok(
            &["run", graph.to_str().expect("utf-8"), "--for", "1s"],
            &out,
        );
        let shown: Option<Value> = text
            .lines()
            .find_map(|l| l.split_once("[show] "))
            .and_then(|(_, json)| serde_json::from_str(json).ok());
        assert_eq!(
            shown,
            Some(json!({"n": 1, "message": "hello"})),
            "{lang} scaffold output:\n{text}"
        );
    }
}

// --- errors a polyglot author meets ------------------------------------------------------

/// A copy of the workspace's WIT with the package version replaced, as a guest built
/// against another release of the world would have.
fn old_wit(root: &Path) -> PathBuf {
    let dir = root.join("wit");
    std::fs::create_dir_all(&dir).expect("wit dir");
    let text = std::fs::read_to_string(repo().join("wit/participant.wit")).expect("wit");
    std::fs::write(
        dir.join("participant.wit"),
        text.replace("wasmflo:participant@0.1.0", "wasmflo:participant@0.0.9"),
    )
    .expect("write wit");
    dir
}

#[test]
fn a_c_guest_built_against_an_older_world_is_refused_by_name() {
    let base = scratch("old-world");
    old_wit(&base);
    // The SDK header comes from the workspace; the world from the old copy.
    std::fs::create_dir_all(base.join("guest-sdk")).expect("sdk dir");
    let sdk = base.join("guest-sdk/c");
    let _ = std::fs::remove_dir_all(&sdk);
    std::fs::create_dir_all(&sdk).expect("sdk dir");
    std::fs::copy(repo().join("guest-sdk/c/wasmflo.h"), sdk.join("wasmflo.h")).expect("copy");
    let guests =
        discover_foreign(&[repo().join("components/c/temperature-format")]).expect("c/Format");
    let opts = ForeignOptions {
        workspace_root: base.clone(),
        target_dir: base.join("target"),
        out_dir: base.join("out"),
    };
    let built = build_foreign(&opts, &guests).expect("builds against the old world");
    let err = loader()
        .load(&built[0].path)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("Format.wasm") && err.contains("built against wasmflo:participant@0.0.9"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A guest folder `name` holding `file` (a shipped component's source after `edit`) and
/// a manifest for `component` in `language`; returns the result of building it.
fn build_broken(
    name: &str,
    component: &str,
    language: &str,
    file: &str,
    shipped: &str,
    edit: impl FnOnce(&str) -> String,
) -> Result<Vec<wasmflo_guest_build::BuiltComponent>, wasmflo_guest_build::BuildError> {
    polyglot();
    let dir = scratch(name);
    std::fs::write(
        dir.join("wasmflo.toml"),
        format!("component = \"{component}\"\nlanguage = \"{language}\"\n"),
    )
    .expect("manifest");
    let src = std::fs::read_to_string(repo().join(shipped)).expect("shipped source");
    std::fs::write(dir.join(file), edit(&src)).expect("source");
    let guests = discover_foreign(std::slice::from_ref(&dir)).expect("discover");
    let root = repo();
    let opts = ForeignOptions {
        workspace_root: root.clone(),
        target_dir: workspace_target_dir(&root),
        out_dir: dir.join("out"),
    };
    build_foreign(&opts, &guests)
}

#[test]
fn a_js_guest_missing_an_export_fails_its_build_naming_it() {
    let err = build_broken(
        "missing-export",
        "broken/NoTimer",
        "js",
        "index.js",
        "components/js/temperature-format/index.js",
        |src| src[..src.find("export function onTimer").expect("onTimer")].to_string(),
    )
    .expect_err("the build fails")
    .to_string();
    assert!(
        err.contains("broken/NoTimer") && err.contains("onTimer"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_uncaught_python_exception_names_itself_in_the_fault() {
    let built = build_broken(
        "python-exception",
        "broken/Divide",
        "python",
        "app.py",
        "components/python/temperature-format/app.py",
        |src| {
            src.replacen(
                "        value = wasmflo.json_of(msg)\n",
                "        value = wasmflo.json_of(msg)\n        if value == 0:\n            return 1 / 0\n",
                1,
            )
        },
    )
    .expect("builds");
    let loaded = loader().load(&built[0].path).expect("loads");
    let mut instance = loaded
        .instantiate(Arc::from("divide"), &Limits::default())
        .expect("instantiates");
    assert!(instance.start().result.is_ok());
    let out = instance.process("in", &Message::json_text("0"));
    let (kind, detail) = out.result.expect_err("a fault");
    assert_eq!(kind.as_str(), "trap");
    assert!(
        detail.ends_with("ZeroDivisionError: division by zero"),
        "{detail}"
    );
    // A fresh instance goes on serving (the host recreates poisoned ones).
    let mut fresh = loaded
        .instantiate(Arc::from("divide"), &Limits::default())
        .expect("instantiates");
    assert!(fresh.start().result.is_ok());
    let out = fresh.process("in", &Message::json_text("22.25"));
    assert!(out.result.is_ok());
    assert_eq!(&out.outputs[0].1.data[..], b"\"Temperature: 22.3 C\"");
}

#[test]
fn wasi_a_process_is_not_granted_is_named_with_its_grant_at_start() {
    polyglot();
    let dir = scratch("withheld");
    let graph = dir.join("g.json");
    std::fs::write(
        &graph,
        r#"{"processes": {
              "open": {"component": "python/Format"},
              "granted": {"component": "python/Stats",
                          "metadata": {"network": "true", "clock": "true"}}}}"#,
    )
    .expect("graph");
    let out = brokers::cli()
        .args(["run", graph.to_str().expect("utf-8"), "--for", "0s"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let line = |process: &str| {
        text.lines()
            .find(|l| l.contains(&format!("process '{process}'")) && l.contains("not granted"))
            .unwrap_or_default()
            .to_string()
    };
    let open = line("open");
    assert!(
        open.contains("wasi:sockets (network=true)") && open.contains("wasi:clocks (clock=true)"),
        "{text}"
    );
    let granted = line("granted");
    assert!(
        !granted.contains("wasi:sockets") && !granted.contains("wasi:clocks"),
        "{granted}"
    );
}
