//! `BuildError`: everything that can go wrong, naming the crate or path at fault.

use std::path::PathBuf;

/// A failure while discovering, compiling or componentizing guest crates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A directory or file could not be read or written.
    #[error("I/O error on {path}")]
    Io {
        /// The path being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A guest crate's Cargo.toml did not parse.
    #[error("cannot parse {manifest}")]
    Manifest {
        /// The Cargo.toml at fault.
        manifest: PathBuf,
        /// The parse error.
        #[source]
        source: toml::de::Error,
    },
    /// `[package.metadata.wasmflo] component` is not of the form `namespace/Name`.
    #[error(
        "crate `{crate_name}` declares component name `{component}`, expected `namespace/Name` \
         made of letters, digits, `-`, `_` and `.`"
    )]
    InvalidComponentName {
        /// The guest crate.
        crate_name: String,
        /// The offending name.
        component: String,
    },
    /// `[package.metadata.wasmflo.device]` declares a heap or stack that cannot be right.
    #[error(
        "crate `{crate_name}` (component `{component}`) declares a bad device memory: {detail}"
    )]
    InvalidDeviceMemory {
        /// The guest crate.
        crate_name: String,
        /// Its component name.
        component: String,
        /// What is wrong.
        detail: String,
    },
    /// Two guest crates declare the same component name.
    #[error("component `{component}` is declared by both `{first}` and `{second}`")]
    DuplicateComponent {
        /// The component name.
        component: String,
        /// One crate declaring it.
        first: String,
        /// The other crate declaring it.
        second: String,
    },
    /// A program (`cargo`, `rustc`, `rustup`) could not be started.
    #[error("cannot run `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A guest target's standard library is missing and could not be added.
    #[error(
        "the {target} target is not installed in {sysroot} and \
         `rustup target add {target}` failed ({status})"
    )]
    MissingTarget {
        /// The target triple, such as `wasm32-unknown-unknown`.
        target: &'static str,
        /// The sysroot that lacks it.
        sysroot: PathBuf,
        /// How rustup exited.
        status: std::process::ExitStatus,
    },
    /// `rustc --print sysroot` failed.
    #[error("`{program} --print sysroot` failed ({status})")]
    Sysroot {
        /// The compiler.
        program: String,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// The nested `cargo build` failed; its diagnostics went to stderr.
    #[error("building guest crates {crates:?} failed ({status}); see the cargo output above")]
    Cargo {
        /// The crates being built.
        crates: Vec<String>,
        /// How cargo exited.
        status: std::process::ExitStatus,
    },
    /// A crate built, but its wasm file is not where cargo puts it.
    #[error("crate `{crate_name}` built but {path} is missing; is it a `cdylib`?")]
    MissingModule {
        /// The guest crate.
        crate_name: String,
        /// The expected wasm file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `wit-component` refused the core module.
    #[error("cannot turn crate `{crate_name}` into a component")]
    Componentize {
        /// The guest crate.
        crate_name: String,
        /// The error from wit-component.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A device-profile build does not have the memory the profile promises.
    #[error("device build of crate `{crate_name}`: {detail}")]
    DeviceMemory {
        /// The guest crate.
        crate_name: String,
        /// What is wrong.
        detail: String,
    },
    /// A foreign guest's `wasmflo.toml` is not usable.
    #[error("{manifest}: {detail}")]
    ForeignManifest {
        /// The manifest at fault.
        manifest: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A language's toolchain is missing and could not be installed.
    #[error("no {language} toolchain: {detail}")]
    Toolchain {
        /// The language.
        language: &'static str,
        /// What is missing and how to install it.
        detail: String,
    },
    /// A toolchain program failed; its own output is above.
    #[error("`{program}` failed for {component} ({status}): {detail}")]
    Tool {
        /// The program.
        program: String,
        /// The component (or toolchain) being built.
        component: String,
        /// Its exit status.
        status: String,
        /// The first error line it printed.
        detail: String,
    },
    /// Bindings could not be generated from the WIT files.
    #[error("cannot generate bindings from {wit}: {detail}")]
    Bindings {
        /// The WIT folder.
        wit: PathBuf,
        /// The generator's error.
        detail: String,
    },
    /// A foreign guest did not build into a usable component.
    #[error("{component}: {detail}")]
    Foreign {
        /// The component name.
        component: String,
        /// What went wrong.
        detail: String,
    },
}

impl BuildError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
