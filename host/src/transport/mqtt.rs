//! The MQTT 3.1.1 transport (rumqttc), speaking MsgFlo's MQTT conventions.
//!
//! - A queue `role.IN` and a topic `role.OUT` are both MQTT topics of that exact name.
//!   Declaring a queue subscribes to it at QoS 1 (and waits for the SUBACK), so messages
//!   published after the declaration are kept; several subscriptions to one queue in
//!   this process share its messages.
//! - MQTT has no broker-side bindings. As MsgFlo's coordinator does, [`MqttTransport::bind`]
//!   makes *this process* forward every message of the source topic to the target topic,
//!   so the process that binds must keep running for the edge to work.
//! - At least once: everything is published at QoS 1 and incoming messages are acked by
//!   hand (manual acks) only when settled. A participant's outputs resolve once queued on
//!   the connection, and its ack is sent only when the PUBACKs of every publish issued
//!   before it have arrived (see `confirms.rs`); `send_to_queue` and dead letters wait
//!   for their own PUBACK. The
//!   session is persistent (`clean_session = false`) under a stable client id, so after a
//!   restart or reconnection the broker redelivers what was not acked.
//! - A nacked message is published to topic `dead-<queue>` as the JSON object
//!   `{"queue", "reason", "payload"}` (MQTT 3.1.1 has no headers), then acked.
//! - A delivery dropped unsettled is *not* acked: the broker redelivers it when the
//!   session reconnects.
//! - With `shared=GROUP` in the URL, queues are subscribed as `$share/GROUP/<queue>`
//!   (Mosquitto offers shared subscriptions to MQTT 3.1.1 clients too), so several
//!   processes serving one role split its messages, as consumers of an AMQP queue do.
//!   Each process then needs its own `client_id`.
//! - Discovery goes to topic `fbp` at QoS 0, not retained, as every MsgFlo library does.
//! - Payloads are carried as they are; MQTT 3.1.1 carries no content type or metadata,
//!   so incoming messages are JSON (MsgFlo's only payload type) and metadata is dropped.
//!
//! rumqttc's client resolves a publish once it is queued, not acked. PUBACKs are matched
//! to publishes through the event loop: requests are sent in the order they are made
//! (serialised by `order`), so the n-th `Outgoing::Publish` event is the n-th publish made,
//! which gives its packet id, and the PUBACK with that id resolves it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::confirms::{AckGate, Confirms};
use super::url::BrokerUrl;
use super::{
    BacklogReader, Binding, Delivery, DeliveryStream, PublishSink, Publisher, Settle, Subscription,
    Transport, TransportError,
};
use crate::message::Message;

/// Requests the client may queue before `publish` waits.
const REQUEST_CAPACITY: usize = 4096;
/// QoS 1 publishes in flight at once, per connection.
const INFLIGHT: u16 = 200;

/// A transport over one MQTT connection.
pub struct MqttTransport {
    conn: Arc<Conn>,
    tasks: Arc<Tasks>,
    forwards: Mutex<HashMap<String, Arc<RwLock<Vec<String>>>>>,
}

impl std::fmt::Debug for MqttTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttTransport")
            .field("url", &self.conn.url)
            .finish_non_exhaustive()
    }
}

/// The connection: the client, the ordering lock and the state shared with the event loop.
struct Conn {
    url: String,
    client: AsyncClient,
    /// Held while a publish or subscribe is queued, so requests and events stay in order.
    order: tokio::sync::Mutex<()>,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    /// Shared-subscription group for queues (`shared=` in the URL).
    group: Option<String>,
}

