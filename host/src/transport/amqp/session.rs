//! One AMQP connection that heals itself: the transport's own reconnection.
//!
//! lapin's experimental auto-recovery is not used: after a connection cut it could stay in
//! `Reconnecting` for good (in most runs of the connection-cut test on a loaded machine),
//! every publish failing and the consumers silent. Instead, when the connection fails (an
//! error event, an operation that finds it gone, or the supervisor's once-a-second look)
//! the session's supervisor opens a new one, with backoff from 100 ms up to 5 s and no
//! limit, then:
//! 1. opens a new publishing channel in confirm mode;
//! 2. replays every declaration and binding made so far, in order (durable ones are
//!    idempotent; private queues died with the old connection); one the broker refuses is
//!    logged and skipped, so one deleted queue cannot hold back the rest;
//! 3. bumps the [generation](Session::generations), on which every subscription waits
//!    before consuming again (after step 2, so a private queue exists when consumed).
//!
//! What was delivered on the old connection and not yet acked is requeued by the broker; an
//! ack for it fails on the dead channel and is dropped (at least once, never lost). A
//! publish on the old connection either failed or was never confirmed, and counts as
//! failed (see `confirms.rs`), so the input it came from is redelivered too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::super::TransportError;
use super::super::confirms::Confirms;
use super::declare::Declared;
use super::{broker, properties};
use crate::message::Message;

/// First wait before trying to reconnect again; doubled up to [`MAX_RETRY`].
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(5);
/// How often the supervisor looks at the connection without being told it failed (a
/// broker's orderly close raises no error event).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How long a publish may wait for its confirm before it counts as failed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a channel, handing a publish to the connection, or an ack or nack
/// may take. On a connection that died half closed, lapin's futures for it may never
/// resolve: a participant awaiting one would stop for good, its prefetched deliveries
/// unacked.
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How to open the connection, again and again.
pub(super) struct Connector {
    /// `amqp[s]://user:password@host:port/vhost?...`
    pub uri: String,
    /// The CA certificates to trust (PEM), for `amqps` with a CA file.
    pub ca_pem: Option<String>,
}

impl Connector {
    async fn open(&self) -> Result<Connection, lapin::Error> {
        // Auto-recovery stays off: the session reconnects (see the module docs).
        let properties = ConnectionProperties::default().with_connection_name("wasmflo".into());
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.clone(),
        };
        let runtime = lapin::runtime::default_runtime()?;
        Connection::connect_with_config(&self.uri, properties, tls, runtime).await
    }
}

/// The current connection and its publishing channel.
#[derive(Clone)]
pub(super) struct Link {
    /// Shared: the connection closes when it and all its channels are dropped.
    pub conn: Arc<Connection>,
    publishing: Channel,
    /// How many times the session has connected (1 for the first connection).
    pub generation: u64,
}

impl Link {
    pub fn connected(&self) -> bool {
        self.conn.status().connected()
    }
}

type Tracked = (u64, PublisherConfirm, Instant);

/// The connection of one [`AmqpTransport`](super::AmqpTransport), kept alive.
pub(super) struct Session {
    /// The broker URL without its password, for logs and errors.
    pub url: String,
    connector: Connector,
    link: Mutex<Link>,
    /// Held while the publishing channel is reopened.
    reopening: tokio::sync::Mutex<()>,
    generation: watch::Sender<u64>,
    /// Tells the supervisor the connection may be gone.
    broken: Arc<Notify>,
    /// What to declare again on a new connection, in order.
    pub(super) declared: Mutex<Vec<Declared>>,
    /// Publishes in flight (across connections: sequence numbers are the session's own).
    pub confirms: Confirms,
    /// Confirms of deferred publishes, awaited in order by a tracker task.
    tracker: mpsc::UnboundedSender<Tracked>,
    /// Whether `fbp` has been declared on the current connection.
    pub fbp_declared: AtomicBool,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Wakes the supervisor, which finds the session gone and ends.
        self.broken.notify_one();
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn open_publishing(conn: &Connection) -> Result<Channel, lapin::Error> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Tells `broken` when `conn` reports an error, until the session moves on from it.
fn watch_connection(
    conn: &Connection,
    generation: u64,
    session: Weak<Session>,
    broken: Arc<Notify>,
) {
    let mut events = conn.events_listener();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let lapin::Event::Error(e) = event {
                tracing::debug!("AMQP connection event: {e}");
                broken.notify_one();
            }
            match session.upgrade() {
                Some(s) if s.link().generation == generation => {}
                _ => return,
            }
        }
    });
}

