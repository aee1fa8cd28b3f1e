//! MsgFlo component libraries: `msgflo.json` (or `package.json` under `msgflo`) mapping
//! the names a graph uses to `.wasm` files or external participant commands.
//!
//! Follows MsgFlo's `library.coffee`:
//! - `components`: name → a `.wasm` path (relative to the library file) or a command template;
//! - `handlers`: file extension → command template, over MsgFlo's defaults ([`DEFAULT_HANDLERS`]);
//! - `variables`: `NAME` → text, substituted for `#NAME` (uppercased, in file order);
//! - `namespace` (else the package `name`), `componentdir`, `repository`.
//!
//! Lookup ([`Library::get`]) is MsgFlo's `getComponent`: the exact name, then the name
//! without its namespace, then `namespace/name`. Unknown keys are ignored; keys of the wrong
//! type are errors naming the file and key. Two deliberate differences from MsgFlo:
//! `componentdir` is a key here, relative to the library file (MsgFlo takes it on the
//! command line, relative to the working directory), and it also picks up `.wasm` files.
//!
//! [`Library::parse`] and lookup are pure; [`Library::load`] and [`Library::beside`] are the
//! only functions that touch the file system.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// MsgFlo's default handlers: file extension → command template.
pub const DEFAULT_HANDLERS: [(&str, &str); 6] = [
    (".yml", "msgflo-register --role #ROLE:#FILENAME"),
    (".js", "msgflo-nodejs --name #ROLE #FILENAME"),
    (".coffee", "msgflo-nodejs --name #ROLE #FILENAME"),
    (".py", "msgflo-python #FILENAME #ROLE"),
    (
        ".json",
        "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --iips #IIPS",
    ),
    (
        ".fbp",
        "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --iips #IIPS",
    ),
];