#[derive(Default)]
struct Shared {
    confirms: Confirms,
    queues: Mutex<HashMap<String, Arc<LocalQueue>>>,
    subscribed: Mutex<HashSet<String>>,
    acks: Mutex<Acks>,
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Who learns that a publish was acknowledged.
enum Pending {
    /// A caller waiting for it.
    Waiter(Waiter),
    /// A deferred publish, settled in [`Confirms`].
    Seq(u64),
}

/// Outstanding requests waiting for the broker.
#[derive(Default)]
struct Acks {
    /// Publishes queued, not yet written.
    publishes: VecDeque<Pending>,
    /// QoS 1 publishes written, by packet id.
    published: HashMap<u16, Pending>,
    subscribes: VecDeque<Option<Waiter>>,
    subscribed: HashMap<u16, Waiter>,
}

struct LocalQueue {
    tx: flume::Sender<Publish>,
    rx: flume::Receiver<Publish>,
}

/// Background tasks, stopped when the transport is dropped.
#[derive(Default)]
struct Tasks {
    handles: Mutex<Vec<JoinHandle<()>>>,
    shared: Mutex<Option<Arc<Shared>>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for h in lock(&self.handles).drain(..) {
            h.abort();
        }
        // Waiters see the connection closed instead of waiting forever.
        if let Some(shared) = lock(&self.shared).take() {
            *lock(&shared.acks) = Acks::default();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn queue(&self, topic: &str) -> Arc<LocalQueue> {
        lock(&self.queues)
            .entry(topic.to_string())
            .or_insert_with(|| {
                let (tx, rx) = flume::unbounded();
                Arc::new(LocalQueue { tx, rx })
            })
            .clone()
    }
}

impl MqttTransport {
    /// Connects to `url`; waits for the broker's CONNACK. `client_id` is used unless the
    /// URL names one.
    pub async fn connect(url: &BrokerUrl, client_id: &str) -> Result<Self, TransportError> {
        let id = url.client_id.as_deref().unwrap_or(client_id);
        let mut options = MqttOptions::new(id, url.host.clone(), url.port);
        options
            .set_clean_session(url.clean_session)
            .set_manual_acks(true)
            .set_inflight(INFLIGHT)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(256 * 1024 * 1024, 256 * 1024 * 1024);
        if let Some(user) = &url.user {
            options.set_credentials(user.clone(), url.password.clone().unwrap_or_default());
        }
        if url.tls {
            let config = super::tls::client_config(url.ca_file.as_deref(), &url.redacted())?;
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(config),
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        // A participant waits for each PUBACK before acking its input: Nagle would add
        // a delayed-ack round to every message.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let shared = Arc::new(Shared::default());
        let conn = Arc::new(Conn {
            url: url.redacted(),
            client,
            order: tokio::sync::Mutex::new(()),
            shared: shared.clone(),
            runtime: tokio::runtime::Handle::current(),
            group: url.shared.clone(),
        });
        let (connected_tx, connected_rx) = oneshot::channel();
        let task = tokio::spawn(drive(
            eventloop,
            shared.clone(),
            Arc::downgrade(&conn),
            connected_tx,
        ));
        let tasks = Arc::new(Tasks::default());
        lock(&tasks.handles).push(task);
        *lock(&tasks.shared) = Some(shared);
        match connected_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(detail)) => {
                return Err(TransportError::Connect {
                    url: conn.url.clone(),
                    detail,
                });
            }
            Err(_) => {
                return Err(TransportError::Connect {
                    url: conn.url.clone(),
                    detail: "the connection task stopped".into(),
                });
            }
        }
        tracing::debug!(url = %conn.url, client_id = id, "connected to MQTT broker");
        Ok(MqttTransport {
            conn,
            tasks,
            forwards: Mutex::new(HashMap::new()),
        })
    }

    /// Publishes `payload` to `topic` retained, at QoS 1, and waits for the PUBACK (an
    /// empty payload clears the topic's retained message). For `wasmflo deploy`.
    pub async fn publish_retained(
        &self,
        topic: &str,
        payload: Bytes,
    ) -> Result<(), TransportError> {
        self.conn
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
    }

    /// Messages of `queue` the broker delivered to this connection that no consumer took
    /// yet (MQTT has no queue depth; see `backlog.rs` for what this misses).
    pub fn held(&self, queue: &str) -> u64 {
        lock(&self.conn.shared.queues)
            .get(queue)
            .map_or(0, |q| q.rx.len() as u64)
    }

