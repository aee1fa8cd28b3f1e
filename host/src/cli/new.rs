//! `wasmflo new NS/NAME --lang rust|c|python|js`: scaffolds a participant that builds
//! and runs as is (it numbers the messages it forwards), from the templates in
//! `guest-sdk/templates/<language>/`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use wasmflo_guest_build::foreign::Language;

use super::build::{parse_language, workspace_root};

/// Arguments of `wasmflo new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The component name, `namespace/Name` (e.g. `acme/Scale`).
    component: String,
    /// The language: rust, c, python or js.
    #[arg(long = "lang", value_parser = parse_language)]
    lang: Language,
    /// The folder to create (default: components/<language>/<namespace>-<name> in this
    /// workspace).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The template files of each language: (path in the new folder, text).
fn templates(lang: Language) -> &'static [(&'static str, &'static str)] {
    match lang {
        Language::Rust => &[
            (
                "Cargo.toml",
                include_str!("../../../guest-sdk/templates/rust/Cargo.toml"),
            ),
            (
                "src/lib.rs",
                include_str!("../../../guest-sdk/templates/rust/src/lib.rs"),
            ),
        ],
        Language::C => &[
            (
                "wasmflo.toml",
                include_str!("../../../guest-sdk/templates/c/wasmflo.toml"),
            ),
            (
                "main.c",
                include_str!("../../../guest-sdk/templates/c/main.c"),
            ),
        ],
        Language::Python => &[
            (
                "wasmflo.toml",
                include_str!("../../../guest-sdk/templates/python/wasmflo.toml"),
            ),
            (
                "app.py",
                include_str!("../../../guest-sdk/templates/python/app.py"),
            ),
        ],
        Language::Js => &[
            (
                "wasmflo.toml",
                include_str!("../../../guest-sdk/templates/js/wasmflo.toml"),
            ),
            (
                "index.js",
                include_str!("../../../guest-sdk/templates/js/index.js"),
            ),
        ],
    }
}

/// Checks `ns/Name` as the build does; returns (namespace, name).
fn split_name(component: &str) -> anyhow::Result<(&str, &str)> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match component.split_once('/') {
        Some((ns, name))
            if ok(ns) && ok(name) && name.starts_with(|c: char| c.is_ascii_alphabetic()) =>
        {
            Ok((ns, name))
        }
        _ => anyhow::bail!(
            "component name '{component}' is not `namespace/Name` (letters, digits, `-`, `_`, `.`; \
             the name starts with a letter)"
        ),
    }
}

fn kebab(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !out.ends_with('-') {
            out.push('-');
        }
        out.push(if "_.".contains(c) {
            '-'
        } else {
            c.to_ascii_lowercase()
        });
    }
    out
}

fn type_name(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

pub(super) fn new(args: NewArgs) -> anyhow::Result<()> {
    let (ns, name) = split_name(&args.component)?;
    let root = workspace_root()?;
    let folder = format!("{}-{}", kebab(ns), kebab(name));
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| root.join("components").join(args.lang.name()).join(&folder));
    anyhow::ensure!(
        !dir.exists() || dir.read_dir().is_ok_and(|mut d| d.next().is_none()),
        "{} already exists and is not empty",
        dir.display()
    );
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let inside = wasmflo_guest_build::foreign::rust::in_workspace(&root, &dir);
    let sdk = root.join("guest-sdk");
    let sdk = if inside {
        relative_sdk(&dir, &root)
    } else {
        sdk.display().to_string()
    };
    for (path, text) in templates(args.lang) {
        let text = text
            .replace("{{component}}", &args.component)
            .replace("{{crate}}", &folder)
            .replace("{{type}}", &type_name(name))
            .replace("{{sdk}}", &sdk)
            // A crate outside this workspace is a workspace of its own.
            .replace("{{workspace}}", if inside { "" } else { "[workspace]" });
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    println!(
        "created {} ({}, {})",
        dir.display(),
        args.component,
        args.lang
    );
    println!("build it with `wasmflo build {}`", dir.display());
    Ok(())
}

/// The SDK's path relative to a new crate in this workspace (`../../../guest-sdk`).
fn relative_sdk(dir: &Path, root: &Path) -> String {
    let depth = dir
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .zip(root.canonicalize().ok())
        .and_then(|(p, r)| Some(p.strip_prefix(r).ok()?.components().count() + 1))
        .unwrap_or(3);
    format!("{}guest-sdk", "../".repeat(depth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(kebab("MyFilter"), "my-filter");
        assert_eq!(kebab("acme_x"), "acme-x");
        assert_eq!(type_name("my-filter"), "MyFilter");
        assert_eq!(type_name("Scale"), "Scale");
        assert!(split_name("acme/Scale").is_ok());
        assert!(split_name("acme").is_err());
        assert!(split_name("a/1x").is_err());
    }
}
