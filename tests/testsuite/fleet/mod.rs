//! The tests that need the local fleet (`Fleet::shared`, `Fleet::dedicated`, the
//! cluster-layer and rollout support) or the fleet's server binaries (a real Vault of a
//! test's own, the Helm CLI). Each is `#[ignore = "needs the local fleet: scripts/test.sh
//! runs it"]`; `scripts/test.sh` starts the fleet and runs them with `--include-ignored`.

mod api_errors;
mod ci_recipes;
mod cli_gates;
mod cli_one_cluster;
mod cluster_release;
mod cluster_safety;
mod dashboard;
mod diagnostics;
mod dry_run;
mod faults_lost;
mod faults_shared;
mod freeze;
mod helm_chart_sources;
mod helm_charts;
mod helm_hooks;
mod helm_render;
mod killed_run;
mod lease_races;
mod notify;
mod progress;
mod promotion;
mod readme_tour;
mod record_trust;
mod records;
mod restore_by_key;
mod rollback_incidents;
mod rollback_unreachable;
mod rollout;
mod rollout_stop;
mod runbook;
mod secrets_canary;
mod secrets_never_shown;
mod secrets_never_shown_clusters;
mod secrets_policy;
mod shared_namespace;
mod sigkill_trials;
mod terminal;
mod uninstall;
mod values;
mod vault;
mod vault_jwt;
mod wave_gates;
mod workloads;