    async fn stream(&self, queue: &str) -> Result<Subscription, TransportError> {
        self.conn.subscribe(queue).await?;
        let local = self.conn.shared.queue(queue);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(settle_loop(rx, self.conn.clone(), queue.to_string()));
        lock(&self.tasks.handles).push(task);
        let settle = Arc::new(MqttSettle {
            tx,
            conn: self.conn.clone(),
        });
        Ok(Subscription::new(
            queue,
            Box::new(MqttStream {
                rx: local.rx.clone(),
                settle,
            }),
        ))
    }
}

impl Conn {
    /// Publishes and waits for the PUBACK (QoS 1) or for the packet to be written (QoS 0).
    async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
    ) -> Result<(), TransportError> {
        let (tx, rx) = oneshot::channel();
        {
            let _order = self.order.lock().await;
            lock(&self.shared.acks)
                .publishes
                .push_back(Pending::Waiter(tx));
            if let Err(e) = self.client.publish_bytes(topic, qos, retain, payload).await {
                // Not queued: take our waiter back out (it is the last one pushed).
                lock(&self.shared.acks).publishes.pop_back();
                return Err(self.error(topic, e.to_string()));
            }
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(detail)) => Err(self.error(topic, detail)),
            Err(_) => Err(TransportError::Closed),
        }
    }

    /// Publishes at QoS 1 without waiting for the PUBACK: [`Conn::confirms`] tracks it.
    async fn publish_deferred(&self, topic: &str, payload: Bytes) -> Result<(), TransportError> {
        let confirms = self.confirms();
        let _order = self.order.lock().await;
        let seq = confirms.begin();
        lock(&self.shared.acks)
            .publishes
            .push_back(Pending::Seq(seq));
        if let Err(e) = self
            .client
            .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            lock(&self.shared.acks).publishes.pop_back();
            confirms.end(seq, false);
            return Err(self.error(topic, e.to_string()));
        }
        Ok(())
    }

    fn confirms(&self) -> &Confirms {
        &self.shared.confirms
    }

    /// Subscribes at QoS 1 (once per topic) and waits for the SUBACK.
    async fn subscribe(&self, topic: &str) -> Result<(), TransportError> {
        self.shared.queue(topic);
        if !lock(&self.shared.subscribed).insert(topic.to_string()) {
            return Ok(());
        }
        let result = self.send_subscribe(topic).await;
        if result.is_err() {
            lock(&self.shared.subscribed).remove(topic);
        }
        result
    }

    async fn send_subscribe(&self, topic: &str) -> Result<(), TransportError> {
        let (tx, rx) = oneshot::channel();
        {
            let _order = self.order.lock().await;
            lock(&self.shared.acks).subscribes.push_back(Some(tx));
            // Messages of a shared subscription still arrive under their own topic.
            let filter = match &self.group {
                Some(group) if topic != DISCOVERY_TOPIC && topic != STATE_FILTER => {
                    format!("$share/{group}/{topic}")
                }
                _ => topic.to_string(),
            };
            if let Err(e) = self.client.subscribe(filter, QoS::AtLeastOnce).await {
                lock(&self.shared.acks).subscribes.pop_back();
                return Err(self.error(topic, e.to_string()));
            }
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(detail)) => Err(self.error(topic, detail)),
            Err(_) => Err(TransportError::Closed),
        }
    }

    fn ack(&self, pkid: u16) {
        if pkid == 0 {
            return; // QoS 0: nothing to acknowledge
        }
        let mut publish = Publish::new("", QoS::AtLeastOnce, Vec::new());
        publish.pkid = pkid;
        if self.client.try_ack(&publish).is_err() {
            let client = self.client.clone();
            self.runtime.spawn(async move {
                if let Err(e) = client.ack(&publish).await {
                    tracing::warn!("MQTT ack of packet {pkid} failed: {e}");
                }
            });
        }
    }

    fn error(&self, name: &str, detail: String) -> TransportError {
        TransportError::Broker {
            name: name.to_string(),
            detail,
        }
    }
}

