//! Chart rendering: loading a chart, merging values in MISSION.md's precedence, and
//! rendering Handlebars templates (with Helm-style helpers) into Kubernetes objects,
//! once per cluster.
//!
//! Must not: read Vault or talk to a cluster. Secret values arrive already resolved (or
//! as placeholders) in the values given to it.

use thiserror::Error;

/// A chart that cannot be loaded or rendered. Always bad input: exit 2.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("{0}")]
    Todo(String),
}