impl Session {
    /// Connects for the first time and starts the supervisor.
    pub async fn connect(url: String, connector: Connector) -> Result<Arc<Self>, TransportError> {
        let connect_error = |e: lapin::Error| TransportError::Connect {
            url: url.clone(),
            detail: e.to_string(),
        };
        let conn = Arc::new(connector.open().await.map_err(connect_error)?);
        let publishing = open_publishing(&conn).await.map_err(connect_error)?;
        let (tracker, confirms) = mpsc::unbounded_channel();
        let broken = Arc::new(Notify::new());
        let session = Arc::new(Session {
            url,
            connector,
            link: Mutex::new(Link {
                conn: conn.clone(),
                publishing,
                generation: 1,
            }),
            reopening: tokio::sync::Mutex::new(()),
            generation: watch::Sender::new(1),
            broken: broken.clone(),
            declared: Mutex::new(Vec::new()),
            confirms: Confirms::new(),
            tracker,
            fbp_declared: AtomicBool::new(false),
        });
        watch_connection(&conn, 1, Arc::downgrade(&session), broken.clone());
        tokio::spawn(track(confirms, Arc::downgrade(&session)));
        tokio::spawn(supervise(Arc::downgrade(&session), broken));
        Ok(session)
    }

    /// The current connection.
    pub fn link(&self) -> Link {
        lock(&self.link).clone()
    }

    /// Generations of the connection: bumped once a new connection is ready.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Asks the supervisor to look at the connection.
    pub fn suspect(&self) {
        self.broken.notify_one();
    }

    /// The error for an operation on `name` that failed with `e`; a lost connection is
    /// reported to the supervisor.
    pub fn failed(&self, name: &str, e: impl std::fmt::Display) -> TransportError {
        if !self.link().connected() {
            self.suspect();
        }
        broker(name, e)
    }

    /// `op` on the connection, failed if it takes longer than [`STALL_TIMEOUT`] (the
    /// supervisor is told: the connection may be dead without saying so).
    async fn bounded<T>(
        &self,
        name: &str,
        op: impl std::future::Future<Output = Result<T, lapin::Error>>,
        limit: Duration,
    ) -> Result<T, TransportError> {
        match tokio::time::timeout(limit, op).await {
            Ok(done) => done.map_err(|e| self.failed(name, e)),
            Err(_) => {
                self.suspect();
                Err(broker(
                    name,
                    format!("the broker did not answer within {limit:?}"),
                ))
            }
        }
    }

    /// A new channel on the current connection.
    pub async fn channel(&self, name: &str) -> Result<Channel, TransportError> {
        let link = self.link();
        self.bounded(name, link.conn.create_channel(), STALL_TIMEOUT)
            .await
    }

    /// The publishing channel, reopened on the current connection if the broker closed
    /// it (a publish to a missing exchange closes its channel).
    async fn publishing(&self, name: &str) -> Result<Channel, TransportError> {
        let link = self.link();
        if link.publishing.status().connected() {
            return Ok(link.publishing);
        }
        let _one = self.reopening.lock().await;
        let link = self.link();
        if link.publishing.status().connected() {
            return Ok(link.publishing);
        }
        if !link.connected() {
            self.suspect();
            return Err(broker(
                name,
                "the connection to the broker is lost; reconnecting",
            ));
        }
        let channel = self
            .bounded(name, open_publishing(&link.conn), STALL_TIMEOUT)
            .await?;
        let mut current = lock(&self.link);
        if current.generation == link.generation {
            current.publishing = channel.clone();
        }
        Ok(channel)
    }

    /// Publishes without waiting for the confirm: [`Session::confirms`] tracks it.
    pub async fn publish_deferred(
        &self,
        exchange: &str,
        msg: &Message,
    ) -> Result<(), TransportError> {
        let seq = self.confirms.begin();
        let published = match self.publishing(exchange).await {
            Ok(channel) => {
                let publish = channel.basic_publish(
                    exchange.into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &msg.data,
                    properties(msg),
                );
                self.bounded(exchange, publish, STALL_TIMEOUT).await
            }
            Err(e) => Err(e),
        };
        match published {
            Ok(confirm) => {
                if self.tracker.send((seq, confirm, Instant::now())).is_err() {
                    self.confirms.end(seq, false);
                }
                Ok(())
            }
            Err(e) => {
                self.confirms.end(seq, false);
                Err(e)
            }
        }
    }

