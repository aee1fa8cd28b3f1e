//! Watches component files and turns each complete, valid new version into an offer.
//!
//! The directory of each file is watched (not the file: a rename replaces the inode).
//! Every event for a watched file triggers an attempt: read, hash, load. A version that
//! loads is offered at once. One that fails is retried on the next event; if none comes
//! within the settle time the failure is final and reported once, naming the file, and
//! the running version stays. Failures that prove the file complete (it parses but
//! targets another world, traps while starting, ...) are reported without waiting.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::{Swapper, canonical};
use crate::component::{LoadError, Loader};

/// Settings of [`watch_components`].
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long a file that does not validate must stay unchanged before it is rejected.
    pub settle: Duration,
    /// Also rebuild Rust components from their source crates ([`super::rebuild`]).
    pub rebuild: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            settle: Duration::from_millis(300),
            rebuild: false,
        }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The OS refused a watch.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
}

/// What the watcher did with a changed file.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// The file does not validate yet (possibly half-written); retried until settled.
    Incomplete {
        /// The file.
        path: PathBuf,
        /// Why it does not load.
        error: String,
    },
    /// A new version loaded and was offered to the processes running the file.
    Offered {
        /// The file.
        path: PathBuf,
        /// Its version (hash prefix).
        version: String,
        /// Reading, compiling (or fetching from the cache) and checking it.
        load: Duration,
    },
    /// The new version is bad; the running one stays.
    Rejected {
        /// The file.
        path: PathBuf,
        /// Why, naming the file.
        error: String,
    },
}

/// A running watch; dropping it stops watching.
#[derive(Debug)]
pub struct LiveWatch {
    _watchers: Vec<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
    events: broadcast::Sender<WatchEvent>,
}

impl LiveWatch {
    /// Receives what the watcher does with each changed file.
    pub fn events(&self) -> broadcast::Receiver<WatchEvent> {
        self.events.subscribe()
    }
}

impl Drop for LiveWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One file-change notification.
#[derive(Debug)]
struct Changed {
    path: PathBuf,
}

/// Starts watching every component file `swapper` knows about (and, with
/// `opts.rebuild`, their source crates). Must be called inside a tokio runtime.
pub fn watch_components(
    swapper: Swapper,
    loader: Arc<Loader>,
    opts: WatchOptions,
) -> Result<LiveWatch, LiveError> {
    let files: HashSet<PathBuf> = swapper.paths().into_iter().collect();
    let (tx, rx) = mpsc::unbounded_channel::<Changed>();
    let mut watchers = Vec::new();
    let dirs: HashSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let wanted = files.clone();
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            if wanted.contains(&path) {
                let _ = events.send(Changed { path });
            }
        }
    })
    .map_err(|source| LiveError::Watch {
        path: PathBuf::new(),
        source,
    })?;
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| LiveError::Watch {
                path: dir.clone(),
                source,
            })?;
    }
    watchers.push(watcher);
    if opts.rebuild {
        watchers.extend(super::rebuild::watch_sources(&files)?);
    }
    for file in &files {
        tracing::info!("watching {}", file.display());
    }
    let (events, _) = broadcast::channel(256);
    let ctx = Ctx {
        swapper,
        loader,
        events: events.clone(),
    };
    let task = tokio::spawn(reload_loop(ctx, opts.settle, rx));
    Ok(LiveWatch {
        _watchers: watchers,
        task,
        events,
    })
}

/// A changed file that has not loaded yet.
struct Pending {
    /// When it counts as settled.
    deadline: Instant,
    /// The last failure, with the hash of the bytes that failed.
    failure: Option<(String, String)>,
}

struct Ctx {
    swapper: Swapper,
    loader: Arc<Loader>,
    events: broadcast::Sender<WatchEvent>,
}

