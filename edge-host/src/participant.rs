//! One participant on the edge host: a component, its live instance, recreation after a
//! poisoning fault, and (feature `ota`) swapping in a deployed component between calls.

use crate::error::LoadError;
use crate::fault::Fault;
use crate::instance::{Component, Engine, Instance};
use crate::limits::Limits;
use crate::message::{CallOutcome, Message};

/// A running participant: calls go to its instance, which is recreated (and started)
/// after a fault that [poisons](crate::FaultKind::poisons_instance) it.
#[derive(Debug)]
pub struct Participant {
    #[cfg(feature = "ota")]
    engine: Engine,
    component: Component,
    instance: Instance,
    limits: Limits,
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
                instance,
                limits,
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

    /// Delivers `msg` on inport `port`.
    pub fn process(&mut self, port: &str, msg: &Message) -> CallOutcome {
        let outcome = self.instance.process(port, msg);
        self.recover(&outcome);
        outcome
    }

    /// Fires timer `id`.
    pub fn on_timer(&mut self, id: u32) -> CallOutcome {
        let outcome = self.instance.on_timer(id);
        self.recover(&outcome);
        outcome
    }

    fn recover(&mut self, outcome: &CallOutcome) {
        if outcome
            .result
            .as_ref()
            .is_err_and(|f| f.kind.poisons_instance())
        {
            // A component that started once starts again; if not, the old instance stays
            // and the next call reports what is wrong.
            if let Ok((instance, _)) = start(&self.component, &self.limits) {
                self.instance = instance;
            }
        }
    }

    /// Accepts deployments that `deployer` verifies (none are accepted without one).
    #[cfg(feature = "ota")]
    pub fn accept_deployments(&mut self, deployer: crate::ota::Deployer) {
        self.deployer = Some(deployer);
    }

    /// Verifies `deployment`, loads and starts its component, and swaps it in; on any
    /// error the running component is kept. Returns the new instance's `start` outcome.
    #[cfg(feature = "ota")]
    pub fn deploy(
        &mut self,
        deployment: &crate::ota::Deployment<'_>,
    ) -> Result<CallOutcome, crate::ota::OtaError> {
        use crate::ota::OtaError;
        let deployer = self.deployer.as_mut().ok_or(OtaError::NotAccepted)?;
        let manifest = deployer.verify(deployment)?;
        let component =
            Component::new(&self.engine, deployment.component).map_err(OtaError::Load)?;
        let (instance, started) = start(&component, &self.limits).map_err(OtaError::Start)?;
        deployer.accept(&manifest);
        self.component = component;
        self.instance = instance;
        Ok(started)
    }

    /// The sequence of the last accepted deployment, if deployments are accepted.
    #[cfg(feature = "ota")]
    pub fn sequence(&self) -> Option<u64> {
        self.deployer.as_ref().map(crate::ota::Deployer::sequence)
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
