//! flotilla's integration tests, one test binary (as cargo's own `tests/testsuite`): one
//! module per area, sharing `support`. The data they read stays in `tests/` (`bad_input`,
//! `golden`, `fixtures`).
//!
//! Every test that needs the local fleet, or the fleet's server binaries (HashiCorp
//! Vault, the Helm CLI), lives under [`fleet`] and is `#[ignore]`d with the same reason,
//! so a plain `cargo test` runs without a fleet; no test elsewhere has `fleet` in its
//! name. `cargo test --test testsuite -- --include-ignored fleet::` runs only those,
//! `--skip fleet::` all the others.

mod fleet;
mod support;

mod bad_input;
mod ci_recipes;
mod cli_env;
mod cli_generate;
mod closed_pipe;
mod config_load;
mod first_run;
mod golden;
mod helm_render;
mod helm_timeout_fake_helm;
mod lint_cli;
mod readme_tour;
mod render;
mod runbook;
mod schema;
mod vault_fake;
