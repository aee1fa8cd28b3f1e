//! `test/Counter`: counts the messages it processes and keeps the count across live code
//! swaps (its whole state is handed over with [`wasmflo_guest::keep_state!`]).
//!
//! - `in` (any JSON object with a `seq`): sends `{"seq":<seq>,"count":<n>,"generation":<g>}`
//!   on `out`, where `n` counts the messages processed since the first version started
//!   and `g` counts the swaps whose state this instance inherited: an output with a
//!   higher generation was produced by newer code.
//! - `reset` (bang): sets the count to 0.
//! - `poison` (bang): marks the state so that the next version's `restore` traps, to
//!   test a version that fails while starting; answers `{"poisoned":true}` on `out`.

use serde::{Deserialize, Serialize};
use wasmflo_guest::prelude::*;

/// The handed-over state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Counter {
    count: u64,
    generation: u32,
    poisoned: bool,
}

impl Participant for Counter {
    fn definition() -> Definition {
        Definition::new("test/Counter")
            .label("Counts messages across live swaps")
            .inport(Port::new("in", "object"))
            .inport(Port::new("reset", "bang"))
            .inport(Port::new("poison", "bang"))
            .outport(Port::new("out", "object"))
    }

    fn process(&mut self, ctx: &mut Context, port: &str, msg: Message) -> Result<(), Nack> {
        match port {
            "reset" => self.count = 0,
            "poison" => {
                self.poisoned = true;
                ctx.send_json("out", &serde_json::json!({"poisoned": true}))?;
            }
            _ => {
                let input: serde_json::Value = msg.json()?;
                self.count += 1;
                let out = serde_json::json!({
                    "seq": input.get("seq"),
                    "count": self.count,
                    "generation": self.generation,
                });
                ctx.send_json("out", &out)?;
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(self).ok()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let old: Counter = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        if old.poisoned {
            // A trap while restoring: the host must reject this version.
            std::process::abort();
        }
        *self = Counter {
            generation: old.generation + 1,
            ..old
        };
        Ok(())
    }
}

wasmflo_guest::export!(Counter);
