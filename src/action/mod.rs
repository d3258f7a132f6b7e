//! One file per user command: each takes plain option structs (the command line is
//! [`crate::cli`]'s business), composes [`crate::rollout`] for what runs on every
//! cluster at once and [`crate::ops`] for what reads or changes one cluster, and prints
//! through [`crate::output`].

pub use crate::rollout::selection::EnvSelection;

/// A release (its folder name or the path of its release.yaml) in an environment.
#[derive(Debug, Clone, Default)]
pub struct ReleaseSelection {
    pub release: String,
    pub env: EnvSelection,
}

pub mod adopt_helm;
pub mod dashboard;
pub mod deploy;
pub mod diff;
pub mod dry_run;
pub mod every_cluster;
pub mod freeze;
pub mod get;
pub mod history;
pub mod lint;
pub mod multi;
pub mod promote;
pub mod rollback;
pub mod secrets;
pub mod status;
pub mod template;
pub mod uninstall;
