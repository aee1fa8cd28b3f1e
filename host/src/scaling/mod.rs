//! Autoscaling by deadline: guv's configuration, queueing formulas, policies, simulation.
//!
//! Everything here but [`autoscale`], [`actuator`] and [`external`] is pure (sans-IO): a host feeds [`policy::Inputs`] from its transports
//! and instance pools and applies the [`policy::Decision`]; the simulator drives the same
//! policies with a discrete-event model of arrivals, service and instance start times.
//!
//! - [`config`]: guv's YAML/JSON format (`'*'` defaults, short names, unknown keys rejected);
//! - [`queueing`]: Erlang C and Whitt's GI/G/m approximation;
//! - [`policy`]: the [`policy::Policy`] trait, guv's algorithm and our deadline policy;
//! - [`load`]: the load shapes and CSV traces;
//! - [`simulate`]: the discrete-event simulator and the clairvoyant bound;
//! - [`picture`]: a run drawn as SVG (load, instances, backlog over time);
//! - [`autoscale`]: the running host's autoscaler task, [`actuator`]: what carries out
//!   its decisions (the instance pool, or a command or HTTP endpoint for external workers),
//!   and [`external`]: the tasks calling external actuators off the autoscaler's loop
//!   — the only parts here doing I/O;
//! - [`compare`]: one trace under the tested policy, guv's, fixed maximum and clairvoyant.

pub mod actuator;
pub mod autoscale;
pub mod compare;
pub mod config;
pub mod external;
pub mod load;
pub mod picture;
pub mod policy;
pub mod pressure;
pub mod queueing;
pub mod simulate;
