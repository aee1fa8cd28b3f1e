//! Broker confirmations as a watermark, so acks can wait for outputs without the
//! participant waiting for them.
//!
//! A participant publishes its outputs, then acks its input. On a broker, waiting for
//! each publish's confirm before taking the next message would cost a round trip per
//! message (and Nagle's delays on top). Instead a publish resolves once it is handed to
//! the connection, and the *ack* waits: it carries the number of publishes issued so far,
//! and is sent only once every one of them is confirmed. If any publish that may belong
//! to that input failed, the input is not acked but left for redelivery — still at least
//! once, never an ack before its outputs are safe.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::watch;

/// How far confirmations have come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Progress {
    /// Every publish with a sequence number up to this one is settled.
    pub confirmed: u64,
    /// The highest sequence number that failed (0: none).
    pub failed: u64,
}

/// Sequence numbers of publishes in flight on one connection.
#[derive(Debug)]
pub(super) struct Confirms {
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
}

#[derive(Debug)]
struct State {
    next: u64,
    outstanding: BTreeSet<u64>,
    failed: u64,
}

impl Default for Confirms {
    fn default() -> Self {
        Self::new()
    }
}

impl Confirms {
    pub fn new() -> Self {
        Confirms {
            state: Mutex::new(State {
                next: 1,
                outstanding: BTreeSet::new(),
                failed: 0,
            }),
            progress: watch::Sender::new(Progress::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A publish starts: its sequence number.
    pub fn begin(&self) -> u64 {
        let mut s = self.lock();
        let seq = s.next;
        s.next += 1;
        s.outstanding.insert(seq);
        seq
    }

    /// Publish `seq` was confirmed (`ok`) or failed.
    pub fn end(&self, seq: u64, ok: bool) {
        let mut s = self.lock();
        s.outstanding.remove(&seq);
        if !ok {
            s.failed = s.failed.max(seq);
        }
        let confirmed = s.outstanding.first().map_or(s.next - 1, |first| first - 1);
        let progress = Progress {
            confirmed,
            failed: s.failed,
        };
        drop(s);
        self.progress.send_replace(progress);
    }

    /// The sequence number of the last publish begun.
    pub fn issued(&self) -> u64 {
        self.lock().next - 1
    }

    /// Resolves once every publish up to `upto` is settled.
    pub async fn settled(&self, upto: u64) -> Progress {
        let mut rx = self.progress.subscribe();
        match rx.wait_for(|p| p.confirmed >= upto).await {
            Ok(p) => *p,
            // The sender lives in `self`: unreachable, but never ack on doubt.
            Err(_) => Progress {
                confirmed: upto,
                failed: u64::MAX,
            },
        }
    }
}

/// Decides, for one consumer's acks in order, whether an input may be acked.
#[derive(Debug, Default)]
pub(super) struct AckGate {
    last: u64,
}

impl AckGate {
    /// Waits until the publishes up to `upto` are settled; `true` if the input may be
    /// acked, `false` if a publish issued since the previous ack failed.
    pub async fn pass(&mut self, confirms: &Confirms, upto: u64) -> bool {
        let progress = confirms.settled(upto).await;
        // Outputs of this input were issued after the previous ack was asked for.
        let ok = progress.failed <= self.last;
        self.last = self.last.max(upto);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acks_wait_for_every_earlier_publish() {
        let c = Confirms::new();
        let mut gate = AckGate::default();
        assert!(gate.pass(&c, c.issued()).await, "nothing published yet");
        let (a, b) = (c.begin(), c.begin());
        let upto = c.issued();
        c.end(b, true);
        assert_eq!(c.settled(0).await.confirmed, a - 1, "a is still out");
        c.end(a, true);
        assert!(gate.pass(&c, upto).await);
        let d = c.begin();
        c.end(d, false);
        assert!(!gate.pass(&c, c.issued()).await, "its output failed");
        assert!(
            gate.pass(&c, c.issued()).await,
            "an old failure does not stick"
        );
    }
}
