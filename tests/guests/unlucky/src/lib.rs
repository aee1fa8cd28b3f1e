//! `test/Unlucky`: forwards every message on `in` to `out` unchanged, except a seeded ~1 %
//! of them, on which it traps (a wasm `unreachable`).
//!
//! A message is the JSON object `{"seq": <u64>, "seed": <u64>}`; it traps when
//! [`unlucky`]`(seed, seq)`. The fault-injection tests compute the same function to know
//! which messages must come out and which must be dead-lettered.

use serde_json::Value;
use wasmflo_guest::prelude::*;

/// One message in this many traps, on average.
pub const ONE_IN: u64 = 100;

/// Whether message `seq` of a run seeded with `seed` traps (SplitMix64 of `seed ^ seq`).
pub fn unlucky(seed: u64, seq: u64) -> bool {
    let mut z = (seed ^ seq).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).is_multiple_of(ONE_IN)
}

/// The participant; stateless.
#[derive(Debug, Default)]
pub struct Unlucky;

impl Participant for Unlucky {
    fn definition() -> Definition {
        Definition::new("test/Unlucky")
            .label("Traps on a seeded 1 % of messages")
            .inport(Port::new("in", "object").description("{\"seq\": n, \"seed\": s}"))
            .outport(Port::new("out", "object").description("The lucky messages, unchanged"))
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        let value: Value = msg.json()?;
        let field = |name: &str| {
            value[name]
                .as_u64()
                .ok_or_else(|| Nack::invalid_input(format!("`{name}` is not a u64")))
        };
        if unlucky(field("seed")?, field("seq")?) {
            trap();
        }
        ctx.send("out", msg)
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::panic, reason = "natively the nearest thing to a wasm trap")]
fn trap() -> ! {
    panic!("unlucky: trap")
}

wasmflo_guest::export!(Unlucky);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_one_in_a_hundred_is_unlucky() {
        let n = (0..100_000).filter(|&seq| unlucky(7, seq)).count();
        assert!((800..1200).contains(&n), "{n}");
    }
}
