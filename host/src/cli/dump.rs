//! `wasmflo dump --queue Q [--amount N]`: prints messages of a queue, one JSON per line.

use std::io::Write;

use anyhow::Context;

use super::broker::{BrokerArgs, stop_signal};
use crate::message::Message;

/// Arguments of `wasmflo dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The queue to read, e.g. `repeat.IN`, `dead-repeat.IN` or `fbp`.
    #[arg(long)]
    queue: String,
    /// Stop after this many messages (default: until Ctrl-C).
    #[arg(long)]
    amount: Option<u64>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// One line of JSON for `msg`: the payload itself, or a JSON string when it is not JSON.
fn line(msg: &Message) -> String {
    match msg.to_json() {
        Some(v) => v.to_string(),
        None => {
            serde_json::Value::String(String::from_utf8_lossy(&msg.data).into_owned()).to_string()
        }
    }
}

pub(super) fn dump(args: DumpArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let transport = args.broker.ephemeral("dump").await?;
        transport.declare_queue(&args.queue).await?;
        let mut sub = transport.subscribe(&args.queue).await?;
        let mut left = args.amount;
        let stop = stop_signal();
        tokio::pin!(stop);
        let mut out = std::io::stdout().lock();
        while left != Some(0) {
            let delivery = tokio::select! {
                d = sub.next() => d,
                r = &mut stop => { r?; break; }
            };
            let Some(delivery) = delivery else { break };
            writeln!(out, "{}", line(&delivery.message)).context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
            delivery.ack();
            left = left.map(|n| n - 1);
        }
        Ok(())
    })
}
