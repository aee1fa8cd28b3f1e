//! Runs a [`Signature`] over a [`Transport`] whose task roles answer on `ROLE.OUT`.
//!
//! Only MsgFlo's conventions are on the wire, so a worker may be any participant on any
//! host (a `wasmflo participant`, an edge node, another MsgFlo client): task `add` is
//! role `add` (or `PREFIX` + `add`, [`DispatchOptions::role_prefix`]), called by a
//! message to its inport queue `add.IN` and answering on its outport topic `add.OUT`.
//!
//! - Each call carries a correlation id (`wf-<nonce>-<n>.<k>`) twice: in message
//!   metadata ([`CORRELATION_ID`], with [`REPLY_TO`]), which hosts copy onto the
//!   result, and in the body (`{"args", "kwargs", "id"}`, as Celery's task message has
//!   it), which the `task/*` components echo in Celery's result form `{"task_id",
//!   "status": "SUCCESS", "result"}`: MQTT 3.1.1 carries no metadata.
//! - Each workflow run has a private reply queue (`wf-<nonce>-<n>.REPLY`; on AMQP
//!   exclusive and auto-deleted) to which it binds, as a coordinator binds a graph edge,
//!   the `out` topic of every role it calls and that role's dead-letter topic
//!   (`dead-ROLE.IN`: a fanout exchange on AMQP, a topic on MQTT; on MQTT this process
//!   forwards, having no broker-side bindings). The reply queue so gets a copy of every
//!   result and failure of those roles, and the run's router resolves only its own ids:
//!   concurrent workflows, in this process or others, never mix results. In-process the
//!   dead-letter queues are watched once per dispatcher instead.
//! - On AMQP the dispatcher declares each role's inport queue (as its participants do),
//!   so calls sent before a worker starts wait in the queue.
//!
//! A call with no answer within [`DispatchOptions::timeout`] (a lost message, a dead
//! node) is sent again under the same id, after an exponential backoff, up to
//! [`DispatchOptions::retries`] times; so is one nacked as `unavailable` or dropped by a
//! participant that stopped while holding it (its node died). A late answer
//! to an earlier attempt counts as the answer. Groups, chord headers, map, starmap and
//! chunks are dispatched in parallel, at most [`DispatchOptions::max_in_flight`] calls at
//! once; results are collected in call order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot, watch};

use super::WorkflowError;
use super::reference::{plain, spread};
use super::signature::{Signature, TaskCall};
use crate::message::Message;
use crate::transport::{
    Binding, BindingKind, DEAD_LETTER_REASON, Subscription, Transport, queue_name,
};

/// Metadata key carrying a task call's correlation id, copied onto its result.
pub const CORRELATION_ID: &str = "correlation-id";
/// Metadata key naming the reply queue of the workflow that sent a task call.
pub const REPLY_TO: &str = "reply-to";

/// Timeouts and retries of task calls.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// How long one attempt waits for an answer.
    pub timeout: Duration,
    /// Attempts after the first one.
    pub retries: u32,
    /// Wait before the first retry; doubled after each retry.
    pub backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Calls waiting for their answer at once (0: no limit). Keeps a large group within
    /// what a broker queues per client (Mosquitto drops QoS 1 messages beyond 1,000).
    pub max_in_flight: usize,
    /// Prepended to a task's name to give its role (`"t1-"`: task `add` is role
    /// `t1-add`, queue `t1-add.IN`).
    pub role_prefix: String,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_in_flight: 256,
            role_prefix: String::new(),
        }
    }
}

/// An answer: the result, or the failure reason from the dead letter.
pub type Outcome = Result<Value, String>;
type Pending = Mutex<HashMap<String, oneshot::Sender<Outcome>>>;

