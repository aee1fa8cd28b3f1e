//! `wasmflo send --queue Q (--json DATA | --file F)`: puts one message into a queue.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::broker::BrokerArgs;
use crate::message::Message;

/// Arguments of `wasmflo send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The queue (inport) to send to, e.g. `repeat.IN`.
    #[arg(long)]
    queue: String,
    /// The message, as JSON text.
    #[arg(long, conflicts_with = "file")]
    json: Option<String>,
    /// A file holding the JSON message.
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

pub(super) fn send(args: SendArgs) -> anyhow::Result<()> {
    let text = match (&args.json, &args.file) {
        (Some(json), None) => json.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read", file.display()))?,
        _ => bail!("give the message with --json DATA or --file F"),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the message is not valid JSON")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let transport = args.broker.ephemeral("send").await?;
        transport
            .send_to_queue(&args.queue, Message::json(&value))
            .await?;
        Ok(())
    })
}
