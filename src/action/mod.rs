//! One file per user command. The only layer that composes config, engine, vault,
//! cluster and storage.

pub mod cluster_release;
pub mod template;
