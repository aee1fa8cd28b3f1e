//! Differential test: 10,000 generated inputs (fixed seed) through `temperature/Format` on
//! the server host (wasmtime) and the edge host (wasmi) give identical outputs and
//! identical fault kinds and nack reasons. Expected values come from the server host at
//! test time.

mod common;

use std::collections::BTreeMap;

use common::device::device_component;
use common::{Call, component, edge_component, run_edge, run_server};
use wasmflo_edge::{Limits, Message};

const INPUTS: usize = 10_000;

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

fn number_text(rng: &mut Rng) -> String {
    match rng.below(8) {
        // Any bit pattern: NaN and infinities print as non-JSON text (`NaN`, `inf`).
        0 => format!("{}", f64::from_bits(rng.next())),
        1 => format!("{:e}", f64::from_bits(rng.next())),
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
                -5.55,
                0.05,
                -0.05,
                -0.04999999999,
                0.95,
                -273.15,
                1.7976931348623157e308 / 1.8,
            ];
            format!("{}", specials[rng.below(specials.len() as u64) as usize])
        }
        // Typical readings with a random number of decimals.
        3 => {
            let value =
                (rng.below(40_000) as f64 - 20_000.0) / 100.0 + rng.below(1000) as f64 / 1e7;
            format!("{value:.*}", rng.below(12) as usize)
        }
        // Exponents past f64's range and tiny ones.
        4 => format!(
            "{}{}e{}{}",
            rng.pick(&["", "-"]),
            rng.below(100),
            rng.pick(&["", "-", "+"]),
            rng.below(700)
        ),
        // Near-JSON and garbage around numbers.
        5 => rng
            .pick(&[
                " 22 ", "22x", "0x16", "+1", "01", ".5", "1.", "--1", "1e", "-", "", "\n-0\t",
                "22.5.5", "1_000", "١٢",
            ])
            .to_string(),
        6 => format!("{}", rng.next() as i64),
        _ => format!("{}", rng.below(200) as f64 - 100.0),
    }
}

fn payload(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=5 => number_text(rng).into_bytes(),
        // Random bytes: mostly invalid UTF-8.
        6 => (0..rng.below(16)).map(|_| rng.next() as u8).collect(),
        // Wrong JSON types.
        7 => rng
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
                "\"\\ud800\"",
                "\"NaN\"",
            ])
            .into(),
        // Valid JSON number inside other JSON.
        8 => format!("[{}]", number_text(rng)).into_bytes(),
        _ => format!("\"{}\"", number_text(rng)).into_bytes(),
    }
}

fn message(rng: &mut Rng, data: Vec<u8>) -> Message {
    let content_type = match rng.below(20) {
        0 => "text/plain",
        1 => "application/octet-stream",
        2 => "application/json",
        3 => "application/vnd.reading+json",
        _ => "",
    };
    let metadata = if rng.below(10) == 0 {
        vec![
            ("correlation-id".to_string(), rng.next().to_string()),
            ("reply-to".to_string(), "x".repeat(rng.below(40) as usize)),
        ]
    } else {
        Vec::new()
    };
    Message {
        content_type: content_type.into(),
        data,
        metadata,
    }
}

fn inputs(seed: u64) -> Vec<Call> {
    let mut rng = Rng(seed);
    let mut calls = vec![Call::Start];
    while calls.len() < INPUTS + 1 {
        let call = match rng.below(50) {
            // Unit changes, valid and not.
            0..=2 => {
                let unit = rng.pick(&[
                    "\"C\"", "\"F\"", "\"K\"", "\"R\"", "\"c\"", "5", "null", "\"\"",
                ]);
                Call::Process("unit".into(), message(&mut rng, unit.into()))
            }
            3 => Call::Process(
                rng.pick(&["out", "IN", "", "in "]).into(),
                Message::json_text("1"),
            ),
            _ => {
                let data = payload(&mut rng);
                Call::Process("in".into(), message(&mut rng, data))
            }
        };
        calls.push(call);
    }
    calls
}

#[test]
fn ten_thousand_inputs_give_identical_results_on_both_hosts() {
    ten_thousand_inputs(&component("temperature/Format"));
}

/// The device profile's build (a fixed memory of 1-byte pages, the non-growing
/// allocator): the same file on both hosts.
#[test]
fn the_device_build_gives_identical_results_on_both_hosts() {
    ten_thousand_inputs(&device_component("temperature/Format"));
}

/// The device build gives, on the server host, the standard build's results for the
/// 10,000 inputs (both computed now): the same outputs, timers and fault kinds. Nack
/// reasons are left out: the device build parses JSON without serde_json and does not
/// print floats, so its reasons are shorter texts (each build still gives the same
/// reasons on both hosts, checked above).
#[test]
fn the_device_build_gives_the_standard_builds_results() {
    let calls = inputs(0x5eed_f00d_cafe_d00d);
    let without_reason = |seen: Vec<common::Seen>| -> Vec<common::Seen> {
        seen.into_iter()
            .map(|mut s| {
                if let Err((kind, Some(_))) = &s.result {
                    s.result = Err((kind.clone(), None));
                }
                s
            })
            .collect()
    };
    let standard = without_reason(run_server(&component("temperature/Format"), &calls));
    let device = without_reason(run_server(&device_component("temperature/Format"), &calls));
    assert_eq!(standard.len(), device.len());
    if let Some(i) = standard.iter().zip(&device).position(|(s, d)| s != d) {
        panic!(
            "the builds differ first on call {i}, {:?}: standard {:?}, device {:?}",
            calls[i], standard[i], device[i]
        );
    }
}