/// Runs workflows over a transport. Cheap to clone; clones share the watchers of the
/// roles' dead-letter queues, so use one dispatcher (and its clones) per transport.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Arc<dyn Transport>,
    options: DispatchOptions,
    pending: Arc<Pending>,
    watched: tokio::sync::Mutex<HashSet<String>>,
    stop: watch::Sender<bool>,
    slots: Arc<Semaphore>,
    nonce: String,
    workflows: AtomicU64,
    retried: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl Dispatcher {
    /// A dispatcher sending task calls over `transport`.
    pub fn new(transport: Arc<dyn Transport>, options: DispatchOptions) -> Dispatcher {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let slots = match options.max_in_flight {
            0 => Semaphore::MAX_PERMITS,
            n => n.min(Semaphore::MAX_PERMITS),
        };
        Dispatcher {
            inner: Arc::new(Inner {
                transport,
                slots: Arc::new(Semaphore::new(slots)),
                options,
                pending: Arc::default(),
                watched: tokio::sync::Mutex::default(),
                stop: watch::channel(false).0,
                nonce: format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff),
                workflows: AtomicU64::new(0),
                retried: AtomicU64::new(0),
            }),
        }
    }

    /// Task calls sent again after a timeout or an `unavailable` nack, so far.
    pub fn retries(&self) -> u64 {
        self.inner.retried.load(Ordering::Relaxed)
    }

    /// Runs `sig` to its result. The task roles must be served on the transport.
    pub async fn run(&self, sig: &Signature) -> Result<Value, WorkflowError> {
        sig.validate()?;
        let inner = &self.inner;
        let n = inner.workflows.fetch_add(1, Ordering::Relaxed);
        let workflow = format!("wf-{}-{n}", inner.nonce);
        let reply = format!("{workflow}.REPLY");
        inner.transport.declare_private_queue(&reply).await?;
        let kind = inner.transport.kind();
        let mut bindings = Vec::new();
        for name in sig.task_names() {
            let role = format!("{}{name}", inner.options.role_prefix);
            let input = queue_name(&role, "in");
            match kind {
                "memory" => self.watch_failures(&role).await?,
                kind => {
                    if kind == "amqp" {
                        inner.transport.declare_queue(&input).await?;
                    }
                    bindings.push(Binding {
                        src: format!("dead-{input}"),
                        tgt: reply.clone(),
                        kind: BindingKind::PubSub,
                    });
                }
            }
            let output = queue_name(&role, "out");
            inner.transport.declare_topic(&output).await?;
            bindings.push(Binding {
                src: output,
                tgt: reply.clone(),
                kind: BindingKind::PubSub,
            });
        }
        for binding in &bindings {
            inner.transport.bind(binding).await?;
        }
        let replies = inner.transport.subscribe(&reply).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = tokio::spawn(route_replies(
            replies,
            inner.pending.clone(),
            format!("{workflow}."),
            stopped,
        ));
        let run = Run {
            inner,
            workflow,
            reply,
            calls: AtomicU64::new(0),
        };
        let result = run.eval(sig.clone()).await;
        for b in &bindings {
            inner.transport.unbind(b).await?;
        }
        let _ = stop.send(());
        let _ = router.await;
        result
    }

    /// Watches `dead-ROLE.IN` (once per role) and routes failures by correlation id.
    async fn watch_failures(&self, role: &str) -> Result<(), WorkflowError> {
        let mut watched = self.inner.watched.lock().await;
        if watched.contains(role) {
            return Ok(());
        }
        let dead = format!("dead-{}", queue_name(role, "in"));
        self.inner.transport.declare_queue(&dead).await?;
        let sub = self.inner.transport.subscribe(&dead).await?;
        // In-process dead letters keep the call's metadata.
        let pending = self.inner.pending.clone();
        let mut stop = self.inner.stop.subscribe();
        tokio::spawn(async move {
            let mut sub = sub;
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    d = sub.next() => match d {
                        Some(d) => {
                            if let Some(id) = d.message.meta(CORRELATION_ID) {
                                let reason = d.message.meta(DEAD_LETTER_REASON).unwrap_or("nacked");
                                resolve(&pending, id, Err(reason.to_string()));
                            }
                            d.ack();
                        }
                        None => break,
                    }
                }
            }
            drain(&mut sub);
        });
        watched.insert(role.to_string());
        Ok(())
    }
}

/// Acks whatever is already queued on `sub`.
fn drain(sub: &mut Subscription) {
    while let Some(Some(d)) = sub.next().now_or_never() {
        d.ack();
    }
}

