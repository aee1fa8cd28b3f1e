//! One participant on the edge host: a component, its live instance, recreation after a
//! poisoning fault with the parameters replayed, and (feature `ota`) swapping in a
//! deployed component between calls.
//!
//! The rules are the server host's (`wasmflo_host::participant`): a fault that
//! [poisons](crate::FaultKind::poisons_instance) the instance drops it and a new one is
//! created, started and given the last accepted value of every parameter port at once;
//! a parameter value that faults the new instance is dropped and the instance created
//! again without it; a component whose `start` fails leaves the participant without an
//! instance until a later call starts one.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::LoadError;
use crate::fault::Fault;
use crate::instance::{Component, Engine, Instance};
use crate::limits::Limits;
use crate::message::{CallOutcome, Message};

/// A running participant: calls go to its instance, which is recreated (and started,
/// and given the parameters) after a fault that poisons it.
#[derive(Debug)]
pub struct Participant {
    #[cfg(feature = "ota")]
    engine: Engine,
    component: Component,
    instance: Option<Instance>,
    limits: Limits,
    /// Last accepted value of each parameter port, in first-set order.
    parameters: Vec<(String, Message)>,
    /// Calls made while recreating the instance, not yet taken by the caller.
    restarts: Vec<(String, CallOutcome)>,
    recreated: u64,
    #[cfg(feature = "ota")]
    deployer: Option<crate::ota::Deployer>,
}