/// The device build's memory has 1-byte pages and is fixed below one 64 KiB page; the
/// file runs unchanged on both hosts, on the server host also in the pooling allocator
/// with a memory cap of exactly its size, and a cap one byte smaller refuses it on both.
#[test]
fn the_device_build_has_a_fixed_memory_of_byte_pages_below_one_page() {
    use wasmflo_host::component::Loader;
    use wasmflo_host::runtime::{Runtime, RuntimeConfig};

    let path = device_component("temperature/Format");
    let bytes = std::fs::read(&path).expect("read the component");
    let memory = wasmflo_guest_build::linear_memory(&bytes).expect("a linear memory");
    println!("device formatter memory: {memory:?}");
    assert_eq!(memory.page_size, 1);
    assert_eq!(memory.maximum, Some(memory.initial));
    assert!(memory.initial < 64 * 1024, "{memory:?}");
    let size = usize::try_from(memory.initial).expect("size");

    let calls = inputs(0x0b17_e5ed)[..500].to_vec();
    let expected = run_server(&path, &calls);
    let component = edge_component(&path);
    let exact = Limits {
        memory: size,
        ..Limits::device()
    };
    assert_eq!(run_edge(&component, &calls, &exact), expected);
    let edge_refusal = component.instantiate(&Limits {
        memory: size - 1,
        ..Limits::device()
    });
    let edge_refusal = edge_refusal.err().map(|f| f.kind.as_str());
    assert!(edge_refusal.is_some());

    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 4,
        max_memory: 1 << 20,
        pooling: true,
        ..Default::default()
    })
    .expect("pooling runtime");
    let loaded = Loader::new(runtime, None).load(&path).expect("load");
    let cap = |memory| wasmflo_host::runtime::Limits {
        memory,
        ..Default::default()
    };
    for _ in 0..3 {
        let mut instance = loaded
            .instantiate(std::sync::Arc::from("fmt"), &cap(size))
            .expect("instantiate in the pool at exactly its size");
        let _ = instance.start();
        let out = instance.process(
            "in",
            &wasmflo_host::message::Message {
                content_type: String::new(),
                data: b"22.3333".to_vec().into(),
                metadata: Vec::new(),
            },
        );
        let texts: Vec<Vec<u8>> = out.outputs.iter().map(|(_, m)| m.data.to_vec()).collect();
        assert_eq!(texts, [b"\"Temperature: 22.3 C\"".to_vec()]);
    }
    let server_refusal = loaded
        .instantiate(std::sync::Arc::from("fmt"), &cap(size - 1))
        .err()
        .map(|(kind, _)| kind.as_str());
    assert_eq!(server_refusal, edge_refusal);
}

fn ten_thousand_inputs(path: &std::path::Path) {
    let calls = inputs(0x5eed_f00d_cafe_d00d);
    let path = path.to_path_buf();
    let expected = run_server(&path, &calls);
    let got = run_edge(&edge_component(&path), &calls, &Limits::default());
    assert_eq!(got.len(), expected.len());
    let mut mismatches = Vec::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let kind = match &e.result {
            Ok(()) => "ok".to_string(),
            Err((kind, _)) => kind.clone(),
        };
        *kinds.entry(kind).or_default() += 1;
        if g != e {
            mismatches.push((i, &calls[i], g, e));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} calls differ; first: {:?}",
        mismatches.len(),
        calls.len(),
        mismatches.first()
    );
    // The generator reaches both outcomes in bulk, and nothing traps.
    println!("outcomes: {kinds:?}");
    assert!(kinds.get("ok").copied().unwrap_or(0) > 3_000, "{kinds:?}");
    assert!(
        kinds.get("invalid-input").copied().unwrap_or(0) > 2_000,
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

fn random_string(rng: &mut Rng) -> String {
    let alphabet = [
        "a", "Z", "0", " ", "-", "é", "ß", "€", "😀", "\u{0}", "\"", "\\", "\n",
    ];
    (0..rng.below(12)).map(|_| rng.pick(&alphabet)).collect()
}

/// The canonical ABI's lowering and lifting of whole messages: 2,000 random messages
/// (any bytes, content types and metadata, including non-ASCII and NUL) through
/// `core/Repeat` come back identical on both hosts.
#[test]
fn random_messages_round_trip_identically_through_repeat() {
    let mut rng = Rng(0x0dd_ba11_5eed);
    let mut calls = vec![Call::Start];
    for _ in 0..2_000 {
        let data: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        let metadata = (0..rng.below(5))
            .map(|_| (random_string(&mut rng), random_string(&mut rng)))
            .collect();
        calls.push(Call::Process(
            "in".into(),
            Message {
                content_type: random_string(&mut rng),
                data,
                metadata,
            },
        ));
    }
    let path = component("core/Repeat");
    let expected = run_server(&path, &calls);
    let got = run_edge(&edge_component(&path), &calls, &Limits::default());
    assert_eq!(got, expected);
    assert!(
        got.iter()
            .skip(1)
            .all(|s| s.result.is_ok() && s.outputs.len() == 1)
    );
}
