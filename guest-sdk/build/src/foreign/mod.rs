//! Participants written in C, Python and JavaScript.
//!
//! A folder `components/<language>/<name>/` holding a `wasmflo.toml` is a foreign guest:
//!
//! ```toml
//! component = "c/Format"     # the component name, as for Rust crates
//! language = "c"             # c | python | js; defaults to the parent folder's name
//! main = "format.c"          # optional: C sources default to every *.c file, Python to
//!                            # app.py, JavaScript to index.js
//! ```
//!
//! [`build_foreign`] builds each into `<out dir>/<component>.wasm` beside the Rust
//! ones, installing the language's toolchain on first use (see [`c`], [`python`],
//! [`js`]), and skips a component whose inputs (its folder, the language's SDK file
//! under `guest-sdk/<language>/`, the WIT files, the toolchain version) did not change
//! since its last build. Progress goes to stderr: the Python and JavaScript
//! toolchains take seconds per component.

pub mod c;
pub mod js;
pub mod python;
pub mod rust;
mod tool;

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

use crate::{
    BuildError, BuiltComponent, component_path, discover::is_valid_component_name, write_if_changed,
};

/// A language a participant can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Language {
    /// Rust, through `guest-sdk` and cargo.
    Rust,
    /// C, through Debian's clang, lld and wasi-libc and wit-bindgen's C generator.
    C,
    /// Python, through componentize-py (PyPI).
    Python,
    /// JavaScript, through ComponentizeJS (npm).
    Js,
}

impl Language {
    /// Every language, in the order `wasmflo build` builds them.
    pub const ALL: [Self; 4] = [Self::Rust, Self::C, Self::Python, Self::Js];

    /// Parses `rust`, `c`, `python` (or `py`), `js` (or `javascript`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rust" => Some(Self::Rust),
            "c" => Some(Self::C),
            "python" | "py" => Some(Self::Python),
            "js" | "javascript" => Some(Self::Js),
            _ => None,
        }
    }

    /// The language's folder name under `components/` and `guest-sdk/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::C => "c",
            Self::Python => "python",
            Self::Js => "js",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A foreign guest found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignGuest {
    /// The component name, such as `c/Format`.
    pub component: String,
    /// Its language (never [`Language::Rust`]).
    pub language: Language,
    /// The folder holding `wasmflo.toml`.
    pub dir: PathBuf,
    /// `main` from the manifest, if given.
    pub main: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    component: String,
    language: Option<String>,
    main: Option<String>,
}

/// The manifest file name of a foreign guest.
pub const MANIFEST: &str = "wasmflo.toml";

/// Finds foreign guests in `dirs` (each a guest folder or a folder of guest folders),
/// sorted by component name.
pub fn discover_foreign(dirs: &[PathBuf]) -> Result<Vec<ForeignGuest>, BuildError> {
    let mut found: BTreeMap<String, ForeignGuest> = BTreeMap::new();
    for dir in dirs {
        let mut candidates = vec![dir.clone()];
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut subs: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            subs.sort();
            candidates.extend(subs);
        }
        for folder in candidates {
            let manifest = folder.join(MANIFEST);
            if !manifest.is_file() {
                continue;
            }
            let guest = read_manifest(&folder, &manifest)?;
            if let Some(first) = found.get(&guest.component) {
                return Err(BuildError::DuplicateComponent {
                    component: guest.component.clone(),
                    first: first.dir.display().to_string(),
                    second: guest.dir.display().to_string(),
                });
            }
            found.insert(guest.component.clone(), guest);
        }
    }
    Ok(found.into_values().collect())
}