fn resolve(pending: &Pending, id: &str, outcome: Outcome) {
    let waiter = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    if let Some(tx) = waiter {
        let _ = tx.send(outcome);
    }
}

/// A workflow's reply router: resolves results and failures whose id has the
/// workflow's `prefix`, acks (and ignores) the other workflows' copies.
async fn route_replies(
    mut replies: Subscription,
    pending: Arc<Pending>,
    prefix: String,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            d = replies.next() => match d {
                Some(d) => {
                    if let Some((id, outcome)) = answer(&d.message).filter(|(id, _)| id.starts_with(&prefix)) {
                        resolve(&pending, &id, outcome);
                    }
                    d.ack();
                }
                None => break,
            }
        }
    }
    drain(&mut replies);
}

/// The call id and outcome a reply carries: a result (plain, with the id in metadata,
/// or in Celery's result form `{"task_id", "status": "SUCCESS", "result"}`), or a
/// dead letter (AMQP: the call with a reason header; MQTT: `{"queue", "reason",
/// "payload"}` around the call).
pub fn answer(msg: &Message) -> Option<(String, Outcome)> {
    let meta_id = msg.meta(CORRELATION_ID);
    let body = msg.to_json();
    if let Some(reason) = msg.meta(DEAD_LETTER_REASON) {
        let id = meta_id
            .map(str::to_string)
            .or_else(|| body_id(body.as_ref()?))?;
        return Some((id, Err(reason.to_string())));
    }
    let Some(body) = body else {
        let id = meta_id?.to_string();
        return Some((id, Err(format!("result is not JSON: {}", msg.preview(80)))));
    };
    if let (Some(reason), Some(call), Some(_)) = (
        body.get("reason").and_then(Value::as_str),
        body.get("payload"),
        body.get("queue"),
    ) && meta_id.is_none()
    {
        let call = match call {
            Value::String(text) => serde_json::from_str(text).ok()?,
            call => call.clone(),
        };
        return Some((body_id(&call)?, Err(reason.to_string())));
    }
    let task_id = body.get("task_id").and_then(Value::as_str);
    let id = meta_id.or(task_id)?.to_string();
    let status = body.get("status").and_then(Value::as_str);
    let result = match (task_id, status, body.get("result")) {
        (Some(t), Some("SUCCESS"), Some(result)) if t == id => Some(result.clone()),
        _ => None,
    };
    Some((id, Ok(result.unwrap_or(body))))
}

/// The correlation id in a call's body.
fn body_id(call: &Value) -> Option<String> {
    call.get("id").and_then(Value::as_str).map(str::to_string)
}

/// One workflow being evaluated.
struct Run<'a> {
    inner: &'a Inner,
    workflow: String,
    reply: String,
    calls: AtomicU64,
}

