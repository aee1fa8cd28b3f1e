//! `test/Hostile`: a participant that misbehaves on request, for the host's
//! fault-isolation tests.
//!
//! Commands arrive on `in` as JSON strings:
//! - `"trap"`: executes `unreachable` (a wasm trap);
//! - `"spin"`: loops forever;
//! - `"hog"`: allocates and touches 64 KiB chunks until memory runs out (then traps);
//! - `"deep"`: recurses until the engine's call stack overflows (a stack-overflow trap);
//! - `"smash"`: recurses with large frames until the guest's own stack in linear memory
//!   runs out (wasmtime reports an out-of-bounds memory access);
//! - `"nack"`: returns an internal nack `hostile: nack requested`;
//! - `"sendnack"`: sends an echo on `out`, then nacks (internal); the host must drop the
//!   echo with the message;
//! - `"flood"`: calls send on `out` 100 000 times, ignoring refusals; nacks (internal)
//!   if any send was refused;
//! - `"big"`: sends one message of [`BIG_MESSAGE`] bytes on `out`;
//! - `"stray"`: sends on `nowhere`, an outport it does not declare, and nacks with the
//!   refusal;
//! - `{"tag": T, ...}`: echoes like any other value, setting metadata `correlation-id`
//!   to the string `T` itself (it wins over the inherited pair);
//! - `{"busy": N, ...}`: spins N loop iterations (a job with a processing time), then
//!   echoes like any other value;
//! - anything else (any JSON): sends `{"echo":<input>,"param":<last param or null>,
//!   "count":<n>}` on `out`, where `n` counts the `in` messages this instance has
//!   processed, this one included.
//!
//! `param` stores its JSON value and sends nothing.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use wasmflo_guest::prelude::*;

/// How many messages `"flood"` tries to send.
pub const FLOOD_COUNT: u32 = 100_000;

/// The size of the message `"big"` sends: 2 MiB.
pub const BIG_MESSAGE: usize = 2 << 20;

/// What an `in` message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Trap.
    Trap,
    /// Loop forever.
    Spin,
    /// Allocate without bound.
    Hog,
    /// Recurse without bound.
    Deep,
    Smash,
    /// Return an internal nack.
    Nack,
    /// Send an echo, then nack.
    SendNack(Value),
    /// Send [`FLOOD_COUNT`] messages.
    Flood,
    /// Send one message of [`BIG_MESSAGE`] bytes.
    Big,
    /// Send on an undeclared outport.
    Stray,
    /// Echo this value with `correlation-id` set to the tag.
    Tagged(String, Value),
    /// Spin this many iterations, then echo the value.
    Busy(u64, Value),
    /// Echo this value.
    Echo(Value),
}

impl Command {
    /// Reads the command in `msg`; any JSON that is not a known command string is an echo.
    pub fn parse(msg: &Message) -> Result<Self, Nack> {
        let value: Value = msg.json()?;
        Ok(match value.as_str() {
            Some("trap") => Self::Trap,
            Some("spin") => Self::Spin,
            Some("hog") => Self::Hog,
            Some("deep") => Self::Deep,
            Some("smash") => Self::Smash,
            Some("nack") => Self::Nack,
            Some("sendnack") => Self::SendNack(value),
            Some("flood") => Self::Flood,
            Some("big") => Self::Big,
            Some("stray") => Self::Stray,
            _ => match (
                value.get("busy").and_then(Value::as_u64),
                value.get("tag").and_then(Value::as_str),
            ) {
                (Some(n), _) => Self::Busy(n, value),
                (None, Some(tag)) => Self::Tagged(tag.to_owned(), value),
                (None, None) => Self::Echo(value),
            },
        })
    }
}

/// The reply to an echo.
pub fn echo(input: Value, param: Option<&Value>, count: u64) -> Value {
    json!({ "echo": input, "param": param.cloned().unwrap_or(Value::Null), "count": count })
}

/// The participant: the last parameter and the number of `in` messages seen.
#[derive(Debug, Default)]
pub struct Hostile {
    param: Option<Value>,
    count: u64,
}

impl Participant for Hostile {
    fn definition() -> Definition {
        Definition::new("test/Hostile")
            .label("Misbehaves on request")
            .icon("bomb")
            .inport(Port::new("in", "any").description("A command string, or anything to echo"))
            .inport(
                Port::new("param", "any")
                    .description("Echoed back")
                    .parameter(),
            )
            .outport(Port::new("out", "object").description("Echo replies and floods"))
    }

