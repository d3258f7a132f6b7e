#!/usr/bin/env bash
# Wall time and API requests of an upgrade of the example release on one cluster of the
# fleet (benches/upgrade.rs). `--short`: one upgrade. Prints figures; asserts nothing.
# Uses the fleet named by FLOTILLA_FLEET_DIR when it is up, else starts one for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla/target}"
# The dev profile (dependencies optimised): the time is the cluster's, not our CPU's.
cargo bench -q --profile dev --bench upgrade -- "$@"
