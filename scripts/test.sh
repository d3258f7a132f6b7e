#!/usr/bin/env bash
# The project's test command (the README's; .ci/run execs it). On a brand-new Debian
# machine with only rustup's toolchain it installs what the fleet needs, checks format
# and lints, builds, starts one shared local fleet (real kube-apiservers and a Vault API),
# runs every test against it, runs the benchmarks in short mode, and stops the fleet on
# any exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n[test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

say "installing the fleet's binaries and the browser (scripts/install-deps.sh: Go builds of Kubernetes, etcd, Vault and Helm, Debian's chromium, the first time; then a no-op)"
./scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla/target}"
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    say "rustup component add $component"
    rustup component add "$component"
  fi
done

say "cargo fmt --all --check"
cargo fmt --all --check

say "cargo clippy --workspace --all-targets -- -D warnings (target dir $CARGO_TARGET_DIR)"
cargo clippy --workspace --all-targets -- -D warnings
# Again with every feature: `scripted-clusters` builds benches/scale.rs and makes
# ops::fake public, code the first pass does not see.
say "cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

say "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

FLEET_BIN="$CARGO_TARGET_DIR/debug/flotilla-fleet"
FLEET_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flotilla-test-fleet.XXXXXX")"
stop_fleet() {
  status=$?
  say "stopping the fleet in $FLEET_DIR"
  if "$FLEET_BIN" --state "$FLEET_DIR" down; then
    if [ "$status" -eq 0 ]; then rm -rf "$FLEET_DIR"; else say "fleet logs kept in $FLEET_DIR/logs"; fi
  fi
  # The suite's closing line, last of all.
  [ -z "${TEST_SUMMARY:-}" ] || echo "tests: $TEST_SUMMARY"
  exit "$status"
}
trap stop_fleet EXIT
trap 'exit 130' INT TERM

say "starting the shared fleet (flotilla-fleet up) in $FLEET_DIR"
"$FLEET_BIN" --state "$FLEET_DIR" up
export FLOTILLA_FLEET_DIR="$FLEET_DIR"
export FLOTILLA_FLEET_BIN="$FLEET_BIN"

# Fleet-backed tests (tests/testsuite/fleet/, `fleet::` in their names) are #[ignore]d so
# that a plain `cargo test` runs without a fleet;
# here the fleet is up, so every test runs.
say "cargo test --workspace -- --include-ignored (tests share the fleet, isolated by namespace)"
TEST_LOG="$FLEET_DIR/cargo-test.log"
# A failing test must not skip the summary below: `set -e` would exit on the pipeline.
TEST_STATUS=0
cargo test --workspace -- --include-ignored 2>&1 | tee "$TEST_LOG" || TEST_STATUS=$?
# One closing line for the whole suite: cargo's own last line is the doc-tests' "0 passed".
TEST_SUMMARY=$(awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) g += $(i-1) } }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, g }' "$TEST_LOG")
[ "$TEST_STATUS" -eq 0 ] || exit "$TEST_STATUS"

say "benchmarks, short mode"
for bench in scripts/bench-*.sh; do
  [ -x "$bench" ] || continue
  say "$bench --short"
  "$bench" --short
done

say "the rollback model, short mode (scripts/model-check.sh --short)"
./scripts/model-check.sh --short

say "all green"
