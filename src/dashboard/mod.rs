//! The fleet at a glance: every release in every cluster of the repository's
//! environments read at once into one view (`view.rs`). Nothing here changes a
//! cluster or reads Vault.

pub mod view;

pub use view::FleetView;
