//! `wasmflo bindings --broker URL [--json]`: what the coordinators on a broker have bound,
//! from the binding lists they publish (see [`crate::bindings`] for where they live).
//!
//! Prints one line per binding, `TYPE SRC -> TGT  COORDINATOR`, then a line per
//! coordinator whose list is stale (it died without removing it); `--json` prints the
//! lists as one JSON array. `--forget COORDINATOR` removes that coordinator's list.

use std::io::Write;

use crate::bindings::{BindingList, latest, now_ms};

use super::broker::BrokerArgs;

/// Arguments of `wasmflo bindings`.
#[derive(Debug, clap::Args)]
pub struct BindingsArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Print the coordinators' lists as one JSON array.
    #[arg(long)]
    json: bool,
    /// Remove the list of COORDINATOR (as printed) instead of printing: for a stale list,
    /// or a one-shot setup's whose bindings were removed by hand.
    #[arg(long, value_name = "COORDINATOR")]
    forget: Option<String>,
}

pub(super) fn bindings(args: BindingsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(key) = args.forget {
        return rt.block_on(async move {
            let transport = args.broker.ephemeral("bindings").await?;
            let empty = crate::message::Message::json_text(Vec::<u8>::new());
            // An empty entry removes a list; it must outlive any list it hides.
            transport
                .put_state(&key, empty, crate::bindings::ONE_SHOT_TTL)
                .await?;
            println!("forgot {key}");
            anyhow::Ok(())
        });
    }
    let lists = rt.block_on(async move {
        let transport = args.broker.ephemeral("bindings").await?;
        anyhow::Ok(latest(transport.read_states().await?))
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&lists)?)?;
        return Ok(());
    }
    write!(out, "{}", text(&lists, now_ms()))?;
    Ok(())
}

/// The listing as text at `now_ms`.
fn text(lists: &[BindingList], now_ms: u64) -> String {
    let mut s = String::new();
    for l in lists {
        let stale = if l.stale(now_ms) { " (stale)" } else { "" };
        for b in &l.bindings {
            s.push_str(&format!(
                "{:<10} {} -> {}  {} ({} {}){stale}\n",
                b.kind.as_str(),
                b.src,
                b.tgt,
                l.coordinator,
                l.command,
                l.graph
            ));
        }
    }
    if lists.iter().all(|l| l.bindings.is_empty()) {
        s.push_str("no bindings listed\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Bound, BoundKind};

    #[test]
    fn one_line_per_binding_naming_its_coordinator() {
        let l = BindingList {
            coordinator: "run-g-1-ab".into(),
            command: "run".into(),
            graph: "g.fbp".into(),
            updated_ms: 1000,
            period_ms: 100,
            bindings: vec![Bound {
                src: "a.OUT".into(),
                tgt: "b.IN".into(),
                kind: BoundKind::Roundrobin,
            }],
        };
        assert_eq!(
            text(std::slice::from_ref(&l), 1000),
            "roundrobin a.OUT -> b.IN  run-g-1-ab (run g.fbp)\n"
        );
        assert!(text(&[l], 2000).ends_with("(stale)\n"));
        assert_eq!(text(&[], 0), "no bindings listed\n");
    }
}
