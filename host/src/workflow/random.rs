//! Random well-typed workflow trees over the shipped tasks, for property tests: a tree
//! from [`Rng::new`] evaluates without a task failure, so results can be compared
//! exactly; [`Rng::with_failures`] plants failing calls to compare failures too.

use serde_json::{Map, Value};

use super::signature::{Signature, TaskCall};

/// A small deterministic generator (SplitMix64); the same seed gives the same trees.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    fail_one_in: u64,
}

impl Rng {
    /// A generator from `seed` of trees that never fail.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            fail_one_in: 0,
        }
    }

    /// A generator from `seed` whose task steps fail one time in `n` (a string argument
    /// to an arithmetic task).
    pub fn with_failures(seed: u64, n: u64) -> Rng {
        Rng {
            state: seed,
            fail_one_in: n,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn small(&mut self) -> Value {
        Value::from(self.below(21) as i64 - 10)
    }

    fn nums(&mut self, max: u64) -> Vec<Value> {
        (0..self.below(max + 1)).map(|_| self.small()).collect()
    }
}

/// What a step's result is, as far as the next step is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A number.
    Num,
    /// A list of numbers (for `tsum`, `xsum`).
    Nums,
    /// A list of numbers and lists of numbers (for `xsum`).
    Mixed,
    /// Anything else: only steps that ignore it may follow.
    Deep,
}

/// A random workflow of nesting depth at most `depth`.
pub fn workflow(rng: &mut Rng, depth: u32) -> Signature {
    step(rng, depth, None).0
}

fn call(name: &str, args: Vec<Value>, immutable: bool) -> Signature {
    Signature::Task(TaskCall {
        name: name.into(),
        args,
        kwargs: Map::new(),
        immutable,
    })
}

fn binary(rng: &mut Rng) -> &'static str {
    ["add", "sub", "mul"][rng.below(3) as usize]
}

/// A step that ignores any previous result (`free`: there is none to ignore).
fn standalone(rng: &mut Rng, free: bool) -> (Signature, Kind) {
    let pairs = |rng: &mut Rng, n: u64| -> Vec<Value> {
        (0..rng.below(n + 1))
            .map(|_| Value::Array(vec![rng.small(), rng.small()]))
            .collect()
    };
    match rng.below(6) {
        0 => (
            call(binary(rng), vec![rng.small(), rng.small()], true),
            Kind::Num,
        ),
        1 => {
            let items = (0..rng.below(4))
                .map(|_| Value::Array(rng.nums(4)))
                .collect();
            (
                Signature::Map {
                    task: "xsum".into(),
                    items,
                },
                Kind::Nums,
            )
        }
        2 => (
            Signature::Starmap {
                task: binary(rng).into(),
                items: pairs(rng, 5),
            },
            Kind::Nums,
        ),
        3 => (
            Signature::Chunks {
                task: binary(rng).into(),
                items: pairs(rng, 9),
                size: 1 + rng.below(4) as usize,
            },
            Kind::Mixed,
        ),
        4 => {
            let items = Value::Array(rng.nums(5));
            (call("tsum", vec![items], true), Kind::Num)
        }
        _ => {
            let mixed = (0..rng.below(4))
                .map(|_| {
                    if rng.below(2) == 0 {
                        rng.small()
                    } else {
                        Value::Array(rng.nums(3))
                    }
                })
                .collect();
            (call("xsum", vec![Value::Array(mixed)], !free), Kind::Num)
        }
    }
}

/// A task step consuming a previous result of kind `parent`, or a standalone one.
fn leaf(rng: &mut Rng, parent: Option<Kind>) -> (Signature, Kind) {
    if rng.fail_one_in > 0 && rng.below(rng.fail_one_in) == 0 {
        let x = Value::from("x");
        let args = match parent {
            None => vec![x, rng.small()],
            Some(_) => vec![x],
        };
        return (call(binary(rng), args, false), Kind::Num);
    }
    let consume = rng.below(3) > 0;
    match parent {
        None if consume => (
            call(binary(rng), vec![rng.small(), rng.small()], false),
            Kind::Num,
        ),
        Some(Kind::Num) if consume => (call(binary(rng), vec![rng.small()], false), Kind::Num),
        Some(Kind::Nums) if consume => {
            let name = if rng.below(2) == 0 { "tsum" } else { "xsum" };
            (call(name, Vec::new(), false), Kind::Num)
        }
        Some(Kind::Mixed) if consume => (call("xsum", Vec::new(), false), Kind::Num),
        _ => standalone(rng, parent.is_none()),
    }
}

fn list_kind(kinds: &[Kind]) -> Kind {
    if kinds.iter().all(|k| *k == Kind::Num) {
        Kind::Nums
    } else if kinds.iter().all(|k| matches!(k, Kind::Num | Kind::Nums)) {
        Kind::Mixed
    } else {
        Kind::Deep
    }
}

fn step(rng: &mut Rng, depth: u32, parent: Option<Kind>) -> (Signature, Kind) {
    if depth == 0 {
        return leaf(rng, parent);
    }
    match rng.below(5) {
        0 | 1 => leaf(rng, parent),
        2 => {
            let (first, mut kind) = step(rng, depth - 1, parent);
            let mut steps = vec![first];
            for _ in 0..1 + rng.below(3) {
                let (s, k) = step(rng, depth - 1, Some(kind));
                steps.push(s);
                kind = k;
            }
            (Signature::Chain(steps), kind)
        }
        3 => {
            let (members, kinds): (Vec<_>, Vec<_>) = (0..rng.below(4))
                .map(|_| step(rng, depth - 1, parent))
                .unzip();
            (Signature::Group(members), list_kind(&kinds))
        }
        _ => {
            let (header, kinds): (Vec<_>, Vec<_>) = (0..rng.below(4))
                .map(|_| step(rng, depth - 1, parent))
                .unzip();
            let (body, kind) = step(rng, depth - 1, Some(list_kind(&kinds)));
            (
                Signature::Chord {
                    header,
                    body: Box::new(body),
                },
                kind,
            )
        }
    }
}
