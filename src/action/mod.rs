//! One file per user command. The only layer that composes config, engine, vault,
//! cluster and storage.

pub mod cluster_release;
pub mod deploy;
pub mod diff;
pub mod every_cluster;
pub mod history;
pub mod lint;
pub mod multi;
pub mod one_cluster;
pub mod promote;
pub mod rollback;
pub mod secrets;
pub mod status;
pub mod template;
pub mod uninstall;
