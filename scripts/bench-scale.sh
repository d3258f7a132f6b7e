#!/usr/bin/env bash
# flotilla at scale: the executor and the per-cluster state machine on 100 and 1000
# scripted clusters (benches/scale.rs: no API server; it asserts the concurrency bound
# and that every changed cluster of a failing run is restored), then, in full mode, the
# example release upgraded on a real fleet of 20 clusters (rollout.concurrency 20):
# wall time, CPU (user + system) per cluster, flotilla's peak RSS, and the most
# clusters in flight at once (from the progress lines: first object applied to
# deployed). Prints figures; asserts nothing about time.
# `--short` (CI): the scripted part only, dev profile (a few seconds). Full mode: an
# optimised build, then the 20-cluster fleet (3 upgrades): about 5 minutes on 2 idle
# cores, most of it the fleet's start.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh

if [ "${1:-}" = "--short" ]; then
  cargo bench -q --profile dev --features scripted-clusters --bench scale
  exit 0
fi
cargo bench -q --features scripted-clusters --bench scale

clusters=20 upgrades=${BENCH_RUNS:-3}
if [ -z "${FLOTILLA_BIN:-}" ]; then
  cargo build -q --release --bin flotilla
  FLOTILLA="$CARGO_TARGET_DIR/release/flotilla"
fi
bench_build
trap bench_cleanup EXIT
bench_tempdir WORK bench-scale
BENCH_LOG="$WORK/run.log"
echo
echo "real fleet: $(load_line)"
say "starting a fleet of $clusters clusters"
fleet_up "$(cluster_names "$clusters")"
bench_repo "$WORK/repo" "$clusters"
fl() { "$FLOTILLA" --root "$WORK/repo" deploy hello --env bench "$@"; }
fl --create-namespace --version v0 >>"$BENCH_LOG" 2>&1
printf '%-9s %-10s %-9s %-14s %-12s %-14s\n' clusters run wall_s cpu_ms/cluster peak_RSS_MB most_in_flight
for n in $(seq 1 "$upgrades"); do
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$FLOTILLA" --root "$WORK/repo" \
    deploy hello --env bench --version "v$n" >"$WORK/out" 2>"$WORK/err" ||
    { cat "$WORK/err" >&2; exit 1; }
  cat "$WORK/err" >>"$BENCH_LOG"
  python3 - "$WORK/time" "$WORK/err" "$clusters" "$n" <<'PY'
import datetime, sys
wall, user, system, kb = open(sys.argv[1]).read().split()[-4:]
clusters = int(sys.argv[3])
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
start, end = {}, {}
for line in open(sys.argv[2]):
    parts = line.split(" ", 2)
    if len(parts) < 3 or not line.startswith("20"):
        continue
    at, cluster, rest = t(parts[0]), parts[1], parts[2]
    if rest.startswith("apply 1/"):
        start.setdefault(cluster, at)
    elif rest.startswith("deployed"):
        end[cluster] = at
edges = sorted([(s, 1) for s in start.values()] + [(e, -1) for e in end.values()])
most = now = 0
for _, step in edges:
    now += step
    most = max(most, now)
cpu_ms = (float(user) + float(system)) * 1000 / clusters
print(f"{clusters:<9} {'upgrade ' + sys.argv[4]:<10} {float(wall):<9.2f} {cpu_ms:<14.1f} {int(kb) / 1024:<12.1f} {most:<14}")
PY
done
echo "targets: peak RSS <= 40 MB at 10 clusters (here $clusters); $(load_line)"
