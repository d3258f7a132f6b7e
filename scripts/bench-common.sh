# Sourced by the fleet benchmarks (scripts/bench-*.sh): binaries, one fleet at a time,
# clocks, peak RSS, and the table of medians. Not a benchmark itself (not executable, so
# scripts/test.sh does not run it).
# shellcheck shell=bash

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla/target}"
FLEET_BIN="${FLOTILLA_FLEET_BIN:-$CARGO_TARGET_DIR/debug/flotilla-fleet}"
FLOTILLA="${FLOTILLA_BIN:-$CARGO_TARGET_DIR/debug/flotilla}"

# Builds what is missing (CI has built both already: a no-op there).
bench_build() {
  [ -x "$FLEET_BIN" ] || cargo build -q -p flotilla-fleet --bin flotilla-fleet
  [ -x "$FLOTILLA" ] || cargo build -q --bin flotilla
}

FLEET_DIR=""
BENCH_TEMP=()
# Everything a benchmark started or made goes away on any exit; on a failure, the end
# of $BENCH_LOG (what the commands printed) is shown first.
bench_cleanup() {
  local status=$?
  if [ "$status" != 0 ] && [ -s "${BENCH_LOG:-}" ]; then
    echo "failed (exit $status); the end of the commands' output:" >&2
    tail -n 40 "$BENCH_LOG" >&2
  fi
  fleet_down
  [ "${#BENCH_TEMP[@]}" -eq 0 ] || rm -rf "${BENCH_TEMP[@]}"
}

# A fresh temporary directory in variable $1, removed by bench_cleanup (a variable, not
# an echo: in a $(...) subshell the list of what to remove would be lost).
bench_tempdir() { # $1 = variable, $2 = name
  local made
  made="$(mktemp -d "${TMPDIR:-/tmp}/flotilla-$2.XXXXXX")"
  BENCH_TEMP+=("$made")
  printf -v "$1" '%s' "$made"
}

# `bench-N` for N in 1..$1, comma-separated.
cluster_names() { seq -s, -f "bench-%g" 1 "$1"; }

# Starts a fleet of the given clusters (comma-separated) in a new FLEET_DIR and loads
# its env file (KUBECONFIG, VAULT_*, PATH with kubectl and helm). Never the caller's
# FLOTILLA_FLEET_DIR: a benchmark's fleet is its own. More arguments go to `up`
# (`--rtt NAME=150ms`).
fleet_up() { # $1 = clusters, [more `up` flags]
  FLEET_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench-fleet.XXXXXX")"
  if ! env -u FLOTILLA_FLEET_DIR "$FLEET_BIN" --state "$FLEET_DIR" up --clusters "$1" "${@:2}" \
    >"$FLEET_DIR/bench-up.log" 2>&1; then
    cat "$FLEET_DIR/bench-up.log" >&2
    return 1
  fi
  # shellcheck disable=SC1091
  set -a; . "$FLEET_DIR/env"; set +a
}

fleet_down() {
  [ -n "$FLEET_DIR" ] || return 0
  "$FLEET_BIN" --state "$FLEET_DIR" down >/dev/null 2>&1 || true
  rm -rf "$FLEET_DIR"
  FLEET_DIR=""
}

# A deployment repo with the example release and environment `bench` of every cluster
# (one wave, all at once; a run of N clusters names them with --clusters), and one with
# an environment of 100 clusters for the template (a cluster belongs to one environment).
# The clusters are bench-1..bench-N, or the contexts listed in $3 (comma-separated).
bench_repo() { # $1 = dir, $2 = clusters, [$3 = contexts]
  mkdir -p "$1/environments" "$1/releases"
  cp -r releases/hello "$1/releases/hello"
  # The example's descriptor names the example's environments and contexts: the same
  # release for the bench's (one replica of the web front end, the two secrets).
  cat >"$1/releases/hello/release.yaml" <<'YAML'
apiVersion: flotilla/v1
kind: Release
metadata: { name: hello, namespace: hello }
spec:
  chart: ./chart
  version: 1.0.0
  values: { log: { level: info } }
  scaling:
    - { context: default, replicas: [ { name: hello-web, count: 1 } ] }
  secrets:
    - secret_id: db-password
      contexts: [ { name: default, vaultPath: "kv/{{global.env}}/hello/db", vaultKey: password } ]
    - secret_id: api-token
      contexts: [ { name: default, vaultPath: "kv/{{global.env}}/hello/api", vaultKey: token } ]
YAML
  # The crashloop scenario breaks one cluster only (`--set breakIn=CONTEXT`): the
  # others must be stopped and restored. The simulated kubelet crashloops tag `crashloop`.
  local chart="$1/releases/hello/chart" c
  printf 'breakIn: none\n' >>"$chart/values.yaml"
  sed -i 's/:{{Release.Version}}"/:{{#if (eq Values.global.clusterName Values.breakIn)}}crashloop{{else}}{{Release.Version}}{{\/if}}"/' \
    "$chart/templates/web.yaml" "$chart/templates/worker.yaml"
  grep -q breakIn "$chart/templates/web.yaml"
  {
    printf 'name: bench\nvault:\n  auth: { method: token }\n  kv: { mount: kv, version: 1 }\n'
    printf 'rollout: { timeout: 120s, concurrency: %s, on_failure: rollback }\nclusters:\n' "$2"
    for c in $(if [ -n "${3:-}" ]; then tr , ' ' <<<"$3"; else seq -f "bench-%g" 1 "$2"; fi); do
      printf '  - context: %s\n    global: { cloud: true, env: prod, region: us-central1, clusterName: %s }\n' "$c" "$c"
    done
  } >"$1/environments/bench.yaml"
}

