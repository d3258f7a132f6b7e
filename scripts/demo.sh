#!/usr/bin/env bash
# The README's main job, on a fresh Debian machine: install what the local fleet needs,
# build flotilla, start the fleet (real kube-apiservers named as the contexts of
# environments/dev.yaml, and a Vault API seeded with the example's secrets), and ship
# the example release `hello` to every dev cluster.
#
#   scripts/demo.sh          stops the fleet at the end
#   scripts/demo.sh --keep   leaves it running and prints the next commands to try:
#                            `source .fleet/env` (flotilla, flotilla-fleet, kubectl on PATH),
#                            then flotilla; stop it with `flotilla-fleet down`
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=""
[ "${1:-}" = "--keep" ] && KEEP=1

say() { printf '\n[demo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

say "installing the fleet's binaries (scripts/install-deps.sh: Go builds of Kubernetes, etcd, Vault and Helm the first time, then a no-op)"
./scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla/target}"
say "building flotilla and flotilla-fleet"
cargo build --workspace --bins
FLOTILLA="$CARGO_TARGET_DIR/debug/flotilla"
FLEET="$CARGO_TARGET_DIR/debug/flotilla-fleet"
export FLOTILLA_FLEET_DIR="$PWD/.fleet"

if [ -z "$KEEP" ]; then
  trap 'status=$?; say "stopping the fleet (run with --keep to leave it up)"; "$FLEET" down || true; exit $status' EXIT
fi

say "starting the local fleet in $FLOTILLA_FLEET_DIR"
if [ -f environments/dev.yaml ]; then
  "$FLEET" up --env environments/dev.yaml
else
  say "environments/dev.yaml is missing: the fleet starts its default clusters"
  "$FLEET" up
fi
# shellcheck disable=SC1091
source "$FLOTILLA_FLEET_DIR/env"

if [ ! -f releases/hello/release.yaml ] || [ ! -f environments/dev.yaml ]; then
  say "releases/hello or environments/dev.yaml is missing: nothing to render"
  exit 1
fi

say "flotilla template hello --env dev --cluster dev-europe-west1 (one cluster's objects, secrets as placeholders)"
"$FLOTILLA" template hello --env dev --cluster dev-europe-west1

say "flotilla deploy hello --env dev (secrets from Vault first, then every dev cluster at once)"
"$FLOTILLA" deploy hello --env dev

say "flotilla history hello --env dev (one line per deployment id)"
"$FLOTILLA" history hello --env dev

say "flotilla status hello --env dev (every cluster: revision, health, drift)"
"$FLOTILLA" status hello --env dev

if [ -n "$KEEP" ]; then
  # These lines are run by tests/testsuite/fleet/readme_tour.rs, as the README's tour is.
  say "done; the fleet is still up. Try next, from this folder:"
  cat >&2 <<'NEXT'
  source .fleet/env
  flotilla deploy hello --env dev --set log.level=warn
  flotilla history hello --env dev
  flotilla rollback hello --env dev
NEXT
  echo "(the README's tour has more; flotilla-fleet down stops the fleet)" >&2
else
  say "done (./scripts/demo.sh --keep leaves the fleet up to try the README's tour)"
fi
