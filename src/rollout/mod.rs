//! Every cluster of an environment at once: the multi-cluster machinery behind `deploy`,
//! `rollback`, `history` and `promote`.
//!
//! Owns: the [`plan`] of a run (which environment, which clusters, in which waves, how
//! many at once), the [`deployment id`](id::new_deployment_id) every cluster of a run
//! records, the [`executor`] (waves, concurrency bound, stop on failure or signal,
//! coordinated restore of every cluster the run changed), live [`progress`] and the
//! [`report`] (summary table, JSON, the commands that finish an interrupted job).
//!
//! Must not: talk to a cluster itself. The per-cluster steps are behind the
//! [`ClusterSteps`] trait; [`kube_steps`] implements them on [`crate::ops`], and the
//! tests drive the executor with a scripted double. Rendering and secret resolution
//! ([`prepare`]) happen before the executor starts, so that nothing is touched when a
//! secret or a template is wrong.

pub mod audit;
pub mod chain;
pub mod connect;
pub mod executor;
pub mod gates;
pub mod id;
pub mod kube_steps;
pub mod leases;
#[cfg(test)]
mod model_tests;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod recorded;
pub mod report;
pub mod run;
pub mod selection;
pub mod signing;
pub mod step;
pub mod summary;

pub use executor::{execute, ClusterSteps, Interrupt, LeaseWait, StepError, StepOutcome};
pub use id::new_deployment_id;
pub use plan::{Plan, PlanError};
pub use progress::{Phase, Reporter};
pub use report::{ClusterResult, Report, RunResult};
pub use run::Run;
pub use selection::{configure, EnvSelection, Selected};
