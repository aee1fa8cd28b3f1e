//! Per-role counters and gauges, and the Prometheus text endpoint that exposes them.
//!
//! Participants update their role's [`RoleMetrics`] with relaxed atomics (no lock on the
//! message path); the autoscaler sets the backlog and counts decisions; [`serve`] renders
//! every registered role in the Prometheus text format (version 0.0.4) on `GET /metrics`.
//!
//! Two signals serve the autoscaler: [`RoleMetrics::pressure`] wakes it when a message
//! starts while every instance is busy (only while it watches, see
//! [`RoleMetrics::watch_pressure`]), and [`RoleMetrics::start_time`] is the measured
//! instance start time (the pool's set-up plus instantiate, `start` and parameter replay).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bounds of the processing-time histogram's buckets, seconds (`+Inf` is implied).
pub const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0,
];

/// What one role (graph process) has done and how it is provisioned.
#[derive(Debug)]
pub struct RoleMetrics {
    /// The role.
    pub role: Arc<str>,
    processed: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    instances: AtomicU64,
    backlog: AtomicU64,
    decisions: AtomicU64,
    at_max: AtomicU64,
    saturated: AtomicU64,
    serving: AtomicU64,
    served: tokio::sync::Notify,
    /// Whether an autoscaler listens to `pressure`.
    watched: AtomicBool,
    pressure: tokio::sync::Notify,
    starts: Mutex<StartTimes>,
    /// Processing-time sums in microseconds; wrapping, so deltas stay exact.
    time_count: AtomicU64,
    time_sum_us: AtomicU64,
    time_sq_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

/// Processing-time sums at one moment; two of them give the mean and spread in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeSums {
    /// Calls measured.
    pub count: u64,
    /// Sum of durations, µs.
    pub sum_us: u64,
    /// Sum of squared durations, µs².
    pub sq_us: u64,
}

impl TimeSums {
    /// Mean and standard deviation (seconds) of the calls between `earlier` and `self`.
    pub fn since(&self, earlier: &TimeSums) -> Option<(u64, f64, f64)> {
        let n = self.count.wrapping_sub(earlier.count);
        if n == 0 {
            return None;
        }
        let sum = self.sum_us.wrapping_sub(earlier.sum_us) as f64;
        let sq = self.sq_us.wrapping_sub(earlier.sq_us) as f64;
        let mean = sum / n as f64;
        let var = (sq / n as f64 - mean * mean).max(0.0);
        Some((n, mean / 1e6, var.sqrt() / 1e6))
    }
}

impl RoleMetrics {
    /// Zeroed metrics of `role`.
    pub fn new(role: &str) -> Self {
        RoleMetrics {
            role: Arc::from(role),
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            instances: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            decisions: AtomicU64::new(0),
            at_max: AtomicU64::new(0),
            saturated: AtomicU64::new(0),
            serving: AtomicU64::new(0),
            served: tokio::sync::Notify::new(),
            watched: AtomicBool::new(false),
            pressure: tokio::sync::Notify::new(),
            starts: Mutex::new(StartTimes::default()),
            time_count: AtomicU64::new(0),
            time_sum_us: AtomicU64::new(0),
            time_sq_us: AtomicU64::new(0),
            buckets: Default::default(),
        }
    }

    /// A message is being processed. With every instance busy, an autoscaler that
    /// watches is woken (see [`RoleMetrics::pressure`]).
    pub fn started(&self) {
        let busy = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        if self.watched.load(Ordering::Relaxed) && busy >= self.instances.load(Ordering::Relaxed) {
            self.pressure.notify_one();
        }
    }

    /// Turns the pressure signal on or off (an autoscaler turns it on while it runs; off,
    /// a message start costs one relaxed load more).
    pub fn watch_pressure(&self, on: bool) {
        self.watched.store(on, Ordering::Relaxed);
    }

    /// Resolves after a message started while every instance was busy (a backlog may be
    /// building). A signal given while nobody waits is kept for the next wait.
    pub async fn pressure(&self) {
        self.pressure.notified().await;
    }

    /// The pool spent `took` setting up a new instance's queues (before instantiating).
    pub fn instance_setup(&self, took: Duration) {
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        starts.setup = Some(ewma(starts.setup, took.as_secs_f64()));
    }

    /// An instance was created and started (instantiate, `start`, parameters) in `took`.
    pub fn instance_started(&self, took: Duration) {
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        starts.count += 1;
        starts.instance = Some(ewma(starts.instance, took.as_secs_f64()));
    }

    /// The measured instance start time: the smoothed set-up plus instantiate-and-start
    /// times; `None` before an instance has started.
    pub fn start_time(&self) -> Option<Duration> {
        let starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        let total = starts.instance? + starts.setup.unwrap_or(0.0);
        Duration::try_from_secs_f64(total).ok()
    }