/// Drives the connection: routes incoming messages, resolves acks, reconnects with backoff.
async fn drive(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    conn: Weak<Conn>,
    connected: oneshot::Sender<Result<(), String>>,
) {
    let mut connected = Some(connected);
    let mut backoff = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Ok(()));
                } else {
                    tracing::info!("reconnected to the MQTT broker");
                    if !ack.session_present {
                        resubscribe(&shared, &conn);
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let key = if p.topic.starts_with(STATE_PREFIX) {
                    STATE_FILTER
                } else {
                    &p.topic
                };
                let q = shared.queue(key);
                let _ = q.tx.send(p);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let done = lock(&shared.acks).published.remove(&ack.pkid);
                if let Some(p) = done {
                    resolve(&shared, p);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if let Some(w) = lock(&shared.acks).subscribed.remove(&ack.pkid) {
                    let _ = w.send(if refused {
                        Err("the broker refused the subscription".into())
                    } else {
                        Ok(())
                    });
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut acks = lock(&shared.acks);
                // A packet id still awaiting its PUBACK is a resend after reconnection.
                if pkid == 0 || !acks.published.contains_key(&pkid) {
                    match acks.publishes.pop_front() {
                        Some(p) if pkid == 0 => {
                            drop(acks);
                            resolve(&shared, p);
                        }
                        Some(p) => {
                            acks.published.insert(pkid, p);
                        }
                        None => {}
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                let mut acks = lock(&shared.acks);
                if let Some(Some(w)) = acks.subscribes.pop_front() {
                    acks.subscribed.insert(pkid, w);
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
                // Subscriptions are not resent by the client: fail their waiters; the
                // topics are subscribed again on reconnection if the session was lost.
                for (_, w) in lock(&shared.acks).subscribed.drain() {
                    let _ = w.send(Err(format!("connection lost: {e}")));
                }
                tracing::warn!("MQTT connection lost ({e}); reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A publish was acknowledged (or, at QoS 0, written).
fn resolve(shared: &Shared, pending: Pending) {
    match pending {
        Pending::Waiter(w) => {
            let _ = w.send(Ok(()));
        }
        Pending::Seq(seq) => shared.confirms.end(seq, true),
    }
}

/// Subscribes again to every topic after the broker lost the session.
fn resubscribe(shared: &Shared, conn: &Weak<Conn>) {
    let Some(conn) = conn.upgrade() else {
        return;
    };
    let topics: Vec<String> = lock(&shared.subscribed).iter().cloned().collect();
    conn.runtime.clone().spawn(async move {
        for topic in topics {
            if let Err(e) = conn.send_subscribe(&topic).await {
                tracing::warn!("resubscribing: {e}");
            }
        }
    });
}

#[async_trait::async_trait]
impl Transport for MqttTransport {
    fn kind(&self) -> &'static str {
        "mqtt"
    }

    async fn declare_queue(&self, queue: &str) -> Result<(), TransportError> {
        self.conn.subscribe(queue).await
    }

    async fn declare_topic(&self, _topic: &str) -> Result<(), TransportError> {
        Ok(())
    }

    async fn bind(&self, binding: &Binding) -> Result<(), TransportError> {
        if binding.src == binding.tgt {
            return Ok(());
        }
        let (targets, first) = {
            let mut forwards = lock(&self.forwards);
            match forwards.get(&binding.src) {
                Some(t) => (t.clone(), false),
                None => {
                    let t = Arc::new(RwLock::new(Vec::new()));
                    forwards.insert(binding.src.clone(), t.clone());
                    (t, true)
                }
            }
        };
        {
            let mut t = targets.write().unwrap_or_else(|p| p.into_inner());
            if !t.contains(&binding.tgt) {
                t.push(binding.tgt.clone());
            }
        }
        if first {
            let sub = self.stream(&binding.src).await?;
            let task = tokio::spawn(forward(sub, targets, self.conn.clone()));
            lock(&self.tasks.handles).push(task);
        }
        Ok(())
    }

    async fn unbind(&self, binding: &Binding) -> Result<(), TransportError> {
        if let Some(t) = lock(&self.forwards).get(&binding.src) {
            t.write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|q| *q != binding.tgt);
        }
        Ok(())
    }

    async fn subscribe(&self, queue: &str) -> Result<Subscription, TransportError> {
        self.stream(queue).await
    }

    fn backlog_reader(&self) -> Option<&dyn BacklogReader> {
        Some(self)
    }

    async fn publisher(&self, topic: &str) -> Result<Publisher, TransportError> {
        Ok(Publisher::new(
            topic,
            Arc::new(MqttSink {
                topic: topic.to_string(),
                conn: self.conn.clone(),
            }),
        ))
    }

    async fn send_to_queue(&self, queue: &str, msg: Message) -> Result<(), TransportError> {
        self.conn
            .publish(queue, QoS::AtLeastOnce, false, msg.data)
            .await
    }

    async fn put_state(
        &self,
        key: &str,
        state: Message,
        _ttl: Duration,
    ) -> Result<(), TransportError> {
        // Retained: the broker keeps the last one per topic; empty clears it.
        let topic = format!("{STATE_PREFIX}{key}");
        self.conn
            .publish(&topic, QoS::AtLeastOnce, true, state.data)
            .await
    }

    async fn read_states(&self) -> Result<Vec<(String, Message)>, TransportError> {
        self.conn.subscribe(STATE_FILTER).await?;
        let q = self.conn.shared.queue(STATE_FILTER);
        // Retained messages come right after the SUBACK, in order on this connection:
        // a marker published now arrives after all of them.
        let marker = format!("{STATE_PREFIX}~end-{}", crate::discovery::random_suffix());
        self.conn
            .publish(&marker, QoS::AtLeastOnce, false, Bytes::new())
            .await?;
        let mut out = Vec::new();
        loop {
            let p = tokio::time::timeout(Duration::from_secs(10), q.rx.recv_async())
                .await
                .map_err(|_| self.conn.error(STATE_FILTER, "no end of the store".into()))?
                .map_err(|_| TransportError::Closed)?;
            self.conn.ack(p.pkid);
            if p.topic == marker {
                return Ok(out);
            }
            let key = p.topic.strip_prefix(STATE_PREFIX).unwrap_or(&p.topic);
            if !key.starts_with("~end-") {
                out.push((key.to_string(), Message::json_text(p.payload)));
            }
        }
    }

    async fn announce(&self, discovery: Message) -> Result<(), TransportError> {
        self.conn
            .publish(DISCOVERY_TOPIC, QoS::AtMostOnce, false, discovery.data)
            .await
    }
}

impl BacklogReader for MqttTransport {
    fn waiting<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(std::future::ready(Ok(self.held(queue))))
    }

    fn method(&self) -> &'static str {
        "messages held by this connection"
    }
}

/// MsgFlo's discovery topic.
const DISCOVERY_TOPIC: &str = "fbp";
/// Where coordinators keep their binding lists, one retained message per key.
const STATE_PREFIX: &str = "wasmflo/bindings/";
/// The filter reading them all.
const STATE_FILTER: &str = "wasmflo/bindings/#";

/// Forwards every message of one topic to the bound topics; each is acked once its
/// copies are acked by the broker.
async fn forward(mut sub: Subscription, targets: Arc<RwLock<Vec<String>>>, conn: Arc<Conn>) {
    while let Some(delivery) = sub.next().await {
        let tgts = targets.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut ok = true;
        for tgt in &tgts {
            let data = delivery.message.data.clone();
            if let Err(e) = conn.publish_deferred(tgt, data).await {
                tracing::warn!("forwarding {} -> {tgt}: {e}", sub.queue);
                ok = false;
                break;
            }
        }
        if ok {
            delivery.ack();
        }
        // Otherwise the delivery is dropped unacked and redelivered after reconnection.
    }
}

struct MqttStream {
    rx: flume::Receiver<Publish>,
    settle: Arc<MqttSettle>,
}

#[async_trait::async_trait]
impl DeliveryStream for MqttStream {
    async fn next(&mut self) -> Option<Delivery> {
        let p = match self.rx.try_recv() {
            Ok(p) => p,
            Err(_) => self.rx.recv_async().await.ok()?,
        };
        Some(Delivery::new(
            Message::json_text(p.payload),
            self.settle.clone(),
            u64::from(p.pkid),
        ))
    }
}

enum SettleOp {
    /// Ack packet `.0` once every publish up to `.1` is acknowledged.
    Ack(u16, u64),
    Nack(u16, Message, String),
}

/// Settles one queue's deliveries in order.
async fn settle_loop(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<SettleOp>,
    conn: Arc<Conn>,
    queue: String,
) {
    let dead = format!("dead-{queue}");
    let mut gate = AckGate::default();
    while let Some(op) = rx.recv().await {
        match op {
            SettleOp::Ack(pkid, upto) => {
                if gate.pass(conn.confirms(), upto).await {
                    conn.ack(pkid);
                }
                // Otherwise unacked: the broker redelivers it after reconnection.
            }
            SettleOp::Nack(pkid, msg, reason) => {
                let payload = match serde_json::from_slice::<serde_json::Value>(&msg.data) {
                    Ok(v) => v,
                    Err(_) => {
                        serde_json::Value::String(String::from_utf8_lossy(&msg.data).into_owned())
                    }
                };
                let envelope = serde_json::json!({
                    "queue": queue,
                    "reason": reason,
                    "payload": payload,
                });
                let body = Bytes::from(envelope.to_string());
                match conn.publish(&dead, QoS::AtLeastOnce, false, body).await {
                    Ok(()) => conn.ack(pkid),
                    // Unacked: the broker redelivers it after reconnection.
                    Err(e) => tracing::error!("dead-lettering to {dead}: {e}"),
                }
            }
        }
    }
}

struct MqttSettle {
    tx: tokio::sync::mpsc::UnboundedSender<SettleOp>,
    conn: Arc<Conn>,
}

impl Settle for MqttSettle {
    fn ack(&self, tag: u64) {
        let upto = self.conn.confirms().issued();
        let _ = self.tx.send(SettleOp::Ack(tag as u16, upto));
    }

    fn nack(&self, tag: u64, msg: Message, reason: &str) {
        let _ = self
            .tx
            .send(SettleOp::Nack(tag as u16, msg, reason.to_string()));
    }

    fn release(&self, _tag: u64, _msg: Message) {
        // Not acked: the broker redelivers it when the session reconnects.
    }
}

struct MqttSink {
    topic: String,
    conn: Arc<Conn>,
}

impl PublishSink for MqttSink {
    fn publish(&self, msg: Message) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(self.conn.publish_deferred(&self.topic, msg.data))
    }
}
