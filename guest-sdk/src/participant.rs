//! The `Participant` trait: one struct whose state lives across calls of one instance.

use crate::{Context, Definition, Message, Nack};

/// A wasmflo participant written in Rust.
///
/// The host creates one instance per process; the struct is built with `Default` on the
/// first call (normally `start`) and kept for every later call of that instance.
/// Register the type with [`export!`](crate::export).
pub trait Participant: Default + 'static {
    /// Describes the component: name, label, ports.
    fn definition() -> Definition;

    /// Called once per instance before parameters are replayed and messages arrive.
    fn start(&mut self, ctx: &mut Context) -> Result<(), Nack> {
        let _ = ctx;
        Ok(())
    }

    /// Handles one message that arrived on inport `port`. `Ok` acks it, `Err` nacks it.
    fn process(&mut self, ctx: &mut Context, port: &str, msg: Message) -> Result<(), Nack>;

    /// Timer `id`, armed with [`Context::set_timer`] or
    /// [`Context::set_repeating_timer`], fired. Ignored by default.
    fn on_timer(&mut self, ctx: &mut Context, id: u32) -> Result<(), Nack> {
        let _ = (ctx, id);
        Ok(())
    }

    /// The state to hand to the next version of this component when the host swaps its
    /// code (`wasmflo run --watch`). `None` (the default) means the new version starts
    /// fresh. [`keep_state!`](crate::keep_state) implements this and
    /// [`restore`](Self::restore) for a `serde` type in one line.
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// Takes over state an earlier version returned from [`snapshot`](Self::snapshot);
    /// called after `start`, before parameters are replayed. `Err` refuses it and the
    /// instance runs fresh.
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let _ = state;
        Err("this version keeps no state".into())
    }
}
