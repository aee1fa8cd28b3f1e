//! `wasmflo inspect COMPONENT.wasm`: definition, version and imports of a component.

use std::path::PathBuf;

use anyhow::Context;

use super::EngineArgs;
use crate::runtime::PortDef;

/// Arguments of `wasmflo inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The component file.
    component: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn inspect(engine: &EngineArgs, args: InspectArgs) -> anyhow::Result<()> {
    let loader = engine.loader()?;
    let c = loader.load(&args.component).context("cannot inspect")?;
    let d = &c.definition;
    if args.json {
        let v = serde_json::json!({
            "path": c.path, "sha256": c.hash, "size": c.size,
            "definition": &**d, "imports": c.imports,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("component  {}", d.component);
    println!("label      {}", d.label);
    println!("icon       {}", d.icon);
    println!("file       {} ({} bytes)", c.path.display(), c.size);
    println!("version    sha256:{}", c.hash);
    print_ports("inports", &d.inports);
    print_ports("outports", &d.outports);
    println!("imports");
    for i in &c.imports {
        println!("  {i}");
    }
    Ok(())
}

fn print_ports(title: &str, ports: &[PortDef]) {
    println!("{title}");
    if ports.is_empty() {
        println!("  (none)");
    }
    for p in ports {
        let param = if p.parameter { " [parameter]" } else { "" };
        println!("  {:<12} {:<8}{param} {}", p.id, p.type_, p.description);
        if let Some(schema) = &p.schema {
            println!("  {:<12} schema: {schema}", "");
        }
    }
}