# CPU seconds (user + system) used so far by every process of the fleet (API servers,
# controller-managers, kubelets, etcd, Vault): how much of a run's wall time the
# fleet's own work took on the machine's cores.
fleet_cpu() {
  local f pid ticks=0
  for f in "$FLEET_DIR"/pids/*.pid; do
    pid=$(cut -d' ' -f1 "$f")
    ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
load_line() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc), $(date -u +%Y-%m-%dT%H:%M:%SZ)"; }

# Runs a command, appending `scenario<TAB>tool<TAB>seconds<TAB>peak RSS KiB<TAB>CPU s` to
# the samples file $SAMPLES. `--rss` measures the command's peak RSS (/usr/bin/time's
# "Maximum resident set size": the command's own process, not its children's sum) and
# its CPU seconds (user + system; "-" without `--rss`); `--fail`
# expects a non-zero exit (a failing deploy), anything else a zero one. The command's
# output is in $BENCH_LOG.last until the next sample, and appended to $BENCH_LOG.
sample() { # [--rss] [--fail] scenario tool -- command...
  local rss=0 fail=0 scenario tool start status=0 took kb=- cpu=-
  while :; do
    case "$1" in
      --rss) rss=1; shift ;;
      --fail) fail=1; shift ;;
      *) break ;;
    esac
  done
  scenario=$1 tool=$2; shift 3
  local timefile="$BENCH_LOG.time"
  start=$(now)
  if [ "$rss" = 1 ]; then
    /usr/bin/time -f '%M %U %S' -o "$timefile" "$@" >"$BENCH_LOG.last" 2>&1 || status=$?
  else
    "$@" >"$BENCH_LOG.last" 2>&1 || status=$?
  fi
  took=$(elapsed "$start")
  cat "$BENCH_LOG.last" >>"$BENCH_LOG"
  if { [ "$fail" = 1 ] && [ "$status" = 0 ]; } || { [ "$fail" = 0 ] && [ "$status" != 0 ]; }; then
    echo "$scenario / $tool: unexpected exit status $status; the end of $BENCH_LOG:" >&2
    tail -n 40 "$BENCH_LOG" >&2
    return 1
  fi
  # /usr/bin/time writes "Command exited with non-zero status N" first on a failure.
  if [ "$rss" = 1 ]; then
    read -r kb cpu < <(tail -n 1 "$timefile" | awk '{ print $1, $2 + $3 }')
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$scenario" "$tool" "$took" "$kb" "$cpu" >>"$SAMPLES"
}

# The table of the samples: per scenario and tool (flotilla's first), the median
# (min-max) of the seconds, the largest peak RSS, and each tool's median over
# flotilla's in the same scenario.
print_table() { # $1 = samples file
  python3 - "$1" <<'PY'
import collections, statistics, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    scenario, tool, seconds, kb = line.rstrip("\n").split("\t")[:4]
    rows.setdefault(scenario, collections.OrderedDict()).setdefault(tool, []).append(
        (float(seconds), None if kb == "-" else int(kb)))
print(f"{'scenario':<34} {'tool':<40} {'median s (min-max)':<22} {'runs':>4} {'peak RSS MB':>11} {'x flotilla':>10}")
for scenario, tools in rows.items():
    ordered = sorted(tools.items(), key=lambda kv: not kv[0].startswith("flotilla"))
    base = statistics.median(s for s, _ in ordered[0][1])
    for tool, samples in ordered:
        secs = [s for s, _ in samples]
        kbs = [k for _, k in samples if k is not None]
        median = statistics.median(secs)
        span = f"{median:.2f} ({min(secs):.2f}-{max(secs):.2f})"
        rss = f"{max(kbs) / 1024:.0f}" if kbs else "-"
        print(f"{scenario:<34} {tool:<40} {span:<22} {len(secs):>4} {rss:>11} {median / base:>9.2f}x")
PY
}

# The median seconds of one scenario's tool in the samples file ("" when absent); with
# a fourth argument `cpu`, the median of its CPU seconds instead (`sample --rss`).
median_of() { # $1 = samples, $2 = scenario, $3 = tool, [$4 = cpu]
  python3 - "$@" <<'PY'
import statistics, sys
column = 4 if sys.argv[4:] == ["cpu"] else 2
secs = [float(f[column]) for f in (l.rstrip("\n").split("\t") for l in open(sys.argv[1]))
        if f[:2] == [sys.argv[2], sys.argv[3]] and f[column] != "-"]
print(f"{statistics.median(secs):.3f}" if secs else "")
PY
}
