//! External actuators called off the autoscaler's loop.
//!
//! A command or HTTP actuator may take seconds (up to [`EXTERNAL_TIMEOUT`]); called from
//! the loop, it would hold up every other role's decisions. Each externally scaled role
//! gets a task of its own instead ([`Caller`]): at most one call in flight per role, and a
//! count asked for while one is in flight replaces the pending count rather than queueing
//! a call (a `watch` channel holds only the latest). Each call's [`Outcome`] goes back to
//! the loop, which records the confirmed count or, on failure, keeps the previous one.
//!
//! [`EXTERNAL_TIMEOUT`]: super::actuator::EXTERNAL_TIMEOUT

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::actuator::{Actuator, ActuatorError};

/// What one call of a role's external actuator came to.
#[derive(Debug)]
pub struct Outcome {
    /// The role's index in the autoscaler.
    pub index: usize,
    /// The count asked for.
    pub asked: u32,
    /// The count now requested, or why not.
    pub result: Result<u32, ActuatorError>,
}

/// The handle of one role's actuator task; the task ends when this is dropped (a call in
/// flight is abandoned; a command still gets killed at its timeout).
#[derive(Debug)]
pub struct Caller {
    wanted: watch::Sender<Option<u32>>,
    task: JoinHandle<()>,
}

impl Caller {
    /// Starts the task calling `actuator` for `role`, reporting on `done` with `index`.
    pub fn spawn(
        index: usize,
        role: String,
        actuator: Actuator,
        done: mpsc::UnboundedSender<Outcome>,
    ) -> Self {
        let (wanted, rx) = watch::channel(None);
        let task = tokio::spawn(calls(index, role, actuator, rx, done));
        Caller { wanted, task }
    }

    /// Asks for `count` instances: called at once if no call is in flight, else after
    /// it, unless another count replaces this one first.
    pub fn ask(&self, count: u32) {
        self.wanted.send_replace(Some(count));
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn calls(
    index: usize,
    role: String,
    actuator: Actuator,
    mut wanted: watch::Receiver<Option<u32>>,
    done: mpsc::UnboundedSender<Outcome>,
) {
    let mut confirmed = None;
    while wanted.changed().await.is_ok() {
        let Some(asked) = *wanted.borrow_and_update() else {
            continue;
        };
        // Asked again for what the last call just set (the loop asked before it heard).
        if confirmed == Some(asked) {
            continue;
        }
        let result = actuator.scale(&role, asked).await;
        confirmed = result.as_ref().ok().copied();
        if done
            .send(Outcome {
                index,
                asked,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}