impl Participant {
    /// Loads `bytes`, instantiates it under `limits` and calls `start`; returns the
    /// participant and the outcome of `start`.
    pub fn new(
        engine: &Engine,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<(Self, CallOutcome), LoadError> {
        let component = Component::new(engine, bytes)?;
        let (instance, started) = start(&component, &limits).map_err(|f| LoadError::Start {
            kind: f.kind,
            detail: f.detail,
        })?;
        Ok((
            Participant {
                #[cfg(feature = "ota")]
                engine: engine.clone(),
                component,
                instance: Some(instance),
                limits,
                parameters: Vec::new(),
                restarts: Vec::new(),
                recreated: 0,
                #[cfg(feature = "ota")]
                deployer: None,
            },
            started,
        ))
    }

    /// The running component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// The parameters replayed into every new instance, as (port, last accepted value).
    pub fn parameters(&self) -> &[(String, Message)] {
        &self.parameters
    }

    /// How many instances were created after the first (recoveries from faults).
    pub fn recreated(&self) -> u64 {
        self.recreated
    }

    /// Takes the calls made while recreating the instance since the last time: `start`
    /// (as port `"start"`, always first for each new instance) and each replayed
    /// parameter. Their outputs and timers belong to the new instance.
    pub fn take_restarts(&mut self) -> Vec<(String, CallOutcome)> {
        core::mem::take(&mut self.restarts)
    }

    /// Makes sure an instance is running: creates, starts and gives it the parameters
    /// if the last one was dropped. Returns the fault of `start` when it fails.
    pub fn ensure_instance(&mut self) -> Result<(), Fault> {
        while self.instance.is_none() {
            let (mut instance, started) = match start(&self.component, &self.limits) {
                Ok(ok) => ok,
                Err(fault) => {
                    self.restarts.push(("start".into(), failed(fault.clone())));
                    return Err(fault);
                }
            };
            self.recreated += 1;
            self.restarts.push(("start".into(), started));
            let mut poisoned = None;
            for (port, msg) in &self.parameters {
                if self.component.definition().inport(port).is_none() {
                    continue;
                }
                let outcome = instance.process(port, msg);
                let poisons = outcome
                    .result
                    .as_ref()
                    .is_err_and(|f| f.kind.poisons_instance());
                self.restarts.push((port.clone(), outcome));
                if poisons {
                    poisoned = Some(port.clone());
                    break;
                }
            }
            match poisoned {
                // A value that breaks every instance is dropped, not replayed forever.
                Some(port) => self.parameters.retain(|(p, _)| *p != port),
                None => self.instance = Some(instance),
            }
        }
        Ok(())
    }

    /// Delivers `msg` on inport `port`. A parameter port's value is kept (and replayed
    /// into new instances) once the component accepted it.
    pub fn process(&mut self, port: &str, msg: &Message) -> CallOutcome {
        if let Err(fault) = self.ensure_instance() {
            return failed(fault);
        }
        let Some(instance) = self.instance.as_mut() else {
            return failed(Fault::new(crate::FaultKind::Internal, "no instance"));
        };
        let outcome = instance.process(port, msg);
        if outcome.result.is_ok()
            && let Some(def) = self.component.definition().inport(port)
            && def.parameter
        {
            let id = def.id.clone();
            match self.parameters.iter_mut().find(|(p, _)| *p == id) {
                Some(slot) => slot.1 = msg.clone(),
                None => self.parameters.push((id, msg.clone())),
            }
        }
        self.recover(&outcome);
        outcome
    }

    /// Fires timer `id`.
    pub fn on_timer(&mut self, id: u32) -> CallOutcome {
        if let Err(fault) = self.ensure_instance() {
            return failed(fault);
        }
        let Some(instance) = self.instance.as_mut() else {
            return failed(Fault::new(crate::FaultKind::Internal, "no instance"));
        };
        let outcome = instance.on_timer(id);
        self.recover(&outcome);
        outcome
    }

    /// Drops a poisoned instance and creates the next one at once, so a timer-driven
    /// participant keeps running.
    fn recover(&mut self, outcome: &CallOutcome) {
        if outcome
            .result
            .as_ref()
            .is_err_and(|f| f.kind.poisons_instance())
        {
            self.instance = None;
            // A failing `start` is reported by the next call.
            let _ = self.ensure_instance();
        }
    }

    /// Accepts deployments that `deployer` verifies (none are accepted without one).
    #[cfg(feature = "ota")]
    pub fn accept_deployments(&mut self, deployer: crate::ota::Deployer) {
        self.deployer = Some(deployer);
    }

    /// Verifies `deployment`, loads and starts its component, gives it the parameters
    /// its inports take, and swaps it in; on any error the running component is kept.
    /// Returns the new instance's calls: `start` first, then each parameter replayed.
    #[cfg(feature = "ota")]
    pub fn deploy(
        &mut self,
        deployment: &crate::ota::Deployment<'_>,
    ) -> Result<Vec<(String, CallOutcome)>, crate::ota::OtaError> {
        use crate::ota::OtaError;
        let deployer = self.deployer.as_mut().ok_or(OtaError::NotAccepted)?;
        let manifest = deployer.verify(deployment)?;
        let component =
            Component::new(&self.engine, deployment.component).map_err(OtaError::Load)?;
        let (mut instance, started) = start(&component, &self.limits).map_err(OtaError::Start)?;
        let mut calls = Vec::with_capacity(1 + self.parameters.len());
        calls.push((String::from("start"), started));
        // Parameters go into the new instance before it is committed: a component that
        // faults on one is rejected like one that traps in `start`.
        for (port, msg) in &self.parameters {
            if component.definition().inport(port).is_none() {
                continue;
            }
            let outcome = instance.process(port, msg);
            if let Err(fault) = &outcome.result
                && fault.kind.poisons_instance()
            {
                return Err(OtaError::Parameter {
                    port: port.clone(),
                    fault: fault.clone(),
                });
            }
            calls.push((port.clone(), outcome));
        }
        // Recorded before the swap: a device must not run code whose sequence a
        // restart could forget.
        deployer.accept(&manifest, deployment.component)?;
        self.component = component;
        self.instance = Some(instance);
        Ok(calls)
    }

    /// The sequence of the last accepted deployment, if deployments are accepted.
    #[cfg(feature = "ota")]
    pub fn sequence(&self) -> Option<u64> {
        self.deployer.as_ref().map(crate::ota::Deployer::sequence)
    }
}

/// The outcome of a call that could not be made.
fn failed(fault: Fault) -> CallOutcome {
    CallOutcome {
        outputs: Vec::new(),
        timers: Vec::new(),
        logs: Vec::new(),
        fuel: 0,
        result: Err(fault),
    }
}

/// A started instance, or the fault of instantiating or starting it.
fn start(component: &Component, limits: &Limits) -> Result<(Instance, CallOutcome), Fault> {
    let mut instance = component.instantiate(limits)?;
    let started = instance.start();
    match &started.result {
        Err(f) => Err(f.clone()),
        Ok(()) => Ok((instance, started)),
    }
}
