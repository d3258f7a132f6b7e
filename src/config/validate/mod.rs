//! Checks made after parsing: what the types cannot say. One file's checks run in
//! [`check_environment`] and [`check_release`]; those that need a release and the
//! environments together in [`check_release_contexts`] and
//! [`check_release_for_environment`]; those across environment files in
//! [`check_environments`]. Every problem of a file is reported, not only the first.
//!
//! One module per concern, each with the tests of its rules and messages:
//! `problems` (the list a file's problems are gathered in, with their lines), `names`
//! (DNS names, variable names, the "did you mean" of a typo), `environment` and
//! `release` (one file's own fields), `clusters`, `rollout` (its settings and waves),
//! `notify`, `freeze`, `vault` (the section, and every Vault path flotilla reads), `scaling`,
//! `secrets` (the mappings, and their sources for each cluster of an environment),
//! `contexts` (the contexts and environments a descriptor names) and `environments` (the
//! environment files together: branches, contexts, the promotion chain).

mod chart_source;
mod clusters;
mod contexts;
mod environment;
mod environments;
mod freeze;
mod names;
mod notify;
mod problems;
mod release;
mod rollout;
mod scaling;
mod secrets;
mod vault;

pub use contexts::check_release_contexts;
pub(crate) use environment::check_environment;
pub use environments::check_environments;
pub(crate) use names::nearest;
pub use names::{dns_label_problem, dns_subdomain_problem};
pub(crate) use release::check_release;
pub use release::image_tag_problem;
pub use secrets::check_release_for_environment;
pub use vault::kv_path_problem;