impl Run<'_> {
    fn eval(&self, sig: Signature) -> BoxFuture<'_, Result<Value, WorkflowError>> {
        Box::pin(async move {
            match sig {
                Signature::Task(call) => self.call(call).await,
                Signature::Chain(steps) => {
                    let mut result = None;
                    for step in steps {
                        let step = match result.take() {
                            Some(r) => step.prepend(r),
                            None => step,
                        };
                        result = Some(self.eval(step).await?);
                    }
                    Ok(result.unwrap_or(Value::Null))
                }
                Signature::Group(members) => {
                    in_order(join_all(members.into_iter().map(|m| self.eval(m))).await)
                }
                Signature::Chord { header, body } => {
                    let results = self.first_failure_in_time(header).await?;
                    self.eval(body.prepend(Value::Array(results))).await
                }
                Signature::Map { task, items } => in_order(
                    join_all(
                        items
                            .iter()
                            .map(|i| self.call(plain(&task, vec![i.clone()]))),
                    )
                    .await,
                ),
                Signature::Starmap { task, items } => in_order(
                    join_all(items.iter().map(|i| self.call(plain(&task, spread(i))))).await,
                ),
                Signature::Chunks { task, items, size } => in_order(
                    join_all(items.chunks(size.max(1)).map(|chunk| {
                        self.eval(Signature::Starmap {
                            task: task.clone(),
                            items: chunk.to_vec(),
                        })
                    }))
                    .await,
                ),
            }
        })
    }

    /// Runs a chord header: every member to its end; fails naming the member that
    /// failed first in time, as Celery's `ChordError` does.
    async fn first_failure_in_time(
        &self,
        header: Vec<Signature>,
    ) -> Result<Vec<Value>, WorkflowError> {
        let mut running: FuturesUnordered<_> = header
            .into_iter()
            .enumerate()
            .map(|(i, m)| self.eval(m).map(move |r| (i, r)))
            .collect();
        let mut slots: Vec<Option<Value>> = vec![None; running.len()];
        let mut first_failure = None;
        while let Some((i, r)) = running.next().await {
            match r {
                Ok(v) => slots[i] = Some(v),
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
        match first_failure {
            Some(e) => Err(WorkflowError::Chord(Box::new(e))),
            None => Ok(slots
                .into_iter()
                .map(|v| v.unwrap_or(Value::Null))
                .collect()),
        }
    }

    /// Sends one task call and waits for its answer, retrying lost, unavailable and dropped ones.
    async fn call(&self, call: TaskCall) -> Result<Value, WorkflowError> {
        let inner = self.inner;
        let opts = &inner.options;
        let k = self.calls.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}.{k}", self.workflow);
        let mut msg = Message::json(&json!({"args": call.args, "kwargs": call.kwargs, "id": id}));
        msg.set_meta(CORRELATION_ID, id.as_str());
        msg.set_meta(REPLY_TO, self.reply.as_str());
        let queue = queue_name(&format!("{}{}", opts.role_prefix, call.name), "in");
        let _slot = inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| WorkflowError::Stopped)?;
        let mut backoff = opts.backoff;
        let mut unavailable = None;
        for attempt in 0..=opts.retries {
            if attempt > 0 {
                inner.retried.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(task = %call, attempt, "retrying after {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(opts.max_backoff);
            }
            let (tx, rx) = oneshot::channel();
            inner
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), tx);
            if let Err(e) = inner.transport.send_to_queue(&queue, msg.clone()).await {
                resolve(&inner.pending, &id, Err(String::new()));
                return Err(e.into());
            }
            match tokio::time::timeout(opts.timeout, rx).await {
                Ok(Ok(Ok(value))) => return Ok(value),
                Ok(Ok(Err(reason))) if retryable(&reason) => {
                    unavailable = Some(reason);
                }
                Ok(Ok(Err(reason))) => {
                    return Err(WorkflowError::TaskFailed {
                        task: brief(&call),
                        reason: cut(reason),
                    });
                }
                Err(_) => unavailable = None,
                Ok(Err(_)) => return Err(WorkflowError::Stopped),
            }
        }
        resolve(&inner.pending, &id, Err(String::new()));
        Err(match unavailable {
            Some(reason) => WorkflowError::TaskFailed {
                task: brief(&call),
                reason: cut(reason),
            },
            None => WorkflowError::TimedOut {
                task: brief(&call),
                attempts: opts.retries + 1,
                timeout: opts.timeout,
            },
        })
    }
}

/// Longest task call or reason an error quotes in full.
const BRIEF: usize = 300;

/// The call as expression text, cut after [`BRIEF`] characters (a call over a large
/// list would otherwise make an error line of megabytes).
fn brief(call: &TaskCall) -> String {
    cut(call.to_string())
}

/// `text`, cut after [`BRIEF`] characters.
fn cut(text: String) -> String {
    match text.char_indices().nth(BRIEF) {
        Some((at, _)) => format!("{}... ({} characters)", &text[..at], text.len()),
        None => text,
    }
}

/// Whether a dead letter's reason means "try again": the task was `unavailable`, or
/// the participant holding it stopped mid-way (a node dying with the task).
fn retryable(reason: &str) -> bool {
    reason.contains(": unavailable: ") || reason.starts_with("dropped unsettled")
}

/// Member results in call order; the first failure in call order fails the whole.
fn in_order(results: Vec<Result<Value, WorkflowError>>) -> Result<Value, WorkflowError> {
    results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}