async fn reload_loop(ctx: Ctx, settle: Duration, mut rx: mpsc::UnboundedReceiver<Changed>) {
    let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
    // The hash last reported as rejected per file, so a failure is reported once.
    let mut rejected: HashMap<PathBuf, String> = HashMap::new();
    loop {
        let next_deadline = pending.values().map(|p| p.deadline).min();
        tokio::select! {
            changed = rx.recv() => {
                let Some(Changed { path }) = changed else { break };
                let entry = pending.entry(path.clone()).or_insert(Pending {
                    deadline: Instant::now() + settle,
                    failure: None,
                });
                entry.deadline = Instant::now() + settle;
                match attempt(&ctx, &path).await {
                    Attempt::Done => {
                        pending.remove(&path);
                        rejected.remove(&path);
                    }
                    Attempt::Final(hash, error) => {
                        pending.remove(&path);
                        report(&ctx, &mut rejected, &path, hash, &error);
                    }
                    Attempt::Retry(failure) => {
                        if let Some(p) = pending.get_mut(&path) {
                            p.failure = failure;
                        }
                    }
                }
            }
            () = sleep_until(next_deadline) => {
                let now = Instant::now();
                let due: Vec<PathBuf> = pending
                    .iter()
                    .filter(|(_, p)| p.deadline <= now)
                    .map(|(path, _)| path.clone())
                    .collect();
                for path in due {
                    let failure = pending.remove(&path).and_then(|p| p.failure);
                    // One last look: the final write may have raced the event.
                    match attempt(&ctx, &path).await {
                        Attempt::Done => {
                            rejected.remove(&path);
                        }
                        Attempt::Final(hash, error) => {
                            report(&ctx, &mut rejected, &path, hash, &error);
                        }
                        Attempt::Retry(last) => {
                            if let Some((hash, error)) = last.or(failure) {
                                report(&ctx, &mut rejected, &path, hash, &error);
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn report(
    ctx: &Ctx,
    rejected: &mut HashMap<PathBuf, String>,
    path: &Path,
    hash: String,
    error: &str,
) {
    if rejected.get(path) == Some(&hash) {
        return;
    }
    let running = ctx
        .swapper
        .running_file(path)
        .map(|c| c.short_hash().to_string())
        .unwrap_or_default();
    tracing::error!("new version rejected: {error}; keeping version {running}");
    rejected.insert(path.to_path_buf(), hash);
    let _ = ctx.events.send(WatchEvent::Rejected {
        path: path.to_path_buf(),
        error: error.to_string(),
    });
}

enum Attempt {
    /// Offered, or unchanged.
    Done,
    /// The file is complete and the version is bad: (hash, error).
    Final(String, String),
    /// Possibly half-written: try again later (last failure, if the file was read).
    Retry(Option<(String, String)>),
}

async fn attempt(ctx: &Ctx, path: &Path) -> Attempt {
    let attempt = try_load(&ctx.swapper, &ctx.loader, &ctx.events, path).await;
    if let Attempt::Retry(Some((_, error))) = &attempt {
        let _ = ctx.events.send(WatchEvent::Incomplete {
            path: path.to_path_buf(),
            error: error.clone(),
        });
    }
    attempt
}

async fn try_load(
    swapper: &Swapper,
    loader: &Arc<Loader>,
    events: &broadcast::Sender<WatchEvent>,
    path: &Path,
) -> Attempt {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return Attempt::Retry(Some((
                String::new(),
                format!("{}: cannot read component: {e}", path.display()),
            )));
        }
    };
    let hash = crate::component::hash_bytes(&bytes);
    if swapper.current(path).is_some_and(|c| c.hash == hash) {
        return Attempt::Done;
    }
    let started = std::time::Instant::now();
    let loader = loader.clone();
    let file = canonical(path);
    let loaded = tokio::task::spawn_blocking(move || loader.load_bytes(&file, &bytes)).await;
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => return Attempt::Final(hash, format!("{}: loader failed: {e}", path.display())),
    };
    match loaded {
        Ok(component) => {
            let load = started.elapsed();
            tracing::info!(
                "{}: new version {} loaded in {load:?}",
                path.display(),
                component.short_hash(),
            );
            swapper.offer(path, &component);
            let _ = events.send(WatchEvent::Offered {
                path: path.to_path_buf(),
                version: component.short_hash().to_string(),
                load,
            });
            Attempt::Done
        }
        Err(
            e @ (LoadError::WrongWorld { .. }
            | LoadError::Start { .. }
            | LoadError::BadDefinition { .. }),
        ) => Attempt::Final(hash, e.to_string()),
        Err(e) => Attempt::Retry(Some((hash, e.to_string()))),
    }
}
