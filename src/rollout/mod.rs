//! One release on every cluster of an environment at once: the multi-cluster machinery
//! behind `deploy`, `promote`, `rollback`, `adopt-helm`, `uninstall` and the commands
//! that read every cluster.
//!
//! Owns: the [`selection`] and the [`plan`] of a run (environment, clusters, waves,
//! concurrency), the one way to reach every cluster at once ([`connect`]), what is
//! [`prepare`]d before any cluster is touched (secrets, connections, renders), the
//! [`run`] as a command starts it, the [`executor`] (every lease first, waves, gates,
//! stop on failure or signal, coordinated restore) over the [`step`] contract, its one
//! implementation on real clusters ([`kube_steps`]), the run's [`leases`], live
//! [`progress`] and the [`report`].
//!
//! Must not: change a cluster except through [`crate::ops`], which does so under the
//! lease the run holds. The executor is tested against scripted steps, the steps'
//! decisions against the in-memory cluster of [`crate::ops`].

pub mod audit;
pub mod chain;
pub mod connect;
pub mod executor;
pub mod gates;
pub mod id;
pub mod kube_steps;
pub mod leases;
#[cfg(test)]
mod memory_fleet;
#[cfg(test)]
mod model_tests;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod recorded;
pub mod report;
pub mod run;
#[cfg(test)]
mod run_tests;
pub mod selection;
pub mod signing;
pub mod step;
pub mod summary;

pub use executor::{execute, ClusterSteps, Interrupt, LeaseWait, StepError, StepOutcome};
pub use id::new_deployment_id;
pub use plan::{Plan, PlanError};
pub use progress::{Phase, Reporter};
pub use report::{ClusterResult, Overall, Report, RunResult};
pub use run::Run;
pub use selection::{configure, EnvSelection, Selected};
