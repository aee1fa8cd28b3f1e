//! `wasmflo task EXPR | --json FILE`: run a workflow over in-process task roles and
//! print its result as one JSON line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::EngineArgs;
use crate::component::{Resolver, components_dir};
use crate::runtime::parse_duration;
use crate::workflow::{DispatchOptions, LocalWorkflows, Signature, parse};

/// Arguments of `wasmflo task`.
#[derive(Debug, clap::Args)]
pub struct TaskArgs {
    /// The workflow, e.g. "add(4, 4) | mul(8) | mul(10)".
    #[arg(required_unless_present = "json", conflicts_with = "json")]
    expr: Option<String>,
    /// Read the workflow from a file holding Celery's JSON signature dict.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Dispatch to task roles over a broker (mqtt://, amqp://) instead of in-process.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// How long one attempt of a task waits for its answer.
    #[arg(long, default_value = "10s", value_parser = duration)]
    timeout: Duration,
    /// Attempts after the first when a task times out, is `unavailable` or its participant dies.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Wait before the first retry (doubled after each).
    #[arg(long, default_value = "100ms", value_parser = duration)]
    backoff: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("'{text}' is not a duration such as 5s"))
}

pub(super) fn task(engine: &EngineArgs, args: TaskArgs) -> anyhow::Result<()> {
    let sig: Signature = match (&args.expr, &args.json) {
        (Some(expr), _) => parse(expr).with_context(|| format!("workflow '{expr}'"))?,
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("{}: cannot read", file.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", file.display()))?;
            Signature::from_json(&value).with_context(|| file.display().to_string())?
        }
        (None, None) => anyhow::bail!("give a workflow expression or --json FILE"),
    };
    if let Some(url) = &args.broker {
        anyhow::bail!(
            "--broker {url}: needs the broker transport (MQTT/AMQP), which this build does not \
             include yet; without --broker the workflow runs in-process"
        );
    }
    let options = DispatchOptions {
        timeout: args.timeout,
        retries: args.retries,
        backoff: args.backoff,
        ..DispatchOptions::default()
    };
    let loader = Arc::new(engine.loader()?);
    let resolver = Resolver::new(components_dir(), std::env::current_dir()?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut workflows = LocalWorkflows::start(loader, resolver, options).await?;
        let result = workflows.run(&sig).await;
        workflows.shutdown(Duration::from_secs(1)).await;
        let value = result.context("workflow failed")?;
        println!("{value}");
        Ok(())
    })
}
