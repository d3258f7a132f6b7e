#!/usr/bin/env bash
# The rollback rule's property test in its long mode: random histories of incidents
# (deploys, crashes undone or halted, pauses and resumes, rollbacks plain, --to and
# failing, the history limit) checked against the reference model of
# src/rollout/model_tests.rs. `cargo test` runs 2,000 sequences; this runs 100,000 in
# an optimised build (about ten minutes on two cores), `--short` (CI) 10,000 in the
# test build. FLOTILLA_MODEL_SEED=N replays a run: every run prints its seed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[model %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla/target}"
profile=(--release)
cases=100000
if [ "${1:-}" = "--short" ]; then
  profile=()
  cases=10000
fi
export FLOTILLA_MODEL_CASES="${FLOTILLA_MODEL_CASES:-$cases}"
say "rollback model: $FLOTILLA_MODEL_CASES random histories (${profile[*]:-test build})"
started=$(date +%s)
cargo test "${profile[@]}" --lib rollout::model_tests::rollback_holds_the_model_over_random_histories -- --nocapture 2>&1 \
  | grep -E 'rollback model|FLOTILLA_MODEL_SEED|smallest|after command|test result|panicked' 
status=${PIPESTATUS[0]}
say "done in $(( $(date +%s) - started )) s (exit $status)"
exit "$status"
