//! The local fleet: real Kubernetes control planes and a real Vault API on one machine,
//! for flotilla's integration tests and its demo.
//!
//! Owns: finding the server binaries ([`binaries`]), the state directory and its file
//! ([`state`]), the fleet's certificates ([`certs`]), starting and stopping processes by
//! pid ([`process`]), the `up`/`down`/`status`/`stop-cluster`/`start-cluster` commands
//! ([`supervisor`]), the simulated kubelet ([`kubelet`]) and its container-log endpoint ([`kubelet_logs`]), RustyVault's set-up
//! ([`vault`]) and the envelope-normalising proxy in front of it ([`proxy`]), the latency
//! proxy that puts a cluster far away ([`rtt`]), the OCI registry and the chart repository ([`charts`]), and the
//! helper that integration tests use ([`testing`]).
//!
//! Must not: depend on the `flotilla` crate (flotilla's tests depend on this one), or
//! touch anything outside its state directory and the processes it started itself.

pub mod binaries;
pub mod certs;
pub mod charts;
pub mod error;
pub mod kubelet;
pub mod kubelet_logs;
pub mod process;
pub mod proxy;
pub mod rtt;
pub mod state;
pub mod supervisor;
pub mod testing;
pub mod vault;

pub use error::{FleetError, Result};

/// Picks rustls's `ring` provider for the whole process. When a build links both `ring`
/// and `aws-lc-rs` (vaultrs's reqwest brings the latter into a workspace build), rustls
/// cannot choose by itself and the first TLS client panics. Idempotent.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