/// Why a library file could not be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The file could not be read.
    #[error("{}: cannot read library: {source}", file.display())]
    Read {
        /// The library file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}: invalid JSON: {source}", file.display())]
    Json {
        /// The library file.
        file: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A key holds the wrong type of value.
    #[error("{}: '{key}' must be {expected}, not {found}", file.display())]
    WrongType {
        /// The library file.
        file: PathBuf,
        /// The key, dotted from the top (`msgflo.components.x`).
        key: String,
        /// What the key must hold.
        expected: &'static str,
        /// What it holds.
        found: &'static str,
    },
    /// The `componentdir` exists but cannot be listed.
    #[error("{}: cannot list componentdir {}: {source}", file.display(), dir.display())]
    ComponentDir {
        /// The library file.
        file: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What a component name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A component file, run in-process.
    Wasm(PathBuf),
    /// An external participant's command; `#ROLE` and `#IIPS` are filled by [`expand`].
    Command(String),
}

/// One library entry before substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// From `components`: a path or a command template.
    Config(String),
    /// From `componentdir`: a `.wasm` file or a file run by its extension's handler.
    File(PathBuf),
}

/// A parsed component library.
#[derive(Debug, Clone)]
pub struct Library {
    file: PathBuf,
    namespace: Option<String>,
    repository: Option<String>,
    componentdir: Option<PathBuf>,
    variables: IndexMap<String, String>,
    handlers: IndexMap<String, String>,
    components: IndexMap<String, Entry>,
}

impl Library {
    /// Parses the library text of `file` (used for error messages and relative paths).
    ///
    /// The configuration is the top-level object, or its `msgflo` object when present
    /// (`package.json`). `componentdir` is recorded but not listed; see [`Library::load`].
    pub fn parse(file: &Path, text: &str) -> Result<Library, LibraryError> {
        let top: Value = serde_json::from_str(text).map_err(|source| LibraryError::Json {
            file: file.into(),
            source,
        })?;
        let check = Checker { file };
        let top = check.object(&top, "(top level)")?;
        let (config, prefix) = match top.get("msgflo") {
            None | Some(Value::Null) => (top, ""),
            Some(v) => (check.object(v, "msgflo")?, "msgflo."),
        };
        let key = |k: &str| format!("{prefix}{k}");

        let namespace = match check.string(config.get("namespace"), &key("namespace"))? {
            Some(ns) => Some(ns),
            None => check.string(top.get("name"), "name")?,
        };
        let repository = match check.repository(config.get("repository"), &key("repository"))? {
            Some(r) => Some(r),
            None if prefix.is_empty() => None,
            None => check.repository(top.get("repository"), "repository")?,
        };
        let componentdir = check
            .string(config.get("componentdir"), &key("componentdir"))?
            .map(|d| folder(file).join(d));
        let variables = check.strings(config.get("variables"), &key("variables"))?;
        let mut handlers: IndexMap<String, String> = DEFAULT_HANDLERS
            .iter()
            .map(|(e, c)| (e.to_string(), c.to_string()))
            .collect();
        for (ext, cmd) in check.strings(config.get("handlers"), &key("handlers"))? {
            let ext = if ext.starts_with('.') {
                ext
            } else {
                format!(".{ext}")
            };
            handlers.insert(ext, cmd);
        }
        let components = check
            .strings(config.get("components"), &key("components"))?
            .into_iter()
            .map(|(name, template)| (name, Entry::Config(template)))
            .collect();
        Ok(Library {
            file: file.into(),
            namespace,
            repository,
            componentdir,
            variables,
            handlers,
            components,
        })
    }

    /// Reads and parses `file`, then adds the files of its `componentdir` (if it exists).
    pub fn load(file: &Path) -> Result<Library, LibraryError> {
        let text = std::fs::read_to_string(file).map_err(|source| LibraryError::Read {
            file: file.into(),
            source,
        })?;
        let mut library = Library::parse(file, &text)?;
        if let Some(dir) = library.componentdir.clone()
            && dir.is_dir()
        {
            let entries = std::fs::read_dir(&dir).map_err(|source| LibraryError::ComponentDir {
                file: file.into(),
                dir: dir.clone(),
                source,
            })?;
            let files = entries.flatten().map(|e| e.path()).filter(|p| p.is_file());
            library.add_files(files);
        }
        Ok(library)
    }

    /// The library beside a graph in `dir`: `msgflo.json`, else a `package.json` that has a
    /// `msgflo` key; `None` when neither is there.
    pub fn beside(dir: &Path) -> Result<Option<Library>, LibraryError> {
        let msgflo = dir.join("msgflo.json");
        if msgflo.is_file() {
            return Library::load(&msgflo).map(Some);
        }
        let package = dir.join("package.json");
        let Ok(text) = std::fs::read_to_string(&package) else {
            return Ok(None);
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(top)) if top.contains_key("msgflo") => {
                Library::load(&package).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Adds component files (as from `componentdir`): each `.wasm` file or file with a
    /// handler becomes the component named by its stem, under the namespace if any.
    /// As in MsgFlo, `components` entries do not replace a file's entry of the same name.
    pub fn add_files(&mut self, files: impl IntoIterator<Item = PathBuf>) {
        let mut files: Vec<PathBuf> = files.into_iter().collect();
        files.sort();
        let mut found = IndexMap::new();
        for path in files {
            let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
                continue;
            };
            if ext != "wasm" && !self.handlers.contains_key(&format!(".{ext}")) {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let name = match &self.namespace {
                Some(ns) => format!("{ns}/{stem}"),
                None => stem.to_string(),
            };
            found.insert(name, Entry::File(path));
        }
        for (name, entry) in std::mem::take(&mut self.components) {
            found.entry(name).or_insert(entry);
        }
        self.components = found;
    }

    /// The library file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The namespace (`namespace`, else the package `name`).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The repository URL (`repository`, or `repository.url` in `package.json`).
    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }

    /// The components folder, relative paths taken from the library file's folder.
    pub fn componentdir(&self) -> Option<&Path> {
        self.componentdir.as_deref()
    }

    /// The handler template for a file extension (with its dot, e.g. `.py`).
    pub fn handler(&self, ext: &str) -> Option<&str> {
        self.handlers.get(ext).map(String::as_str)
    }

    /// Every component name the library defines, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.components.keys().map(String::as_str)
    }

    /// The library name `name` resolves to (MsgFlo's `getComponent`): the exact name, then
    /// the name without namespace (its last `/` segment), then `namespace/name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let base = name.rsplit('/').next().unwrap_or(name);
        let namespaced = self.namespace.as_ref().map(|ns| format!("{ns}/{name}"));
        [Some(name), Some(base), namespaced.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|n| self.components.get_key_value(n).map(|(k, _)| k.as_str()))
    }

    /// What `name` resolves to, with user variables, `#FILENAME`, `#COMPONENT` and
    /// `#COMPONENTNAME` substituted; `None` when the library does not define it.
    ///
    /// A result ending in `.wasm` is a component file, relative to the library's folder.
    pub fn resolve(&self, name: &str) -> Option<Resolved> {
        let key = self.get(name)?;
        let (template, filename) = match self.components.get(key)? {
            Entry::Config(template) => (template.as_str(), None),
            Entry::File(path) if path.extension().is_some_and(|e| e == "wasm") => {
                return Some(Resolved::Wasm(path.clone()));
            }
            Entry::File(path) => {
                let ext = path.extension()?.to_str()?;
                let template = self.handlers.get(&format!(".{ext}"))?;
                (template.as_str(), Some(path.display().to_string()))
            }
        };
        let mut text = template.to_string();
        for (var, value) in &self.variables {
            text = replace_marker(&text, var, value);
        }
        if let Some(filename) = &filename {
            text = replace_marker(&text, "FILENAME", filename);
        }
        text = replace_marker(&text, "COMPONENTNAME", component_name(key));
        text = replace_marker(&text, "COMPONENT", key);
        Some(if filename.is_none() && text.ends_with(".wasm") {
            Resolved::Wasm(folder(&self.file).join(text))
        } else {
            Resolved::Command(text)
        })
    }
}

