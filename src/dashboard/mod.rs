//! The fleet at a glance: every release in every cluster of the repository's
//! environments read at once into one view (`view.rs`), rendered as one
//! self-contained HTML page (`html.rs`, also `status -o html`), and served read-only
//! by `flotilla dashboard` (`serve.rs`). Nothing here changes a cluster or reads Vault.

pub mod html;
pub mod serve;
pub mod view;

pub use serve::{serve, DashboardOptions};
pub use view::FleetView;
