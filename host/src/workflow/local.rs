//! In-process workflows: a [`Network`] of task roles (one process per task name, started
//! from its component on first use) and a [`Dispatcher`] over its transport.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::dispatch::{DispatchOptions, Dispatcher};
use super::signature::Signature;
use super::{WorkflowError, component_for};
use crate::component::{Loader, Resolver};
use crate::graph::{Graph, Process};
use crate::network::{Network, Source};
use crate::participant::Report;
use crate::transport::{MemoryTransport, Transport};

/// Task roles running in this process, and a dispatcher running workflows over them.
///
/// ```no_run
/// # async fn demo(loader: std::sync::Arc<wasmflo_host::component::Loader>) -> Result<(), Box<dyn std::error::Error>> {
/// use wasmflo_host::component::{Resolver, components_dir};
/// use wasmflo_host::workflow::{DispatchOptions, LocalWorkflows};
///
/// let resolver = Resolver::new(components_dir(), ".");
/// let mut workflows = LocalWorkflows::start(loader, resolver, DispatchOptions::default()).await?;
/// let result = workflows.run_expr("add(4, 4) | mul(8) | mul(10)").await?;
/// assert_eq!(result, 640);
/// workflows.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalWorkflows {
    network: Network,
    dispatcher: Dispatcher,
    loader: Arc<Loader>,
    resolver: Resolver,
    components: HashMap<String, String>,
    role_prefix: String,
}

impl LocalWorkflows {
    /// An empty network on a new in-memory transport; roles start on first use.
    pub async fn start(
        loader: Arc<Loader>,
        resolver: Resolver,
        options: DispatchOptions,
    ) -> Result<LocalWorkflows, WorkflowError> {
        let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
        let network = Network::start(
            &Graph::default(),
            &Source::default(),
            &loader,
            &resolver,
            transport.clone(),
        )
        .await
        .map_err(|source| WorkflowError::Role {
            task: String::new(),
            component: String::new(),
            source: Box::new(source),
        })?;
        Ok(LocalWorkflows {
            network,
            role_prefix: options.role_prefix.clone(),
            dispatcher: Dispatcher::new(transport, options),
            loader,
            resolver,
            components: HashMap::new(),
        })
    }

    /// Serves task `task` with `component` (a name such as `test/Flaky`, or a `.wasm`
    /// path) instead of [`component_for`]`(task)`.
    pub fn map_task(&mut self, task: &str, component: &str) {
        self.components
            .insert(task.to_string(), component.to_string());
    }

    /// Starts a process (role [`DispatchOptions::role_prefix`] + task name) for every
    /// task of `sig` that has none yet.
    pub async fn ensure_roles(&mut self, sig: &Signature) -> Result<(), WorkflowError> {
        for task in sig.task_names() {
            let role = format!("{}{task}", self.role_prefix);
            if self.network.process(&role).is_some() {
                continue;
            }
            let component = self
                .components
                .get(&task)
                .cloned()
                .unwrap_or_else(|| component_for(&task));
            let process = Process {
                component: component.clone(),
                ..Process::default()
            };
            self.network
                .add_process(&role, &process, &self.loader, &self.resolver)
                .await
                .map_err(|source| WorkflowError::Role {
                    task: task.clone(),
                    component,
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// Starts the roles `sig` needs and runs it to its result.
    pub async fn run(&mut self, sig: &Signature) -> Result<Value, WorkflowError> {
        sig.validate()?;
        self.ensure_roles(sig).await?;
        self.dispatcher.run(sig).await
    }

    /// Parses `expr` and runs it.
    pub async fn run_expr(&mut self, expr: &str) -> Result<Value, WorkflowError> {
        let sig = super::parse(expr)?;
        self.run(&sig).await
    }

    /// The dispatcher, for running several workflows at once (after [`Self::ensure_roles`]).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The network of task roles.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Stops the task roles, letting queued messages drain for up to `grace`.
    pub async fn shutdown(self, grace: Duration) -> Vec<Report> {
        self.network.shutdown(grace).await
    }
}
