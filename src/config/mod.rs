//! Environment files and release descriptors: their types, loading and validation.
//!
//! Owns: the file formats of docs/configuration.md (`environments/<env>.yaml`,
//! `releases/<name>/release.yaml`), finding them under the deployment repo root, and
//! every check that can be made without rendering a chart, a cluster or Vault. Errors
//! name the file, the field path (`spec.scaling[1].replicas[0].count`), the offending
//! value and, where the YAML parser knows it, the line.
//!
//! Must not: render templates (that is [`crate::engine`]), read Vault, or talk to a cluster.

mod environment;
mod error;
pub mod freeze;
mod patterns;
mod release;
mod repo;
mod schema;
mod validate;
pub mod yaml;

pub use environment::*;
pub use error::ConfigError;
pub use freeze::{FreezeConfig, FreezeWindow};
pub use release::*;
pub use repo::*;
pub use schema::{schema, SchemaKind};
pub use validate::{
    check_environments, check_release_contexts, check_release_for_environment, dns_label_problem,
    dns_subdomain_problem, image_tag_problem, kv_path_problem,
};
