//! Component resolution: from a graph's `component` string to a `.wasm` file.
//!
//! - a name the resolver's [`Library`] defines resolves as the library says (a `.wasm`
//!   file, or an external participant's command, which an in-process run refuses);
//! - a string ending in `.wasm` is a path, absolute or relative to the graph file;
//! - a name such as `core/Repeat` is looked up as `<components dir>/core/Repeat.wasm`.
//!
//! The components directory is `$WASMFLO_COMPONENTS_DIR` when set, else the place the
//! build put the project's components (`target/components`, compiled into the binary).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::library::{Library, Resolved};

/// Why a component name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A `.wasm` path that does not exist.
    #[error("component file {path} does not exist")]
    MissingFile {
        /// The path tried.
        path: PathBuf,
    },
    /// A name with no built component.
    #[error("unknown component '{name}' (no {tried}){hint}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The file tried.
        tried: String,
        /// Suggestions, starting with "; ".
        hint: String,
    },
    /// A library maps the name to a `.wasm` file that does not exist.
    #[error("component '{name}' maps to {} in {}, which does not exist", path.display(), library.display())]
    MissingLibraryFile {
        /// The name asked for.
        name: String,
        /// The library file (boxed to keep errors small).
        library: Box<Path>,
        /// The path it gives.
        path: PathBuf,
    },
    /// A library maps the name to a command: a participant outside this process.
    #[error(
        "component '{name}' is an external participant (command `{command}`); it needs --broker"
    )]
    External {
        /// The name asked for.
        name: String,
        /// The command template from the library.
        command: String,
    },
}

/// The directory holding the project's built components.
pub fn components_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMFLO_COMPONENTS_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = option_env!("WASMFLO_COMPONENTS_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|p| p.join("../components")))
        .unwrap_or_else(|| PathBuf::from("target/components"))
}

/// Resolves component strings for one graph.
#[derive(Debug, Clone)]
pub struct Resolver {
    components: PathBuf,
    base: PathBuf,
    library: Option<Arc<Library>>,
}

impl Resolver {
    /// Resolves names in `components` and relative paths against `base` (the graph's folder).
    pub fn new(components: impl Into<PathBuf>, base: impl Into<PathBuf>) -> Self {
        Resolver {
            components: components.into(),
            base: base.into(),
            library: None,
        }
    }

    /// Consults `library` before the rules above.
    pub fn with_library(mut self, library: Library) -> Self {
        self.library = Some(Arc::new(library));
        self
    }

    /// The library consulted first, if any.
    pub fn library(&self) -> Option<&Library> {
        self.library.as_deref()
    }

    /// A resolver for a graph file at `graph` using the default components directory.
    pub fn for_graph(graph: &Path) -> Self {
        let base = graph.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::new(components_dir(), base)
    }

    /// The file for `component`; a library command is an [`ResolveError::External`].
    pub fn resolve(&self, component: &str) -> Result<PathBuf, ResolveError> {
        match self.lookup(component)? {
            Resolved::Wasm(path) => Ok(path),
            Resolved::Command(command) => Err(ResolveError::External {
                name: component.into(),
                command,
            }),
        }
    }

    /// What `component` resolves to: the library's entry if it has one (a `.wasm` file
    /// must exist), else a file by the rules above. Loads nothing.
    pub fn lookup(&self, component: &str) -> Result<Resolved, ResolveError> {
        if let Some(library) = &self.library
            && let Some(resolved) = library.resolve(component)
        {
            return match resolved {
                Resolved::Wasm(path) if !path.is_file() => Err(ResolveError::MissingLibraryFile {
                    name: component.into(),
                    library: library.file().into(),
                    path,
                }),
                other => Ok(other),
            };
        }
        self.file(component).map(Resolved::Wasm)
    }

    fn file(&self, component: &str) -> Result<PathBuf, ResolveError> {
        if component.ends_with(".wasm") {
            let path = Path::new(component);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                self.base.join(path)
            };
            return if path.is_file() {
                Ok(path)
            } else {
                Err(ResolveError::MissingFile { path })
            };
        }
        let file = self.components.join(format!("{component}.wasm"));
        if file.is_file() {
            return Ok(file);
        }
        let known = self.known();
        let lower = component.to_ascii_lowercase();
        let close: Vec<&String> = known
            .iter()
            .filter(|k| {
                let k = k.to_ascii_lowercase();
                k == lower || k.ends_with(&format!("/{lower}")) || lower.ends_with(&k)
            })
            .collect();
        let hint = if !close.is_empty() {
            format!("; did you mean {}?", join(&close))
        } else if known.is_empty() {
            format!("; {} holds no components", self.components.display())
        } else {
            format!(
                "; known components: {}",
                join(&known.iter().collect::<Vec<_>>())
            )
        };
        let tried = match &self.library {
            Some(library) => format!(
                "entry in {} and no {}",
                library.file().display(),
                file.display()
            ),
            None => file.display().to_string(),
        };
        Err(ResolveError::Unknown {
            name: component.into(),
            tried,
            hint,
        })
    }

    /// Every component name under the components directory, sorted.
    pub fn known(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect(&self.components, &self.components, &mut out);
        out.sort();
        out
    }
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "wasm")
            && let Ok(rel) = path.with_extension("").strip_prefix(root)
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_resolve() {
        let dir = std::env::temp_dir().join(format!("wasmflo-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("core")).ok();
        std::fs::write(dir.join("core/Repeat.wasm"), b"").ok();
        let r = Resolver::new(&dir, &dir);
        assert_eq!(
            r.resolve("core/Repeat").ok(),
            Some(dir.join("core/Repeat.wasm"))
        );
        assert_eq!(
            r.resolve("core/Repeat.wasm").ok(),
            Some(dir.join("core/Repeat.wasm"))
        );
        let err = r.resolve("Repeat").map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("did you mean core/Repeat"), "{err}");
        let err = r
            .resolve("nope/Nothing")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("known components: core/Repeat"), "{err}");

        let text = format!(
            r#"{{"components": {{"my/R": "{}", "Cmd": "run #ROLE", "Gone": "gone.wasm"}}}}"#,
            dir.join("core/Repeat.wasm").display()
        );
        let library = Library::parse(&dir.join("msgflo.json"), &text);
        let r = r.with_library(library.expect("library parses"));
        assert_eq!(r.resolve("my/R").ok(), Some(dir.join("core/Repeat.wasm")));
        assert_eq!(
            r.resolve("core/Repeat").ok(),
            Some(dir.join("core/Repeat.wasm")),
            "then the usual rules"
        );
        assert_eq!(
            r.lookup("Cmd").ok(),
            Some(Resolved::Command("run #ROLE".into()))
        );
        let err = r.resolve("Cmd").map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            err,
            "component 'Cmd' is an external participant (command `run #ROLE`); it needs --broker"
        );
        let err = r.resolve("Gone").map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("maps to") && err.contains("gone.wasm"),
            "{err}"
        );
        let err = r.resolve("Nope").map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("no entry in") && err.contains("msgflo.json"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