    /// Publishes `msg` with its own properties and waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        msg: &Message,
    ) -> Result<(), TransportError> {
        self.publish_with(exchange, routing_key, &msg.data, properties(msg))
            .await
    }

    /// Publishes `data` with `props` and waits for the broker's confirm.
    pub async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        data: &[u8],
        props: BasicProperties,
    ) -> Result<(), TransportError> {
        let name = if exchange.is_empty() {
            routing_key
        } else {
            exchange
        };
        let channel = self.publishing(name).await?;
        let publish = channel.basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            data,
            props,
        );
        let pending = self.bounded(name, publish, STALL_TIMEOUT).await?;
        let confirm = self.bounded(name, pending, CONFIRM_TIMEOUT).await?;
        if confirm.is_nack() {
            return Err(broker(name, "the broker refused the message (nack)"));
        }
        Ok(())
    }

    /// Opens a new connection, replays the declarations and moves the generation on.
    async fn reopen(self: &Arc<Self>) -> Result<u64, TransportError> {
        let connect_error = |e: lapin::Error| TransportError::Connect {
            url: self.url.clone(),
            detail: e.to_string(),
        };
        let conn = Arc::new(self.connector.open().await.map_err(connect_error)?);
        let publishing = open_publishing(&conn).await.map_err(connect_error)?;
        let generation = {
            let mut link = lock(&self.link);
            let generation = link.generation + 1;
            *link = Link {
                conn: conn.clone(),
                publishing,
                generation,
            };
            generation
        };
        watch_connection(&conn, generation, Arc::downgrade(self), self.broken.clone());
        self.fbp_declared.store(false, Ordering::Release);
        let declared = lock(&self.declared).clone();
        for d in &declared {
            if let Err(e) = self.perform(d).await {
                if !conn.status().connected() {
                    return Err(e);
                }
                tracing::warn!("declaring {d} again after reconnecting: {e}; skipped");
            }
        }
        self.generation.send_replace(generation);
        Ok(generation)
    }
}

/// Reconnects whenever the connection is found gone, until the session is dropped.
async fn supervise(session: Weak<Session>, broken: Arc<Notify>) {
    loop {
        let _ = tokio::time::timeout(LOOK_EVERY, broken.notified()).await;
        let Some(s) = session.upgrade() else { return };
        let link = s.link();
        if link.connected() {
            continue;
        }
        tracing::warn!(
            "lost the connection to the AMQP broker {}; reconnecting",
            s.url
        );
        drop(s);
        reconnect(&session).await;
    }
}

/// Tries to reconnect with backoff until it succeeds or the session is dropped.
async fn reconnect(session: &Weak<Session>) {
    let mut delay = FIRST_RETRY;
    let mut attempt = 0u32;
    loop {
        let Some(s) = session.upgrade() else { return };
        attempt += 1;
        match s.reopen().await {
            Ok(generation) => {
                tracing::info!(
                    "reconnected to the AMQP broker {} (connection {generation}, attempt {attempt})",
                    s.url
                );
                return;
            }
            Err(e) if attempt == 1 || attempt.is_multiple_of(10) => {
                tracing::warn!("reconnecting, attempt {attempt}: {e}; retrying");
            }
            Err(_) => {}
        }
        drop(s);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Settles deferred publishes as their confirms arrive.
async fn track(mut rx: mpsc::UnboundedReceiver<Tracked>, session: Weak<Session>) {
    while let Some((seq, confirm, published)) = rx.recv().await {
        // A publish of a lost connection may never see its confirm; waiting for it would
        // hold every later ack (and, through the prefetch window, the consumer).
        // Unconfirmed in time counts as failed: the input is put back and redelivered.
        let ok = matches!(
            tokio::time::timeout_at(published + CONFIRM_TIMEOUT, confirm).await,
            Ok(Ok(c)) if c.is_ack()
        );
        let Some(s) = session.upgrade() else { return };
        s.confirms.end(seq, ok);
    }
}