    /// Instances created and started so far.
    pub fn starts(&self) -> u64 {
        self.starts.lock().unwrap_or_else(|p| p.into_inner()).count
    }

    /// A message was settled (`ok`: acked) after `took`.
    pub fn finished(&self, ok: bool, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if ok {
            self.processed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.time_count.fetch_add(1, Ordering::Relaxed);
        self.time_sum_us.fetch_add(us, Ordering::Relaxed);
        self.time_sq_us
            .fetch_add(us.wrapping_mul(us), Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A newly started instance handled its first message.
    pub fn instance_serving(&self) {
        self.serving.fetch_add(1, Ordering::Release);
        self.served.notify_waiters();
    }

    /// Resolves once `n` instances have ever handled a first message.
    pub async fn serving_at_least(&self, n: u64) {
        loop {
            let notified = self.served.notified();
            if self.serving.load(Ordering::Acquire) >= n {
                return;
            }
            notified.await;
        }
    }

    /// Instances that ever handled a first message.
    pub fn serving(&self) -> u64 {
        self.serving.load(Ordering::Acquire)
    }

    /// Messages acked.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Messages dead-lettered.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Messages being processed right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Instances running.
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    /// Sets the number of instances running.
    pub fn set_instances(&self, n: u64) {
        self.instances.store(n, Ordering::Relaxed);
    }

    /// Sets the last backlog read (waiting plus in flight).
    pub fn set_backlog(&self, n: u64) {
        self.backlog.store(n, Ordering::Relaxed);
    }

    /// Counts a scaling decision; `saturated` when the role needs more than its maximum.
    pub fn decided(&self, saturated: bool) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if saturated {
            self.at_max.fetch_add(1, Ordering::Relaxed);
        }
        self.saturated
            .store(u64::from(saturated), Ordering::Relaxed);
    }

    /// Decisions that found the role at its maximum and still short.
    pub fn at_max(&self) -> u64 {
        self.at_max.load(Ordering::Relaxed)
    }

    /// Processing-time sums now.
    pub fn time_sums(&self) -> TimeSums {
        TimeSums {
            count: self.time_count.load(Ordering::Relaxed),
            sum_us: self.time_sum_us.load(Ordering::Relaxed),
            sq_us: self.time_sq_us.load(Ordering::Relaxed),
        }
    }
}

/// Measured instance start times (seconds, smoothed).
#[derive(Debug, Default)]
struct StartTimes {
    count: u64,
    setup: Option<f64>,
    instance: Option<f64>,
}

/// Weight of a new start-time sample: recent starts count most, one slow start does not
/// swing the estimate.
const START_WEIGHT: f64 = 0.25;

fn ewma(old: Option<f64>, sample: f64) -> f64 {
    match old {
        Some(old) => old + START_WEIGHT * (sample - old),
        None => sample,
    }
}

/// Every role's metrics, in registration order.
#[derive(Debug, Default)]
pub struct Registry {
    roles: Mutex<Vec<Arc<RoleMetrics>>>,
}

impl Registry {
    /// The metrics of `role`, registered on first use.
    pub fn role(&self, role: &str) -> Arc<RoleMetrics> {
        let mut roles = self.roles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = roles.iter().find(|m| &*m.role == role) {
            return m.clone();
        }
        let m = Arc::new(RoleMetrics::new(role));
        roles.push(m.clone());
        m
    }

    /// Forgets `role` (its process was removed).
    pub fn remove(&self, role: &str) {
        self.roles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|m| &*m.role != role);
    }

    /// The Prometheus text exposition of every role.
    pub fn render(&self) -> String {
        let roles = self.roles.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = String::new();
        type Read = fn(&RoleMetrics) -> u64;
        let series: [(&str, &str, &str, Read); 8] = [
            (
                "wasmflo_role_backlog",
                "gauge",
                "Messages waiting or in flight at the last poll",
                |m| m.backlog.load(Ordering::Relaxed),
            ),
            (
                "wasmflo_role_in_flight",
                "gauge",
                "Messages being processed",
                RoleMetrics::in_flight,
            ),
            (
                "wasmflo_role_instances",
                "gauge",
                "Instances running",
                RoleMetrics::instances,
            ),
            (
                "wasmflo_role_processed_total",
                "counter",
                "Messages acked",
                RoleMetrics::processed,
            ),
            (
                "wasmflo_role_failed_total",
                "counter",
                "Messages dead-lettered",
                RoleMetrics::failed,
            ),
            (
                "wasmflo_role_scaling_decisions_total",
                "counter",
                "Scaling decisions taken",
                |m| m.decisions.load(Ordering::Relaxed),
            ),
            (
                "wasmflo_role_at_max_total",
                "counter",
                "Decisions that found the role at its maximum and short of instances",
                RoleMetrics::at_max,
            ),
            (
                "wasmflo_role_at_max",
                "gauge",
                "1 while the role needs more instances than its maximum",
                |m| m.saturated.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, read) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for m in &roles {
                let _ = writeln!(out, "{name}{{role=\"{}\"}} {}", escape(&m.role), read(m));
            }
        }
        let name = "wasmflo_role_start_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Measured instance start time (set-up, instantiate, start)\n# TYPE {name} gauge"
        );
        for m in &roles {
            if let Some(t) = m.start_time() {
                let _ = writeln!(
                    out,
                    "{name}{{role=\"{}\"}} {}",
                    escape(&m.role),
                    t.as_secs_f64()
                );
            }
        }
        let name = "wasmflo_role_processing_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time a call to the participant took\n# TYPE {name} histogram"
        );
        for m in &roles {
            let role = escape(&m.role);
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&m.buckets) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{role=\"{role}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sums = m.time_sums();
            let _ = writeln!(
                out,
                "{name}_bucket{{role=\"{role}\",le=\"+Inf\"}} {}\n{name}_sum{{role=\"{role}\"}} {}\n{name}_count{{role=\"{role}\"}} {}",
                sums.count,
                sums.sum_us as f64 / 1e6,
                sums.count
            );
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `registry` on `listener` (`GET /metrics`; any other path is 404) until `stop`.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let registry = registry.clone();
                    tokio::spawn(async move {
                        if let Err(e) = respond(stream, &registry).await {
                            tracing::debug!("metrics request: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("metrics listener: {e}"),
            },
        }
    }
}

async fn respond(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let (status, body) = match path {
        "/metrics" => ("200 OK", registry.render()),
        _ => ("404 Not Found", "not found: try /metrics\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let registry = Registry::default();
        let m = registry.role("w\"1");
        m.started();
        m.finished(true, Duration::from_micros(700));
        m.started();
        m.finished(false, Duration::from_millis(2));
        m.set_instances(3);
        m.decided(true);
        let text = registry.render();
        assert!(
            text.contains("wasmflo_role_processed_total{role=\"w\\\"1\"} 1"),
            "{text}"
        );
        assert!(text.contains("wasmflo_role_failed_total{role=\"w\\\"1\"} 1"));
        assert!(text.contains("wasmflo_role_instances{role=\"w\\\"1\"} 3"));
        assert!(text.contains("wasmflo_role_at_max{role=\"w\\\"1\"} 1"));
        assert!(text.contains("le=\"0.001\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }

    #[test]
    fn start_times_add_set_up_and_instance() {
        let m = RoleMetrics::new("r");
        assert_eq!(m.start_time(), None);
        m.instance_setup(Duration::from_micros(100));
        assert_eq!(m.start_time(), None, "no instance started yet");
        m.instance_started(Duration::from_micros(400));
        assert_eq!(m.start_time(), Some(Duration::from_micros(500)));
        // A slow start moves the estimate a quarter of the way.
        m.instance_started(Duration::from_micros(800));
        assert_eq!(m.start_time(), Some(Duration::from_micros(600)));
        assert_eq!(m.starts(), 2);
        assert!(
            Registry::default()
                .render()
                .contains("wasmflo_role_start_seconds")
        );
    }

    #[tokio::test]
    async fn pressure_only_while_watched_and_all_busy() {
        let m = RoleMetrics::new("r");
        m.set_instances(2);
        m.started();
        m.started();
        m.watch_pressure(true);
        let pending = tokio::time::timeout(Duration::from_millis(1), m.pressure()).await;
        assert!(pending.is_err(), "not watched when they started");
        m.finished(true, Duration::ZERO);
        m.started();
        tokio::time::timeout(Duration::from_secs(5), m.pressure())
            .await
            .unwrap_or_else(|_| panic!("two of two busy: pressure"));
        m.finished(true, Duration::ZERO);
        m.finished(true, Duration::ZERO);
        m.started();
        let pending = tokio::time::timeout(Duration::from_millis(1), m.pressure()).await;
        assert!(pending.is_err(), "one of two busy: no pressure");
    }

    #[test]
    fn time_sums_give_mean_and_spread() {
        let m = RoleMetrics::new("r");
        let before = m.time_sums();
        for us in [100, 300] {
            m.started();
            m.finished(true, Duration::from_micros(us));
        }
        let (n, mean, sd) = m.time_sums().since(&before).unwrap_or_default();
        assert_eq!(n, 2);
        assert!((mean - 200e-6).abs() < 1e-12);
        assert!((sd - 100e-6).abs() < 1e-9);
    }
}