    fn process(&mut self, ctx: &mut Context, port: &str, msg: Message) -> Result<(), Nack> {
        match port {
            "param" => {
                self.param = Some(msg.json()?);
                Ok(())
            }
            "in" => {
                self.count += 1;
                match Command::parse(&msg)? {
                    Command::Trap => trap(),
                    Command::Spin => spin(),
                    Command::Hog => hog(),
                    Command::Deep => {
                        black_box(deep(0));
                        Err(Nack::internal("hostile: recursion returned"))
                    }
                    Command::Smash => {
                        black_box(smash(0));
                        Err(Nack::internal("hostile: recursion returned"))
                    }
                    Command::Nack => Err(Nack::internal("hostile: nack requested")),
                    Command::SendNack(input) => {
                        ctx.send_json("out", &echo(input, self.param.as_ref(), self.count))?;
                        Err(Nack::internal("hostile: nack after sending"))
                    }
                    Command::Flood => flood(ctx),
                    Command::Big => ctx.send(
                        "out",
                        Message::bytes(Message::JSON, vec![b' '; BIG_MESSAGE]),
                    ),
                    Command::Busy(n, input) => {
                        busy(n);
                        ctx.send_json("out", &echo(input, self.param.as_ref(), self.count))
                    }
                    Command::Stray => ctx.send("nowhere", Message::from_json("stray")?),
                    Command::Tagged(tag, input) => {
                        let reply = echo(input, self.param.as_ref(), self.count);
                        ctx.send(
                            "out",
                            Message::from_json(&reply)?.with_metadata("correlation-id", tag),
                        )
                    }
                    Command::Echo(input) => {
                        ctx.send_json("out", &echo(input, self.param.as_ref(), self.count))
                    }
                }
            }
            other => Err(Nack::invalid_input(format!("unknown inport `{other}`"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::panic, reason = "natively the nearest thing to a wasm trap")]
fn trap() -> ! {
    panic!("hostile: trap requested")
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn busy(iterations: u64) {
    let mut n = 0u64;
    for _ in 0..iterations {
        n = black_box(n.wrapping_add(1));
    }
}

fn hog() -> ! {
    const CHUNK: usize = 64 * 1024;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        // Touch every page so the allocation is real, and keep it reachable.
        for i in (0..CHUNK).step_by(4096) {
            chunk[i] = black_box(1);
        }
        hoard.push(black_box(chunk));
        black_box(&hoard);
    }
}

/// Read before and written after every call of [`deep`]. The compiler cannot prove the
/// recursion endless, so it can neither mark it as never returning nor turn it into a loop.
static DEPTH: AtomicU64 = AtomicU64::new(0);

/// Recurses until the engine's call stack runs out (a stack-overflow trap).
///
/// Frames keep nothing in linear memory, so the 64 KiB shadow stack is untouched and the
/// engine's own stack limit is what trips.
#[inline(never)]
fn deep(depth: u64) -> u64 {
    if DEPTH.load(Ordering::Relaxed) == u64::MAX {
        return depth;
    }
    let below = deep(depth + 1);
    DEPTH.store(below ^ depth, Ordering::Relaxed);
    below.wrapping_add(depth)
}

/// Recurses with a buffer in every frame, so the shadow stack in linear memory runs out
/// long before the engine's call stack does.
#[inline(never)]
fn smash(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if DEPTH.load(Ordering::Relaxed) == u64::MAX {
        return frame[0];
    }
    let below = smash(depth + 1);
    below.wrapping_add(frame[(depth % 64) as usize])
}

fn flood(ctx: &mut Context) -> Result<(), Nack> {
    let mut refused = 0u32;
    let mut first_error = None;
    for i in 0..FLOOD_COUNT {
        let msg = Message::bytes(Message::JSON, i.to_string());
        if let Err(err) = ctx.try_send("out", msg) {
            refused += 1;
            first_error.get_or_insert(err);
        }
    }
    match first_error {
        None => Ok(()),
        Some(err) => Err(Nack::internal(format!(
            "hostile: {refused} of {FLOOD_COUNT} sends refused (first: {err})"
        ))),
    }
}

wasmflo_guest::export!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(json: &str) -> Result<Command, Nack> {
        Command::parse(&Message::bytes("", json))
    }

    #[test]
    fn parses_commands() -> Result<(), Nack> {
        assert_eq!(cmd("\"trap\"")?, Command::Trap);
        assert_eq!(cmd("\"flood\"")?, Command::Flood);
        assert_eq!(cmd("\"hello\"")?, Command::Echo(json!("hello")));
        assert_eq!(cmd("{\"a\":1}")?, Command::Echo(json!({"a": 1})));
        assert!(cmd("not json").is_err());
        Ok(())
    }

    #[test]
    fn echoes_with_param_and_count() -> Result<(), Nack> {
        let mut h = Hostile::default();
        let mut ctx = Context::recording_for(&Hostile::definition());
        h.process(&mut ctx, "in", Message::from_json("a")?)?;
        h.process(&mut ctx, "param", Message::from_json(&7)?)?;
        h.process(&mut ctx, "in", Message::from_json(&[1, 2])?)?;
        let replies: Vec<Value> = ctx
            .sent()
            .iter()
            .map(|(_, m)| m.json::<Value>())
            .collect::<Result<_, _>>()?;
        assert_eq!(
            replies,
            [
                json!({"echo": "a", "param": null, "count": 1}),
                json!({"echo": [1, 2], "param": 7, "count": 2}),
            ]
        );
        Ok(())
    }

    #[test]
    fn nack_and_flood() -> Result<(), Nack> {
        let mut h = Hostile::default();
        let mut ctx = Context::recording();
        let nack = h.process(&mut ctx, "in", Message::from_json("nack")?).err();
        assert_eq!(
            nack.map(|n| (n.kind(), n.reason().to_owned())),
            Some((NackKind::Internal, "hostile: nack requested".into()))
        );
        h.process(&mut ctx, "in", Message::from_json("flood")?)?;
        assert_eq!(ctx.sent().len(), FLOOD_COUNT as usize);
        Ok(())
    }
}
