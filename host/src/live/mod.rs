//! Live coding: new versions of a component's code swapped into a running graph.
//!
//! Three parts, each owning one step:
//! - [`Swapper`] (here): knows which processes run which component file and offers a
//!   new version to each of them, reporting graph edges that name ports the new version
//!   no longer has. The swap itself happens inside each participant's loop, at a
//!   message boundary ([`crate::participant`]).
//! - [`watcher`]: watches the component files in use (notify), waits until a changed
//!   file is complete and valid, loads (compiles) it and hands it to the [`Swapper`].
//!   Editors and cargo write by rename or in several writes; a file that does not
//!   validate is retried until it has been quiet for the settle time, and only then
//!   reported as rejected.
//! - [`rebuild`]: with `--watch`, rebuilds a Rust component from its source crate when a
//!   source file changes; the rebuilt file then flows through the watcher like any other.
//!
//! A file whose bytes changed in any way (even one custom section) is a new version: the
//! version is the content hash.

pub mod rebuild;
pub mod watcher;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use crate::component::LoadedComponent;
use crate::participant::{SwapEvent, Update};

pub use watcher::{LiveError, LiveWatch, WatchEvent, WatchOptions, watch_components};

/// One graph edge, kept to report edges a new version breaks.
#[derive(Debug, Clone)]
pub struct EdgeEnd {
    /// `file:line: ` of the edge.
    pub at: String,
    /// Source (process, outport).
    pub src: (String, String),
    /// Target (process, inport).
    pub tgt: (String, String),
}

/// One running process as the [`Swapper`] sees it.
#[derive(Debug)]
pub struct SwapperEntry {
    /// The process.
    pub process: String,
    /// The component file it runs.
    pub path: PathBuf,
    /// The component it runs now.
    pub component: Arc<LoadedComponent>,
    /// Where new versions are offered to its participant.
    pub offer: watch::Sender<Update>,
}

/// Offers new versions of component files to the processes running them.
#[derive(Debug, Clone)]
pub struct Swapper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    entries: Mutex<Vec<Arc<Entry>>>,
    edges: Vec<EdgeEnd>,
    events: broadcast::Sender<SwapEvent>,
}

#[derive(Debug)]
struct Entry {
    process: String,
    /// The component file, canonical when it could be resolved.
    path: PathBuf,
    /// The version last offered (the watcher does not offer the same bytes twice).
    current: Mutex<Arc<LoadedComponent>>,
    /// The version the participant runs: updated when it reports a swap done.
    running: Mutex<Arc<LoadedComponent>>,
    offer: watch::Sender<Update>,
}

/// What [`Swapper::offer`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offered {
    /// The processes the version was offered to.
    pub processes: Vec<String>,
    /// One line per graph edge naming a port the new version lacks.
    pub broken_edges: Vec<String>,
}

/// The canonical form of `path` (the file itself may be missing mid-rename).
pub(crate) fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            dir.canonicalize()
                .map(|d| d.join(name))
                .unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

impl Swapper {
    /// A swapper over `entries`; swap outcomes are sent on `events`.
    pub fn new(
        entries: Vec<SwapperEntry>,
        edges: Vec<EdgeEnd>,
        events: broadcast::Sender<SwapEvent>,
    ) -> Self {
        let mut reports = events.subscribe();
        let swapper = Swapper {
            inner: Arc::new(Inner {
                entries: Mutex::new(Vec::new()),
                edges,
                events,
            }),
        };
        for e in entries {
            swapper.add(e);
        }
        // Follow the participants' reports, so `running` names the code that runs.
        let weak = Arc::downgrade(&swapper.inner);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                loop {
                    let event = match reports.recv().await {
                        Ok(e) => e,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    };
                    let Some(inner) = weak.upgrade() else { break };
                    if event.outcome.is_err() {
                        continue;
                    }
                    for entry in lock(&inner.entries).iter() {
                        if *entry.process == *event.process {
                            let offered = lock(&entry.current).clone();
                            if offered.short_hash() == event.version {
                                *lock(&entry.running) = offered;
                            }
                        }
                    }
                }
            });
        }
        swapper
    }

    /// The component process `name` runs now.
    pub fn running(&self, process: &str) -> Option<Arc<LoadedComponent>> {
        self.entries()
            .iter()
            .find(|e| e.process == process)
            .map(|e| lock(&e.running).clone())
    }

    /// The component the processes running file `path` run now (the first of them).
    pub fn running_file(&self, path: &Path) -> Option<Arc<LoadedComponent>> {
        let path = canonical(path);
        self.entries()
            .iter()
            .find(|e| e.path == path)
            .map(|e| lock(&e.running).clone())
    }

    /// Registers a process started after the network (files already watched only).
    pub fn add(&self, e: SwapperEntry) {
        lock(&self.inner.entries).push(Arc::new(Entry {
            process: e.process,
            path: canonical(&e.path),
            current: Mutex::new(e.component.clone()),
            running: Mutex::new(e.component),
            offer: e.offer,
        }));
    }

    /// Forgets a removed process.
    pub fn remove(&self, process: &str) {
        lock(&self.inner.entries).retain(|e| e.process != process);
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        lock(&self.inner.entries).clone()
    }

    /// The distinct component files in use.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.entries().iter().map(|e| e.path.clone()).collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// The component now offered for file `path`, if any process runs it.
    pub fn current(&self, path: &Path) -> Option<Arc<LoadedComponent>> {
        let path = canonical(path);
        self.entries()
            .iter()
            .find(|e| e.path == path)
            .map(|e| lock(&e.current).clone())
    }

    /// Receives the outcome of every swap (one event per process and version).
    pub fn events(&self) -> broadcast::Receiver<SwapEvent> {
        self.inner.events.subscribe()
    }

    /// Offers `next` to every process running file `path`. Edges that name a port the
    /// new version lacks are logged and returned: messages on such an inport are
    /// dead-lettered with the reason, an outport that is gone sends nothing.
    pub fn offer(&self, path: &Path, next: &Arc<LoadedComponent>) -> Offered {
        let path = canonical(path);
        let def = &next.definition;
        let mut offered = Offered::default();
        for entry in self.entries().iter().filter(|e| e.path == path) {
            *lock(&entry.current) = next.clone();
            for edge in &self.inner.edges {
                let (src, out) = &edge.src;
                let (tgt, inp) = &edge.tgt;
                let line = if tgt == &entry.process && def.inport(inp).is_none() {
                    Some(format!(
                        "{}edge {src} {out} -> {inp} {tgt}: version {} of '{}' has no inport '{inp}'; messages on it are dead-lettered",
                        edge.at,
                        next.short_hash(),
                        def.component
                    ))
                } else if src == &entry.process && def.outport_index(out).is_none() {
                    Some(format!(
                        "{}edge {src} {out} -> {inp} {tgt}: version {} of '{}' has no outport '{out}'; the edge carries nothing",
                        edge.at,
                        next.short_hash(),
                        def.component
                    ))
                } else {
                    None
                };
                if let Some(line) = line {
                    tracing::warn!("{line}");
                    offered.broken_edges.push(line);
                }
            }
            let update: Update = next.clone();
            entry.offer.send_replace(update);
            offered.processes.push(entry.process.clone());
        }
        offered
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
