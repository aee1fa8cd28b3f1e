//! `wasmflo build [DIR...]`: builds participants in every language into components.
//!
//! Without folders it builds this workspace's `components/<language>/*`; with folders,
//! the guests in them (a guest folder or a folder of guest folders): Rust crates with
//! `[package.metadata.wasmflo]`, and C, Python and JavaScript folders with a
//! `wasmflo.toml`. Components go to `<target>/components/<ns>/<Name>.wasm`, where the
//! host looks for them by name. Toolchains are installed on first use (see README
//! "Polyglot participants").

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use wasmflo_guest_build::foreign::{self, ForeignOptions, Language};
use wasmflo_guest_build::{
    BuildOptions, BuiltComponent, build_components, component_path, discover, workspace_target_dir,
};

/// Arguments of `wasmflo build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Guest folders, or folders of guest folders (default: components/*).
    dirs: Vec<PathBuf>,
    /// Only these languages (rust, c, python, js); repeatable.
    #[arg(long = "lang", value_parser = parse_language)]
    langs: Vec<Language>,
    /// Where components are written (default: <target>/components).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn parse_language(name: &str) -> Result<Language, String> {
    Language::parse(name).ok_or_else(|| format!("unknown language '{name}': rust, c, python or js"))
}

/// The wasmflo workspace: the nearest folder above the current one holding
/// `wit/participant.wit` and a `Cargo.toml`, else the one this binary was built from.
pub(super) fn workspace_root() -> anyhow::Result<PathBuf> {
    let is_root =
        |d: &Path| d.join("wit/participant.wit").is_file() && d.join("Cargo.toml").is_file();
    let cwd = std::env::current_dir()?;
    if let Some(found) = cwd.ancestors().find(|d| is_root(d)) {
        return Ok(found.to_path_buf());
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .filter(|d| is_root(d))
        .context(
            "not inside a wasmflo workspace (no wit/participant.wit above the current folder)",
        )?;
    Ok(built.to_path_buf())
}

pub(super) fn build(args: BuildArgs) -> anyhow::Result<()> {
    let root = workspace_root()?;
    let target = workspace_target_dir(&root);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target.join("components"));
    let wanted = |l: Language| args.langs.is_empty() || args.langs.contains(&l);
    let dirs: Vec<PathBuf> = if args.dirs.is_empty() {
        Language::ALL
            .iter()
            .map(|l| root.join("components").join(l.name()))
            .filter(|d| d.is_dir())
            .collect()
    } else {
        for d in &args.dirs {
            anyhow::ensure!(d.is_dir(), "{}: no such folder", d.display());
        }
        args.dirs.clone()
    };
    let mut built: Vec<BuiltComponent> = Vec::new();
    if wanted(Language::Rust) {
        let crates = discover(&dirs)?;
        let (inside, standalone): (Vec<_>, Vec<_>) = crates
            .into_iter()
            .partition(|c| foreign::rust::in_workspace(&root, &c.dir));
        if !inside.is_empty() {
            let mut opts = BuildOptions::new(&root, &out).target_dir(&target);
            for c in &inside {
                opts = opts.search(&c.dir);
            }
            built.extend(build_components(&opts)?);
        }
        let fopts = foreign_options(&root, &target, &out);
        for guest in standalone {
            let bytes = foreign::rust::build_standalone(&fopts, &guest)?;
            let path = component_path(&out, &guest.component);
            wasmflo_guest_build::write_if_changed(&path, &bytes)?;
            built.push(BuiltComponent {
                name: guest.component,
                crate_name: guest.crate_name,
                path,
                size: bytes.len() as u64,
            });
        }
    }
    let guests: Vec<_> = foreign::discover_foreign(&dirs)?
        .into_iter()
        .filter(|g| wanted(g.language))
        .collect();
    built.extend(foreign::build_foreign(
        &foreign_options(&root, &target, &out),
        &guests,
    )?);
    anyhow::ensure!(
        !built.is_empty(),
        "no participants found in {}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for c in &built {
        println!(
            "{:<24} {} ({} KiB)",
            c.name,
            c.path.display(),
            c.size.div_ceil(1024)
        );
    }
    Ok(())
}

fn foreign_options(root: &Path, target: &Path, out: &Path) -> ForeignOptions {
    ForeignOptions {
        workspace_root: root.to_path_buf(),
        target_dir: target.to_path_buf(),
        out_dir: out.to_path_buf(),
    }
}