/// Fills a command template for one participant: `#COMPONENTNAME`, `#COMPONENT`, `#ROLE`,
/// then `#IIPS` as `'<iips_json>'` (single-quoted, as MsgFlo passes it).
///
/// ```
/// use wasmflo_host::library::expand;
/// let cmd = expand("run #COMPONENTNAME --name #ROLE --iips #IIPS", "r", "ns/C", r#"{"in":1}"#);
/// assert_eq!(cmd, r#"run C --name r --iips '{"in":1}'"#);
/// ```
pub fn expand(template: &str, role: &str, component: &str, iips_json: &str) -> String {
    let text = replace_marker(template, "COMPONENTNAME", component_name(component));
    let text = replace_marker(&text, "COMPONENT", component);
    let text = replace_marker(&text, "ROLE", role);
    replace_marker(&text, "IIPS", &format!("'{iips_json}'"))
}

/// MsgFlo's `replaceMarker`: every `#MARKER` (uppercased) becomes `value`.
fn replace_marker(text: &str, marker: &str, value: &str) -> String {
    text.replace(&format!("#{}", marker.to_uppercase()), value)
}

/// The part after the namespace, as MsgFlo computes it (`component.split('/')[1]`).
fn component_name(component: &str) -> &str {
    component.split('/').nth(1).unwrap_or(component)
}

fn folder(file: &Path) -> &Path {
    file.parent().unwrap_or(Path::new(""))
}

/// Type checks that name the file and key.
struct Checker<'a> {
    file: &'a Path,
}

