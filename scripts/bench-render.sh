#!/usr/bin/env bash
# Rendering the example release for 100 clusters (benches/render.rs). Prints figures;
# asserts nothing. `--short` (CI): dev profile and 5 runs, so CI builds nothing more;
# without it, an optimised build and 30 runs: the figure to quote.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla/target}"
if [ "${1:-}" = "--short" ]; then
  cargo bench -q --profile dev --bench render -- --short
else
  cargo bench -q --bench render
fi
