//! The fleet at a glance: every release in every cluster of the repository's
//! environments read at once into one view (`view.rs`), rendered as one
//! self-contained HTML page (`html.rs`, `status -o html`). Nothing here changes a
//! cluster or reads Vault.

pub mod html;
pub mod view;

pub use view::FleetView;