impl Checker<'_> {
    fn wrong(&self, key: &str, expected: &'static str, found: &Value) -> LibraryError {
        LibraryError::WrongType {
            file: self.file.into(),
            key: key.into(),
            expected,
            found: kind(found),
        }
    }

    fn object<'v>(
        &self,
        value: &'v Value,
        key: &str,
    ) -> Result<&'v Map<String, Value>, LibraryError> {
        value
            .as_object()
            .ok_or_else(|| self.wrong(key, "an object", value))
    }

    fn string(&self, value: Option<&Value>, key: &str) -> Result<Option<String>, LibraryError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// A string, or (`package.json`) an object with a string `url`.
    fn repository(&self, value: Option<&Value>, key: &str) -> Result<Option<String>, LibraryError> {
        match value {
            Some(Value::Object(o)) => self.string(o.get("url"), &format!("{key}.url")),
            other => self.string(other, key),
        }
    }

    /// An object whose values are all strings.
    fn strings(
        &self,
        value: Option<&Value>,
        key: &str,
    ) -> Result<IndexMap<String, String>, LibraryError> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(IndexMap::new());
        };
        let mut out = IndexMap::new();
        for (k, v) in self.object(value, key)? {
            match v {
                Value::String(s) => out.insert(k.clone(), s.clone()),
                other => return Err(self.wrong(&format!("{key}.{k}"), "a string", other)),
            };
        }
        Ok(out)
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(text: &str) -> Library {
        match Library::parse(Path::new("/libs/msgflo.json"), text) {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(text: &str) -> String {
        match Library::parse(Path::new("/libs/msgflo.json"), text) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    fn cmd(text: &str) -> Resolved {
        Resolved::Command(text.into())
    }

    #[test]
    fn components_map_to_wasm_files_or_commands() {
        let l = lib(r#"{
            "components": {
                "myns/Repeater": "core/Repeat.wasm",
                "Abs": "/opt/c/Abs.wasm",
                "py/Worker": "python3 worker.py #ROLE"
            }
        }"#);
        assert_eq!(
            l.resolve("myns/Repeater"),
            Some(Resolved::Wasm("/libs/core/Repeat.wasm".into()))
        );
        assert_eq!(
            l.resolve("Abs"),
            Some(Resolved::Wasm("/opt/c/Abs.wasm".into()))
        );
        assert_eq!(l.resolve("py/Worker"), Some(cmd("python3 worker.py #ROLE")));
        assert_eq!(l.resolve("Nothing"), None);
        assert_eq!(
            l.names().collect::<Vec<_>>(),
            ["myns/Repeater", "Abs", "py/Worker"]
        );
    }

    #[test]
    fn lookup_is_exact_then_basename_then_namespaced() {
        let l = lib(r#"{
            "namespace": "ns",
            "components": { "A": "a", "ns/B": "b", "x/A": "xa" }
        }"#);
        assert_eq!(l.get("x/A"), Some("x/A"), "exact first");
        assert_eq!(l.get("other/A"), Some("A"), "then without namespace");
        assert_eq!(l.get("B"), Some("ns/B"), "then namespace/name");
        assert_eq!(l.get("C"), None);
        let plain = lib(r#"{ "components": { "ns/B": "b" } }"#);
        assert_eq!(plain.get("B"), None, "no namespace, no third try");
    }

    #[test]
    fn variables_and_component_markers_are_substituted() {
        let l = lib(r##"{
            "namespace": "ns",
            "variables": { "bin": "/usr/bin/run", "ARGS": "--role #ROLE", "DIR": "out" },
            "components": {
                "ns/W": "#BIN #COMPONENTNAME #COMPONENT #ARGS",
                "V": "#DIR/V.wasm"
            }
        }"##);
        let Some(Resolved::Command(t)) = l.resolve("W") else {
            panic!("a command")
        };
        assert_eq!(
            t, "/usr/bin/run W ns/W --role #ROLE",
            "ROLE waits for expand"
        );
        assert_eq!(
            expand(&t, "w1", "ns/W", "{}"),
            "/usr/bin/run W ns/W --role w1"
        );
        assert_eq!(
            l.resolve("V"),
            Some(Resolved::Wasm("/libs/out/V.wasm".into()))
        );
    }

    #[test]
    fn expand_fills_role_component_and_quoted_iips() {
        let t = "p --name #ROLE --graph #COMPONENT (#COMPONENTNAME) --iips #IIPS";
        assert_eq!(
            expand(t, "r", "lib/G", r#"{"in":"x"}"#),
            r#"p --name r --graph lib/G (G) --iips '{"in":"x"}'"#
        );
        assert_eq!(expand("#COMPONENTNAME", "r", "Plain", "{}"), "Plain");
    }

    #[test]
    fn package_json_uses_msgflo_key_name_and_repository() {
        let l = lib(r#"{
            "name": "pkg",
            "repository": { "type": "git", "url": "https://example.org/pkg.git" },
            "msgflo": { "components": { "pkg/A": "a #COMPONENT" }, "unknown": [1] }
        }"#);
        assert_eq!(l.namespace(), Some("pkg"));
        assert_eq!(l.repository(), Some("https://example.org/pkg.git"));
        assert_eq!(l.resolve("A"), Some(cmd("a pkg/A")));
        let own = lib(r#"{ "name": "pkg", "msgflo": { "namespace": "ns", "repository": "r" } }"#);
        assert_eq!(own.namespace(), Some("ns"));
        assert_eq!(own.repository(), Some("r"));
        let plain = lib(r#"{ "repository": "https://example.org/r", "future": {} }"#);
        assert_eq!(plain.repository(), Some("https://example.org/r"));
        assert_eq!(plain.namespace(), None);
    }

    #[test]
    fn handlers_default_to_msgflos_and_can_be_overridden() {
        let l =
            lib(r#"{ "handlers": { ".py": "python3 #FILENAME #ROLE", "rb": "ruby #FILENAME" } }"#);
        assert_eq!(l.handler(".py"), Some("python3 #FILENAME #ROLE"));
        assert_eq!(l.handler(".rb"), Some("ruby #FILENAME"), "dot added");
        assert_eq!(
            l.handler(".yml"),
            Some("msgflo-register --role #ROLE:#FILENAME")
        );
        assert_eq!(
            l.handler(".fbp"),
            DEFAULT_HANDLERS.iter().find(|h| h.0 == ".fbp").map(|h| h.1)
        );
    }

    #[test]
    fn componentdir_files_become_components() {
        let mut l = lib(r#"{
            "namespace": "ns",
            "componentdir": "parts",
            "handlers": { ".rb": "ruby #FILENAME #ROLE" },
            "components": { "ns/Py": "loses to the file", "Other": "o" }
        }"#);
        assert_eq!(l.componentdir(), Some(Path::new("/libs/parts")));
        l.add_files(
            ["Py.py", "Rb.rb", "C.wasm", "README.md", "noext"]
                .map(|f| PathBuf::from("/libs/parts").join(f)),
        );
        assert_eq!(
            l.resolve("Py"),
            Some(cmd("msgflo-python /libs/parts/Py.py #ROLE"))
        );
        assert_eq!(
            l.resolve("ns/Rb"),
            Some(cmd("ruby /libs/parts/Rb.rb #ROLE"))
        );
        assert_eq!(
            l.resolve("C"),
            Some(Resolved::Wasm("/libs/parts/C.wasm".into()))
        );
        assert_eq!(l.resolve("README"), None);
        assert_eq!(l.resolve("Other"), Some(cmd("o")));
    }

    #[test]
    fn errors_name_file_and_key() {
        assert!(err("{").starts_with("/libs/msgflo.json: invalid JSON: "));
        assert_eq!(
            err("[]"),
            "/libs/msgflo.json: '(top level)' must be an object, not an array"
        );
        let cases = [
            (
                r#"{"msgflo": "x"}"#,
                "'msgflo' must be an object, not a string",
            ),
            (
                r#"{"components": []}"#,
                "'components' must be an object, not an array",
            ),
            (
                r#"{"components": {"A": 1}}"#,
                "'components.A' must be a string, not a number",
            ),
            (
                r#"{"msgflo": {"handlers": {".py": true}}}"#,
                "'msgflo.handlers..py' must be a string, not a boolean",
            ),
            (
                r#"{"variables": {"X": {}}}"#,
                "'variables.X' must be a string, not an object",
            ),
            (
                r#"{"namespace": 3}"#,
                "'namespace' must be a string, not a number",
            ),
            (r#"{"name": 3}"#, "'name' must be a string, not a number"),
            (
                r#"{"componentdir": ["a"]}"#,
                "'componentdir' must be a string, not an array",
            ),
            (
                r#"{"repository": 1}"#,
                "'repository' must be a string, not a number",
            ),
            (
                r#"{"repository": {"url": 1}}"#,
                "'repository.url' must be a string, not a number",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                err(text),
                format!("/libs/msgflo.json: {expected}"),
                "{text}"
            );
        }
        let missing = Library::load(Path::new("/nonexistent/msgflo.json"))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            matches!(&missing, Err(e) if e.starts_with("/nonexistent/msgflo.json: cannot read library: ")),
            "{missing:?}"
        );
    }

    #[test]
    fn null_keys_are_absent() {
        let l = lib(r#"{ "components": null, "variables": null, "namespace": null }"#);
        assert_eq!(l.names().count(), 0);
        assert_eq!(l.namespace(), None);
    }

    #[test]
    fn beside_finds_msgflo_json_or_a_package_json_with_msgflo() {
        let dir = std::env::temp_dir().join(format!("wasmflo-library-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("parts")).ok();
        let found = |d: &Path| Library::beside(d).map(|l| l.map(|l| l.file().to_path_buf()));
        assert!(matches!(found(&dir), Ok(None)));
        std::fs::write(dir.join("package.json"), r#"{"name": "p"}"#).ok();
        assert!(matches!(found(&dir), Ok(None)), "no msgflo key");
        std::fs::write(
            dir.join("package.json"),
            r#"{"msgflo": {"componentdir": "parts"}}"#,
        )
        .ok();
        std::fs::write(dir.join("parts/W.wasm"), b"").ok();
        assert_eq!(found(&dir).ok().flatten(), Some(dir.join("package.json")));
        let l = Library::beside(&dir).ok().flatten();
        assert_eq!(
            l.and_then(|l| l.resolve("W")),
            Some(Resolved::Wasm(dir.join("parts/W.wasm"))),
            "load lists componentdir"
        );
        std::fs::write(dir.join("msgflo.json"), "{}").ok();
        assert_eq!(found(&dir).ok().flatten(), Some(dir.join("msgflo.json")));
        std::fs::remove_dir_all(&dir).ok();
    }
}
