//! flotilla: release one application to every Kubernetes cluster of an environment at
//! once, with secrets from Vault, and roll them all back together when one fails.
//!
//! The crate is split the way Helm splits its `pkg/`: each module owns one concern, and
//! each imports only the modules below it. See `ARCHITECTURE.md` for the layers, the
//! codemap and the flow of a deploy and a rollback.
//!
//! - [`config`]: environment files and release descriptors: loading, validation, the types.
//! - [`engine`]: chart loading, value merging and Handlebars rendering. No I/O beyond
//!   reading the chart; no cluster, no Vault.
//! - [`vault`]: reading secrets from Vault; the [`vault::SecretValue`] type that never prints.
//! - [`cluster`]: talking to one Kubernetes cluster: apply, prune, wait, locks.
//! - [`storage`]: release records kept in a cluster, one Secret per revision.
//! - [`release`]: the release record type itself.
//! - [`ops`]: what one release does in one cluster (upgrade, restore, uninstall), under
//!   a lease its caller holds.
//! - [`rollout`]: one release on every cluster of an environment at once: the
//!   selection and plan (waves, limits), what is prepared before any change, the run
//!   (leases, waves, gates, stop on failure or signal, coordinated rollback), progress
//!   and the report. Each cluster's steps run through [`ops`].
//! - [`action`]: one file per user command, mapping its options onto the layers below.
//! - [`cli`]: the command-line surface (clap), turned into action calls.

pub mod action;
#[cfg(test)]
mod architecture_tests;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod engine;
pub mod error;
pub mod exit;
#[cfg(test)]
mod file_cycles;
pub mod notify;
pub mod ops;
pub mod output;
pub mod redact;
pub mod release;
pub mod rollout;
pub mod storage;
pub mod vault;

pub use error::{Error, Result};

/// Chooses rustls's `ring` provider for the process, once, before any TLS connection.
/// Both `ring` (kube) and `aws-lc-rs` (vaultrs through reqwest) are linked, and rustls
/// then refuses to guess, panicking on the first TLS connection, to Vault or to a
/// cluster. The binary calls it first thing; a library user (a test) calls it too.
/// Idempotent: a provider already installed is kept.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
