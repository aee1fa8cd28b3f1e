//! `wasmflo task EXPR | --json FILE [--broker URL]`: run a workflow over task roles
//! (in-process, or the participants serving them on a broker) and print its result as
//! one JSON line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::EngineArgs;
use super::broker::{BrokerArgs, client_id};
use crate::component::{Resolver, components_dir};
use crate::runtime::parse_duration;
use crate::workflow::{DispatchOptions, Dispatcher, LocalWorkflows, Signature, parse};

/// Arguments of `wasmflo task`.
#[derive(Debug, clap::Args)]
pub struct TaskArgs {
    /// The workflow, e.g. "add(4, 4) | mul(8) | mul(10)".
    #[arg(required_unless_present = "json", conflicts_with = "json")]
    expr: Option<String>,
    /// Read the workflow from a file holding Celery's JSON signature dict.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Dispatch to the participants serving the task roles on a broker (mqtt://,
    /// amqp://; default $MSGFLO_BROKER) instead of starting them in-process.
    #[command(flatten)]
    broker: BrokerArgs,
    /// How long one attempt of a task waits for its answer.
    #[arg(long, default_value = "10s", value_parser = duration)]
    timeout: Duration,
    /// Attempts after the first when a task times out, is `unavailable` or its participant dies.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Wait before the first retry (doubled after each).
    #[arg(long, default_value = "100ms", value_parser = duration)]
    backoff: Duration,
    /// Task calls waiting for their answer at once (0: no limit).
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Prefix of the task roles on the broker: with `t1-`, task `add` is role `t1-add`.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    role_prefix: String,
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
    let prefix_ok = args
        .role_prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !prefix_ok {
        anyhow::bail!(
            "--role-prefix '{}': letters, digits, '_' and '-' only (role names)",
            args.role_prefix
        );
    }
    let options = DispatchOptions {
        timeout: args.timeout,
        retries: args.retries,
        backoff: args.backoff,
        max_in_flight: args.in_flight,
        role_prefix: args.role_prefix.clone(),
        ..DispatchOptions::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(url) = args.broker.url() {
        return rt.block_on(async move {
            // A clean session under a fresh id: nothing is left behind on the broker, and
            // the dispatcher's own subscriptions are never shared with other processes.
            let mut parsed = args.broker.parse(&url)?;
            parsed.clean_session = true;
            parsed.shared = None;
            let id = client_id(&format!("task-{}", crate::discovery::random_suffix()));
            let transport = parsed.connect(&id).await?;
            let dispatcher = Dispatcher::new(transport, options);
            let value = dispatcher.run(&sig).await.context("workflow failed")?;
            println!("{value}");
            Ok(())
        });
    }
    let loader = Arc::new(engine.loader()?);
    let resolver = Resolver::new(components_dir(), std::env::current_dir()?);
    rt.block_on(async move {
        let mut workflows = LocalWorkflows::start(loader, resolver, options).await?;
        let result = workflows.run(&sig).await;
        workflows.shutdown(Duration::from_secs(1)).await;
        let value = result.context("workflow failed")?;
        println!("{value}");
        Ok(())
    })
}