fn read_manifest(folder: &Path, manifest: &Path) -> Result<ForeignGuest, BuildError> {
    let text = std::fs::read_to_string(manifest).map_err(|e| BuildError::io(manifest, e))?;
    let parsed: Manifest = toml::from_str(&text).map_err(|source| BuildError::Manifest {
        manifest: manifest.to_owned(),
        source,
    })?;
    let lang_name = match &parsed.language {
        Some(name) => name.clone(),
        None => folder
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let language = Language::parse(&lang_name)
        .filter(|l| *l != Language::Rust)
        .ok_or_else(|| BuildError::ForeignManifest {
            manifest: manifest.to_owned(),
            detail: format!(
                "language `{lang_name}` is not one of c, python, js (set `language` or put the \
                 folder under components/<language>/)"
            ),
        })?;
    if !is_valid_component_name(&parsed.component) {
        return Err(BuildError::ForeignManifest {
            manifest: manifest.to_owned(),
            detail: format!(
                "component name `{}` is not `namespace/Name` made of letters, digits, `-`, `_` and `.`",
                parsed.component
            ),
        });
    }
    Ok(ForeignGuest {
        component: parsed.component,
        language,
        dir: folder.to_owned(),
        main: parsed.main,
    })
}

/// Where a foreign build finds its inputs and keeps its toolchains and scratch files.
#[derive(Debug, Clone)]
pub struct ForeignOptions {
    /// The workspace root (holding `wit/` and `guest-sdk/`).
    pub workspace_root: PathBuf,
    /// The workspace target dir; toolchains go to `<target>/toolchains/<language>`,
    /// scratch files to `<target>/polyglot/<component>`.
    pub target_dir: PathBuf,
    /// Where components are written.
    pub out_dir: PathBuf,
}

impl ForeignOptions {
    fn wit_dir(&self) -> PathBuf {
        self.workspace_root.join("wit")
    }

    fn sdk_dir(&self, language: Language) -> PathBuf {
        self.workspace_root.join("guest-sdk").join(language.name())
    }

    fn toolchain_dir(&self, language: Language) -> PathBuf {
        self.target_dir.join("toolchains").join(language.name())
    }

    fn scratch_dir(&self, component: &str) -> PathBuf {
        let mut dir = self.target_dir.join("polyglot");
        dir.extend(component.split('/'));
        dir
    }
}

/// Builds every guest in `guests`, installing toolchains as needed.
pub fn build_foreign(
    opts: &ForeignOptions,
    guests: &[ForeignGuest],
) -> Result<Vec<BuiltComponent>, BuildError> {
    let mut built = Vec::new();
    for guest in guests {
        let path = component_path(&opts.out_dir, &guest.component);
        let scratch = opts.scratch_dir(&guest.component);
        std::fs::create_dir_all(&scratch).map_err(|e| BuildError::io(&scratch, e))?;
        // Builders in other processes or test threads share the scratch dir: one at a
        // time per component, and the stamp is read under the lock, so a late comer
        // finds the first one's output instead of racing it.
        let lock_path = scratch.join("build.lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| BuildError::io(&lock_path, e))?;
        lock.lock().map_err(|e| BuildError::io(&lock_path, e))?;
        let stamp_path = scratch.join("inputs.hash");
        let version = toolchain_version(guest.language);
        // The output path is part of the key: builds into other folders share the scratch dir.
        let stamp = format!("{:016x}", inputs_hash(opts, guest, version, &path)?);
        if path.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
            let size = std::fs::metadata(&path)
                .map_err(|e| BuildError::io(&path, e))?
                .len();
            built.push(BuiltComponent {
                name: guest.component.clone(),
                crate_name: guest.dir.display().to_string(),
                path,
                size,
            });
            continue;
        }
        let started = Instant::now();
        tool::progress(&format!(
            "building {} ({}, {})",
            guest.component,
            guest.language,
            guest.dir.display()
        ));
        let bytes = match guest.language {
            Language::C => c::build(opts, guest, &scratch)?,
            Language::Python => python::build(opts, guest, &scratch)?,
            Language::Js => js::build(opts, guest, &scratch)?,
            Language::Rust => unreachable!("Rust guests are cargo crates"),
        };
        if !wasmparser::Parser::is_component(&bytes) {
            return Err(BuildError::Foreign {
                component: guest.component.clone(),
                detail: "the toolchain did not produce a component".into(),
            });
        }
        write_if_changed(&path, &bytes)?;
        std::fs::write(&stamp_path, &stamp).map_err(|e| BuildError::io(&stamp_path, e))?;
        tool::progress(&format!(
            "built {} -> {} ({} KiB) in {:.1} s",
            guest.component,
            path.display(),
            bytes.len() / 1024,
            started.elapsed().as_secs_f64()
        ));
        built.push(BuiltComponent {
            name: guest.component.clone(),
            crate_name: guest.dir.display().to_string(),
            path,
            size: bytes.len() as u64,
        });
    }
    Ok(built)
}

/// The pinned toolchain of a language, part of every build's cache key.
pub fn toolchain_version(language: Language) -> &'static str {
    match language {
        Language::C => c::TOOLCHAIN,
        Language::Python => python::TOOLCHAIN,
        Language::Js => js::TOOLCHAIN,
        Language::Rust => "cargo",
    }
}

/// A hash of everything a foreign build reads.
fn inputs_hash(
    opts: &ForeignOptions,
    guest: &ForeignGuest,
    version: &str,
    out: &Path,
) -> Result<u64, BuildError> {
    let mut h = DefaultHasher::new();
    (guest.language.name(), version, &guest.main, out).hash(&mut h);
    for dir in [
        guest.dir.clone(),
        opts.sdk_dir(guest.language),
        opts.wit_dir(),
    ] {
        for file in tool::files_under(&dir)? {
            let bytes = std::fs::read(&file).map_err(|e| BuildError::io(&file, e))?;
            (file.strip_prefix(&dir).unwrap_or(&file), bytes).hash(&mut h);
        }
    }
    Ok(h.finish())
}
