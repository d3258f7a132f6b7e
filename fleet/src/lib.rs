//! The local fleet: real Kubernetes control planes and a real Vault API on one machine,
//! for flotilla's integration tests and its demo.
//!
//! Owns: finding the server binaries ([`binaries`]), the state directory and its file
//! ([`state`]), the fleet's certificates ([`certs`]), starting and stopping processes by
//! pid ([`process`]), the `up`/`down`/`status`/`stop-cluster`/`start-cluster` commands
//! ([`supervisor`]), the simulated kubelet ([`kubelet`]), RustyVault's set-up
//! ([`vault`]) and the envelope-normalising proxy in front of it ([`proxy`]), and the
//! helper that integration tests use ([`testing`]).
//!
//! Must not: depend on the `flotilla` crate (flotilla's tests depend on this one), or
//! touch anything outside its state directory and the processes it started itself.

pub mod binaries;
pub mod certs;
pub mod error;
pub mod kubelet;
pub mod process;
pub mod proxy;
pub mod state;
pub mod supervisor;
pub mod testing;
pub mod vault;

pub use error::{FleetError, Result};
