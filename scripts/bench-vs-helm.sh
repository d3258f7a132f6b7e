#!/usr/bin/env bash
# flotilla side by side with Helm 4 and the kubectl floor, on one local fleet, in one run.
# The example release in both forms: releases/hello (Handlebars, secrets from the fleet's
# Vault) and benches/helm-hello (the same five objects as a Helm chart, secrets as values).
# Each repetition runs every tool once, in a rotating order (interleaved), each upgrade
# to a new image tag so that every Deployment rolls out:
#   1 cluster       flotilla deploy | helm upgrade --install --wait | kubectl set image + rollout status
#   N clusters      flotilla deploy | helm over the contexts one after the other | helm on every context at once
#                   | the kubectl floor on every context at once (what the shared cores allow)
#   crashloop on 4  flotilla deploy until every cluster is back and healthy | helm upgrade --rollback-on-failure on one
#   rollback of N   flotilla rollback | helm rollback --wait over the contexts
#   template        flotilla template for 100 clusters | helm template for each
# Then, on a fleet whose clusters are far away (`flotilla-fleet up --rtt`: a latency
# proxy in front of each API server, TLS passing through), at 0, 50 and 150 ms of
# round-trip time on one cluster and on 4 clusters at 20/80/150/250 ms: flotilla | helm
# | the kubectl floor, with the round trips each spent (its extra time over the same tool
# at 0 ms, over the RTT), and flotilla's requests per cluster and those on its critical
# path (from its request log: the longest chain of requests each sent after the one
# before was answered). Last, a 300-object release (3 large CRDs, 200 ConfigMaps, 96
# Services, a Deployment) on 4 clusters at 0 ms and 4 at 150 ms (1 and 1 in --short):
# flotilla | helm | kubectl apply --server-side, each on every context at once.
# Prints one table (median (min-max) of the wall seconds, flotilla's peak RSS, each
# tool over the scenario's first), the targets of the issue with the measured ratios,
# and the failure-detection latency of the crashloop runs. Asserts nothing.
#
# Full mode (default): 5 repetitions (BENCH_RUNS), 4 and 10 clusters, Helm's timeout 60s,
# the release build of flotilla. About 20 minutes (3 repetitions took 12.6 min at load
# 4-7; the Helm crashloop runs alone wait 5 x 60 s, Helm's loops over 10 contexts most of
# the rest), then the far-away part, about 5 minutes (BENCH_RTT_RUNS, 3). `--short` (CI):
# 1 repetition, 4 clusters, Helm's timeout 10s, the dev build, and one far-away row (one
# cluster at 150 ms against 0 ms), then the 300-object part on one cluster at each RTT
# (about 5 minutes: Helm takes 100 s at 150 ms). `--rtt-only`: the far-away part alone;
# `--large-only`: the 300-object part alone (BENCH_LARGE_RUNS, 3).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh

short=0 rtt_only=0 large_only=0
for arg in "$@"; do
  case "$arg" in
    --short) short=1 ;;
    --rtt-only) rtt_only=1 ;;
    --large-only) large_only=1 ;;
    *) echo "usage: $0 [--short] [--rtt-only] [--large-only]" >&2; exit 2 ;;
  esac
done
if [ "$short" = 1 ]; then
  runs=1 sizes=(4) helm_timeout=10s helm_templates=0
  rtt_runs=1 rtt_single=(0 150) rtt_mixed=()
  large_runs=1 large_clusters=1
else
  runs=${BENCH_RUNS:-5} sizes=(4 10) helm_timeout=${BENCH_HELM_TIMEOUT:-60s} helm_templates=1
  rtt_runs=${BENCH_RTT_RUNS:-3} rtt_single=(0 50 150) rtt_mixed=(20 80 150 250)
  large_runs=${BENCH_LARGE_RUNS:-3} large_clusters=4
  # The figures to quote are the optimised build's (its RSS and CPU differ from dev's).
  if [ -z "${FLOTILLA_BIN:-}" ]; then
    cargo build -q --release --bin flotilla
    FLOTILLA="$CARGO_TARGET_DIR/release/flotilla"
  fi
fi
bench_build
. "${FLOTILLA_BINARIES_ENV:-$HOME/.cache/flotilla/binaries.env}"
HELM="${FLOTILLA_HELM:?FLOTILLA_HELM is not set: run scripts/install-deps.sh}"
HELM_CHART="$PWD/benches/helm-hello"
largest=${sizes[-1]}
trap bench_cleanup EXIT

bench_tempdir WORK bench-vs-helm
REPO="$WORK/repo"
SAMPLES="$WORK/samples.tsv"
BENCH_LOG="$WORK/run.log"
: >"$SAMPLES"

fl() { "$FLOTILLA" --root "$REPO" "$@"; }
# `flotilla --root REPO COMMAND hello --env bench --clusters bench-1,...,bench-N`, as a
# command line (for /usr/bin/time, which runs programs, not shell functions).
fl_on() { # $1 = clusters, $2 = command; sets the array FL
  FL=("$FLOTILLA" --root "$REPO" "$2" hello --env bench --clusters "$(cluster_names "$1")")
}
contexts() { seq -f "bench-%g" 1 "$1"; }

helm_upgrade() { # $1 = context, $2 = image tag, then helm's own flags
  local context=$1 tag=$2; shift 2
  "$HELM" upgrade --install hello "$HELM_CHART" --kube-context "$context" --namespace hello-helm \
    --set "image.tag=$tag" --set "global.clusterName=$context" "$@"
}
helm_loop() { # $1 = clusters, $2 = tag
  local c
  for c in $(contexts "$1"); do helm_upgrade "$c" "$2" --wait=watcher --timeout 120s; done
}
helm_parallel() { # $1 = clusters, $2 = tag
  local c pids=() status=0
  for c in $(contexts "$1"); do
    helm_upgrade "$c" "$2" --wait=watcher --timeout 120s &
    pids+=("$!")
  done
  for c in "${pids[@]}"; do wait "$c" || status=1; done
  return "$status"
}
helm_rollback_loop() { # $1 = clusters
  local c
  for c in $(contexts "$1"); do
    "$HELM" rollback hello --kube-context "$c" --namespace hello-helm --wait=watcher --timeout 120s
  done
}
# The least any tool must do on one cluster: a new image on every Deployment, then wait
# for each rollout.
kubectl_floor() { # $1 = tag, [$2 = context]
  local context=${2:-bench-1}
  kubectl --context "$context" -n hello-floor set image deployment --all "*=registry.example.com/hello:$1" &&
    kubectl --context "$context" -n hello-floor rollout status deployment/hello-web --timeout 120s &&
    kubectl --context "$context" -n hello-floor rollout status deployment/hello-worker --timeout 120s
}
# The floor on every context at once: how long the least work takes when N clusters'
# API servers share the machine's cores, as flotilla's N clusters do.
floor_parallel() { # $1 = clusters, $2 = tag
  local c pids=() status=0
  for c in $(contexts "$1"); do
    kubectl_floor "$2" "$c" &
    pids+=("$!")
  done
  for c in "${pids[@]}"; do wait "$c" || status=1; done
  return "$status"
}
helm_templates() { # $1 = clusters
  local c
  for c in $(seq 1 "$1"); do
    "$HELM" template hello "$HELM_CHART" --set "global.clusterName=bench-$c" >/dev/null
  done
}

# Runs the given scenario lines (each a function name) in the order that starts at
# repetition $1 of them: interleaving, so no tool always goes first.
rotated() { # $1 = repetition, then the functions
  local _rep=$1; shift
  local _fns=("$@") _i
  for _i in $(seq 0 $(($# - 1))); do "${_fns[$(((_i + _rep) % $#))]}"; done
}

# Seconds from a pod reported CrashLoopBackOff (the simulated kubelet's log) to the
# cluster's FAILED line, and from that decision to the last "rolling back" line.
detection_latency() { # $1 = flotilla's stderr of the crashloop run
  python3 - "$1" "$FLEET_DIR/logs" <<'PY'
import datetime, glob, re, sys
def t(text):
    text = re.sub(r"(\.\d{6})\d*", r"\1", text.replace("Z", "+00:00"))
    return datetime.datetime.fromisoformat(text)
progress = [l.split(" ", 2) for l in open(sys.argv[1]) if l[:2] == "20"]
failed = [(t(ts), ctx.strip("[]")) for ts, ctx, rest in progress if rest.startswith("FAILED")]
restoring = [t(ts) for ts, ctx, rest in progress if rest.startswith("rolling back")]
if not failed:
    print("n/a n/a"); sys.exit()
decided, cluster = min(failed)
began = min(t(ts) for ts, _, _ in progress)
# This run's pods only: flotilla's namespace, reported after the run began (Helm's
# crashloop runs in its own namespace of the same cluster).
reported = []
for line in open(f"{sys.argv[2]}/kubelet-{cluster}.log"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    m = re.search(r"reported CrashLoopBackOff.*\bpod=hello/\S+.*\bat=(\S+)", line)
    if m:
        reported.append(t(m.group(1)))
first = min((r for r in reported if began <= r <= decided), default=None)
detect = f"{(decided - first).total_seconds():.3f}" if first else "n/a"
start = f"{(max(restoring) - decided).total_seconds():.3f}" if restoring else "n/a"
print(detect, start)
PY
}

# --- Far away: the same upgrade at a round-trip time (the fleet's latency proxies) ---

# `flotilla deploy` with its request log: requests sent and answered, for the
# critical path.
fl_logged() { # $1 = contexts (comma-separated), $2 = version, [more deploy flags]
  FLOTILLA_LOG="warn,flotilla::requests=debug" "$FLOTILLA" --root "$WORK/rtt-repo" deploy hello \
    --env bench --clusters "$1" --version "$2" "${@:3}"
}
helm_at_once() { # $1 = contexts (space-separated), $2 = tag
  local c pids=() status=0
  for c in $1; do
    helm_upgrade "$c" "$2" --wait=watcher --timeout 120s &
    pids+=("$!")
  done
  for c in "${pids[@]}"; do wait "$c" || status=1; done
  return "$status"
}
floor_at_once() { # $1 = contexts (space-separated), $2 = tag
  local c pids=() status=0
  for c in $1; do
    kubectl_floor "$2" "$c" &
    pids+=("$!")
  done
  for c in "${pids[@]}"; do wait "$c" || status=1; done
  return "$status"
}

# From flotilla's request log (its stderr): how many clusters, the requests of the cluster
# that made the most, and the critical path: the longest chain of requests each sent once
# the one before it in the chain was answered (requests in flight together are one
# round), the longest over the clusters.
requests_of() { # $1 = flotilla's output
  python3 - "$1" <<'PY'
import collections, re, sys
spans = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.search(r"cluster=(\S+) start_ms=([\d.]+) end_ms=([\d.]+) answer=(\S+)", line)
    if m:
        spans[m.group(1)].append((float(m.group(2)), float(m.group(3))))
rounds = 0
for requests in spans.values():
    requests.sort(key=lambda r: r[1])
    depth = []
    for start, end in requests:
        before = [d for (s, e), d in zip(requests, depth) if e <= start]
        depth.append(1 + max(before, default=0))
    rounds = max(rounds, max(depth, default=0))
# The most of any one cluster: the freeze is read in every cluster of the environment,
# the clusters not deployed to included, and a mean would count those.
most = max((len(r) for r in spans.values()), default=0)
print(len(spans), most, rounds)
PY
}

rtt_bench() {
  local all names flags c ms rep tag
  all=$(printf '%s\n' "${rtt_single[@]}" "${rtt_mixed[@]}" | sort -n -u | tr '\n' ' ')
  names=$(for ms in $all; do printf 'rtt-%s,' "$ms"; done)
  names=${names%,}
  flags=$(for ms in $all; do [ "$ms" = 0 ] || printf 'rtt-%s=%sms,' "$ms" "$ms"; done)
  flags=${flags%,}
  say "starting a fleet of clusters at round-trip times $all(ms)"
  fleet_up "$names" --rtt "$flags"
  bench_repo "$WORK/rtt-repo" "$(wc -w <<<"$all")" "$names"
  RTT_SAMPLES="$WORK/rtt-samples.tsv" RTT_REQUESTS="$WORK/rtt-requests.tsv"
  : >"$RTT_SAMPLES"; : >"$RTT_REQUESTS"
  say "installing flotilla's release, Helm's and the floor's objects (not measured)"
  fl_logged "$names" v0 --create-namespace >>"$BENCH_LOG" 2>&1
  for c in $(tr , ' ' <<<"$names"); do
    helm_upgrade "$c" v0 --create-namespace --wait=watcher --timeout 120s >>"$BENCH_LOG" 2>&1
    kubectl --context "$c" create namespace hello-floor >>"$BENCH_LOG"
    "$HELM" template hello "$HELM_CHART" --namespace hello-floor --set image.tag=v0 |
      kubectl --context "$c" -n hello-floor apply -f - >>"$BENCH_LOG"
  done
  local mixed_names=""
  for ms in "${rtt_mixed[@]}"; do mixed_names+="rtt-$ms "; done
  mixed_names=${mixed_names% }
  for rep in $(seq 1 "$rtt_runs"); do
    say "far away: repetition $rep of $rtt_runs"
    for ms in "${rtt_single[@]}"; do
      tag="far$rep-$ms"
      scenario="1 cluster at $ms ms"
      r_fl() {
        SAMPLES=$RTT_SAMPLES sample "$scenario" "flotilla deploy" -- fl_logged "rtt-$ms" "$tag"
        printf '%s\t%s\n' "$scenario" "$(requests_of "$BENCH_LOG.last")" >>"$RTT_REQUESTS"
      }
      r_helm() { SAMPLES=$RTT_SAMPLES sample "$scenario" "helm upgrade --install --wait" -- helm_upgrade "rtt-$ms" "$tag" --wait=watcher --timeout 120s; }
      r_floor() { SAMPLES=$RTT_SAMPLES sample "$scenario" "kubectl set image + rollout status" -- kubectl_floor "$tag" "rtt-$ms"; }
      rotated "$rep" r_fl r_helm r_floor
    done
    if [ -n "$mixed_names" ]; then
      tag="far$rep-mixed"
      scenario="4 clusters at $(tr ' ' / <<<"${rtt_mixed[*]}") ms"
      m_fl() {
        SAMPLES=$RTT_SAMPLES sample "$scenario" "flotilla deploy" -- fl_logged "$(tr ' ' , <<<"$mixed_names")" "$tag"
        printf '%s\t%s\n' "$scenario" "$(requests_of "$BENCH_LOG.last")" >>"$RTT_REQUESTS"
      }
      m_helm() { SAMPLES=$RTT_SAMPLES sample "$scenario" "helm on every context at once" -- helm_at_once "$mixed_names" "$tag"; }
      m_floor() { SAMPLES=$RTT_SAMPLES sample "$scenario" "kubectl floor on every context at once" -- floor_at_once "$mixed_names" "$tag"; }
      rotated "$rep" m_fl m_helm m_floor
      # The farthest cluster alone, flotilla only: what the environment is held against.
      far=${rtt_mixed[-1]}
      scenario="1 cluster at $far ms, alone"
      SAMPLES=$RTT_SAMPLES sample "$scenario" "flotilla deploy" -- fl_logged "rtt-$far" "$tag-alone"
      printf '%s\t%s\n' "$scenario" "$(requests_of "$BENCH_LOG.last")" >>"$RTT_REQUESTS"
    fi
  done
  say "stopping the far-away fleet"
  fleet_down
  echo
  echo "far away (a latency proxy in front of each API server, TLS passing through), $rtt_runs repetition(s):"
  print_table "$RTT_SAMPLES"
  echo
  python3 - "$RTT_SAMPLES" "$RTT_REQUESTS" <<'PY'
import collections, re, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    scenario, tool, seconds = line.rstrip("\n").split("\t")[:3]
    times[(scenario, tool)].append(float(seconds))
counts = collections.defaultdict(list)
for line in open(sys.argv[2]):
    scenario, rest = line.rstrip("\n").split("\t")
    clusters, per_cluster, rounds = rest.split()
    counts[scenario].append((float(per_cluster), int(rounds)))
def base(tool):
    key = ("1 cluster at 0 ms", tool)
    return statistics.median(times[key]) if key in times else None
print(f"{'scenario':<42} {'tool':<40} {'median s':>8} {'extra s':>8} {'round trips':>11} {'requests':>9} {'critical path':>13}")
for (scenario, tool), secs in times.items():
    rtts = [int(x) for x in re.findall(r"\d+", scenario.split(" at ")[1].split(" ms")[0])]
    rtt = max(rtts) / 1000
    median = statistics.median(secs)
    zero = base(tool)
    if zero is None and tool.endswith("at once"):
        zero = base({"helm on every context at once": "helm upgrade --install --wait",
                     "kubectl floor on every context at once": "kubectl set image + rollout status"}[tool])
    if zero is None:
        zero = base("flotilla deploy") if tool.startswith("flotilla") else None
    extra = median - zero if zero is not None else None
    trips = f"{extra / rtt:.1f}" if extra is not None and rtt > 0 else "-"
    reqs = crit = "-"
    if tool.startswith("flotilla") and counts.get(scenario):
        reqs = f"{statistics.median(c[0] for c in counts[scenario]):.0f}"
        # On loopback requests hardly overlap: a chain says nothing there.
        if rtt > 0:
            crit = f"{statistics.median(c[1] for c in counts[scenario]):.0f}"
    shown_extra = f"{extra:.2f}" if extra is not None else "-"
    print(f"{scenario:<42} {tool:<40} {median:>8.2f} {shown_extra:>8} {trips:>11} {reqs:>9} {crit:>13}")
print("round trips: the extra time over the same tool on one cluster at 0 ms, over the (farthest) RTT;")
print("requests: flotilla's API requests in the cluster that made the most; critical path: the longest chain of them sent one after the other")
PY
}

# --- A large release: 300 objects (3 large CRDs, 200 ConfigMaps, 96 Services, one
# Deployment), on $large_clusters cluster(s) at 0 ms and as many at 150 ms ---

# The chart, as Helm takes it and flotilla renders it (`helm template`): every upgrade
# changes every ConfigMap (`rev`) and the Deployment's image. Each tool has its own CRDs
# (`group`): a CRD is cluster-wide, and one tool's must not be another's to adopt.
large_chart() { # $1 = folder
  mkdir -p "$1/templates"
  printf 'apiVersion: v2\nname: large\nversion: 0.1.0\nappVersion: "0"\n' >"$1/Chart.yaml"
  printf 'tag: ""\ngroup: flotilla.bench.example\n' >"$1/values.yaml"
  python3 - "$1/templates" <<'PY'
import os, sys
out = sys.argv[1]
tag = '{{ .Values.tag | default .Chart.AppVersion }}'
payload = "x" * 1024
with open(os.path.join(out, "crds.yaml"), "w") as f:
    for i in range(3):
        props = "".join(
            f"                field{j}: {{type: string, description: \"field {j} of a large schema, as operators ship them: {'d' * 60}\"}}\n"
            for j in range(300))
        f.write(f"""---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets{i}.{{{{ .Values.group }}}}
spec:
  group: {{{{ .Values.group }}}}
  scope: Namespaced
  names: {{plural: widgets{i}, singular: widget{i}, kind: Widget{i}}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
{props}""")
with open(os.path.join(out, "configmaps.yaml"), "w") as f:
    for i in range(200):
        f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: large-{i}}}\ndata: {{rev: \"{tag}\", payload: \"{payload}\"}}\n")
with open(os.path.join(out, "services.yaml"), "w") as f:
    for i in range(96):
        f.write(f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: large-{i}}}\nspec: {{selector: {{app: large}}, ports: [{{port: 80, targetPort: 8080}}]}}\n")
with open(os.path.join(out, "deployment.yaml"), "w") as f:
    f.write(f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: large}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: large}}}}
  template:
    metadata: {{labels: {{app: large}}}}
    spec:
      containers: [{{name: app, image: "registry.example.com/large:{tag}"}}]
""")
PY
}

large_bench() {
  local n=$large_clusters c rep tag names0="" names150="" all flags
  for c in $(seq 1 "$n"); do names0+="large0-$c,"; names150+="large150-$c,"; done
  names0=${names0%,} names150=${names150%,}
  all="$names0,$names150"
  flags=$(for c in $(tr , ' ' <<<"$names150"); do printf '%s=150ms,' "$c"; done)
  say "starting a fleet of $n cluster(s) at 0 ms and $n at 150 ms for the 300-object release"
  fleet_up "$all" --rtt "${flags%,}"
  local repo="$WORK/large-repo" chart="$WORK/large-chart"
  bench_repo "$repo" "$((2 * n))" "$all"
  large_chart "$repo/releases/large/chart"
  cp -r "$repo/releases/large/chart" "$chart"
  cat >"$repo/releases/large/release.yaml" <<'YAML'
apiVersion: flotilla/v1
kind: Release
metadata: { name: large, namespace: large }
spec:
  chart: ./chart
  version: "0"
YAML
  LARGE_SAMPLES="$WORK/large-samples.tsv"; : >"$LARGE_SAMPLES"
  fl_large() { # $1 = contexts (comma-separated), $2 = version
    "$FLOTILLA" --root "$repo" deploy large --env bench --clusters "$1" --version "$2" "${@:3}"
  }
  helm_large() { # $1 = contexts (comma-separated), $2 = tag, then helm's own flags
    local c pids=() status=0
    for c in $(tr , ' ' <<<"$1"); do
      "$HELM" upgrade --install large "$chart" --kube-context "$c" --namespace large-helm \
        --set "tag=$2" --set group=helm.bench.example --wait=watcher --timeout 300s "${@:3}" &
      pids+=("$!")
    done
    for c in "${pids[@]}"; do wait "$c" || status=1; done
    return "$status"
  }
  # `kubectl apply --server-side` of the same objects (rendered before the clock starts),
  # then the Deployment's rollout: every context at once.
  kubectl_large() { # $1 = contexts (comma-separated), $2 = rendered file
    local c pids=() status=0
    for c in $(tr , ' ' <<<"$1"); do
      { kubectl --context "$c" -n large-kubectl apply --server-side -f "$2" >/dev/null &&
          kubectl --context "$c" -n large-kubectl rollout status deployment/large --timeout 300s >/dev/null; } &
      pids+=("$!")
    done
    for c in "${pids[@]}"; do wait "$c" || status=1; done
    return "$status"
  }
  render_large() { # $1 = tag; prints the rendered file's path
    "$HELM" template large "$chart" --namespace large-kubectl --set "tag=$1" \
      --set group=kubectl.bench.example >"$WORK/large-$1.yaml"
    echo "$WORK/large-$1.yaml"
  }
  say "installing the 300-object release with each tool (not measured)"
  fl_large "$all" v0 --create-namespace >>"$BENCH_LOG" 2>&1
  helm_large "$all" v0 --create-namespace >>"$BENCH_LOG" 2>&1
  for c in $(tr , ' ' <<<"$all"); do kubectl --context "$c" create namespace large-kubectl >>"$BENCH_LOG"; done
  kubectl_large "$all" "$(render_large v0)" >>"$BENCH_LOG" 2>&1
  for rep in $(seq 1 "$large_runs"); do
    say "300 objects: repetition $rep of $large_runs"
    for names in "$names0" "$names150"; do
      tag="large$rep-${names%%-*}"
      scenario="300 objects, $n cluster(s) at $([ "$names" = "$names0" ] && echo 0 || echo 150) ms"
      file=$(render_large "$tag")
      l_fl() { SAMPLES=$LARGE_SAMPLES sample "$scenario" "flotilla deploy" -- fl_large "$names" "$tag"; }
      l_helm() { SAMPLES=$LARGE_SAMPLES sample "$scenario" "helm upgrade --install --wait" -- helm_large "$names" "$tag"; }
      l_kubectl() { SAMPLES=$LARGE_SAMPLES sample "$scenario" "kubectl apply --server-side" -- kubectl_large "$names" "$file"; }
      rotated "$rep" l_fl l_helm l_kubectl
    done
  done
  say "stopping the fleet of the 300-object release"
  fleet_down
  echo
  echo "a 300-object release (3 large CRDs, 200 ConfigMaps, 96 Services, a Deployment), every tool on each context at once, $large_runs repetition(s):"
  print_table "$LARGE_SAMPLES"
  m() { median_of "$LARGE_SAMPLES" "$@"; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
  echo "targets (issue 29), from the medians above:"
  for ms in 0 150; do
    scenario="300 objects, $n cluster(s) at $ms ms"
    printf '  %-58s %8s  %s\n' "$ms ms: flotilla / kubectl apply --server-side" \
      "$(ratio "$(m "$scenario" "flotilla deploy")" "$(m "$scenario" "kubectl apply --server-side")")" "target <= 1.2"
    printf '  %-58s %8s  %s\n' "$ms ms: helm / flotilla" \
      "$(ratio "$(m "$scenario" "helm upgrade --install --wait")" "$(m "$scenario" "flotilla deploy")")" "target >= 3"
  done
}

if [ "$rtt_only" = 0 ] && [ "$large_only" = 0 ]; then
echo "flotilla vs Helm $("$HELM" version --short 2>/dev/null) on $largest clusters of Kubernetes $("$FLEET_BIN" --version 2>/dev/null | head -1 || true)"
echo "$(load_line); $runs repetitions; flotilla: $FLOTILLA"
say "starting a fleet of $largest clusters"
fleet_up "$(cluster_names "$largest")"
bench_repo "$REPO" "$largest"
bench_repo "$WORK/template-repo" 100

say "installing flotilla's release, Helm's and the floor's objects (not measured)"
# Installs, not measured: flotilla's release, Helm's, and the floor's objects.
fl_on "$largest" deploy; "${FL[@]}" --create-namespace --version v0 >>"$BENCH_LOG" 2>&1
for c in $(contexts "$largest"); do
  helm_upgrade "$c" v0 --create-namespace --wait=watcher --timeout 120s >>"$BENCH_LOG" 2>&1
done
for c in $(contexts "$largest"); do
  kubectl --context "$c" create namespace hello-floor >>"$BENCH_LOG"
  "$HELM" template hello "$HELM_CHART" --namespace hello-floor --set image.tag=v0 |
    kubectl --context "$c" -n hello-floor apply -f - >>"$BENCH_LOG"
done
floor_parallel "$largest" v0 >>"$BENCH_LOG"

latencies="$WORK/latency.txt"
: >"$latencies"
: >"$WORK/fleet-cpu.tsv"
for rep in $(seq 1 "$runs"); do
  say "repetition $rep of $runs"
  tag="r$rep"
  one_fl() { fl_on 1 deploy; sample --rss "1 cluster" "flotilla deploy" -- "${FL[@]}" --version "$tag-1"; }
  one_helm() { sample "1 cluster" "helm upgrade --install --wait" -- helm_upgrade bench-1 "$tag-1" --wait=watcher --timeout 120s; }
  one_floor() { sample "1 cluster" "kubectl set image + rollout status" -- kubectl_floor "$tag-1"; }
  rotated "$rep" one_fl one_helm one_floor
  for n in "${sizes[@]}"; do
    many_fl() {
      fl_on "$n" deploy
      local cpu
      cpu=$(fleet_cpu)
      sample --rss "$n clusters" "flotilla deploy" -- "${FL[@]}" --version "$tag-$n"
      printf '%s\t%s\n' "$n" "$(awk -v a="$cpu" -v b="$(fleet_cpu)" 'BEGIN { print b - a }')" >>"$WORK/fleet-cpu.tsv"
    }
    many_loop() { sample "$n clusters" "helm loop over contexts" -- helm_loop "$n" "$tag-$n-loop"; }
    many_par() { sample "$n clusters" "helm on every context at once" -- helm_parallel "$n" "$tag-$n-par"; }
    many_floor() { sample "$n clusters" "kubectl floor on every context at once" -- floor_parallel "$n" "$tag-$n"; }
    rotated "$rep" many_fl many_loop many_par many_floor
    # One more flotilla deployment on these clusters (not measured), so that the
    # rollback goes back to the one above, on every cluster of the run. Helm's goes back
    # from its second upgrade above to its first.
    fl_on "$n" deploy
    "${FL[@]}" --version "$tag-$n-again" >>"$BENCH_LOG" 2>&1
    back_fl() { fl_on "$n" rollback; sample --rss "rollback of $n" "flotilla rollback" -- "${FL[@]}"; }
    back_helm() { sample "rollback of $n" "helm rollback per context" -- helm_rollback_loop "$n"; }
    rotated "$rep" back_fl back_helm
  done
  crash_fl() {
    fl_on 4 deploy
    sample --rss --fail "crashloop on 4, until all healthy" "flotilla deploy (rollback)" -- \
      "${FL[@]}" --version "$tag-c" --set breakIn=bench-1
    detection_latency "$BENCH_LOG.last" >>"$latencies"
  }
  crash_helm() {
    sample --fail "crashloop on 4, until all healthy" "helm --rollback-on-failure (1 cluster)" -- \
      helm_upgrade bench-1 crashloop --rollback-on-failure --timeout "$helm_timeout"
  }
  rotated "$rep" crash_fl crash_helm
  sample --rss "template, 100 clusters" "flotilla template" -- "$FLOTILLA" --root "$WORK/template-repo" template hello --env bench
  [ "$helm_templates" = 0 ] || sample "template, 100 clusters" "helm template per cluster" -- helm_templates 100
done

say "stopping the fleet"
fleet_down
echo
print_table "$SAMPLES"
echo
m() { median_of "$SAMPLES" "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo "targets (issue 17), from the medians above:"
printf '  %-58s %8s  %s\n' "1 cluster: flotilla / kubectl floor" \
  "$(ratio "$(m "1 cluster" "flotilla deploy")" "$(m "1 cluster" "kubectl set image + rollout status")")" "target <= 1.2"
printf '  %-58s %8s  %s\n' "1 cluster: helm / flotilla" \
  "$(ratio "$(m "1 cluster" "helm upgrade --install --wait")" "$(m "1 cluster" "flotilla deploy")")" "target >= 3"
printf '  %-58s %8s  %s\n' "1 cluster: flotilla's own CPU, s (user + system)" \
  "$(m "1 cluster" "flotilla deploy" cpu)" "of $(m "1 cluster" "flotilla deploy") s wall"
for n in "${sizes[@]}"; do
  printf '  %-58s %8s  %s\n' "$n clusters: flotilla / flotilla on 1 cluster" \
    "$(ratio "$(m "$n clusters" "flotilla deploy")" "$(m "1 cluster" "flotilla deploy")")" "target <= 1.3 at 4"
  printf '  %-58s %8s  %s\n' "$n clusters: helm loop / flotilla" \
    "$(ratio "$(m "$n clusters" "helm loop over contexts")" "$(m "$n clusters" "flotilla deploy")")" "target >= 3 at 4, >= 8 at 10"
  printf '  %-58s %8s  %s\n' "$n clusters: helm at once / flotilla" \
    "$(ratio "$(m "$n clusters" "helm on every context at once")" "$(m "$n clusters" "flotilla deploy")")" "target >= 1"
  printf '  %-58s %8s  %s\n' "$n clusters: kubectl floor at once / floor on 1 cluster" \
    "$(ratio "$(m "$n clusters" "kubectl floor on every context at once")" "$(m "1 cluster" "kubectl set image + rollout status")")" "the shared cores' part: the least work slows down as much"
  printf '  %-58s %8s  %s\n' "$n clusters: flotilla / kubectl floor at once" \
    "$(ratio "$(m "$n clusters" "flotilla deploy")" "$(m "$n clusters" "kubectl floor on every context at once")")" "flotilla's own part at this size"
  printf '  %-58s %8s  %s\n' "$n clusters: flotilla's own CPU, s (user + system)" \
    "$(m "$n clusters" "flotilla deploy" cpu)" "of $(m "$n clusters" "flotilla deploy") s wall"
done
python3 - "$WORK/fleet-cpu.tsv" "$SAMPLES" <<'PY'
import collections, statistics, sys
cpu = collections.defaultdict(list)
for line in open(sys.argv[1]):
    n, seconds = line.split()
    cpu[n].append(float(seconds))
for n, values in cpu.items():
    wall = statistics.median(float(l.split("\t")[2]) for l in open(sys.argv[2])
                             if l.split("\t")[:2] == [f"{n} clusters", "flotilla deploy"])
    busy = statistics.median(values)
    print(f"  {n + ' clusters: the fleet CPU during flotilla deploy, s':<58} {busy:>8.2f}  "
          f"over {wall:.2f} s wall: {busy / wall:.1f} cores busy with the fleet's work")
PY
printf '  %-58s %8s  %s\n' "crashloop on 4: flotilla until all back and healthy, s" \
  "$(m "crashloop on 4, until all healthy" "flotilla deploy (rollback)")" "target <= 3"
python3 - "$latencies" <<'PY'
import statistics, sys
pairs = [l.split() for l in open(sys.argv[1]) if l.strip()]
for i, (name, target) in enumerate([("detection: CrashLoopBackOff reported -> cluster failed, s", "<= 0.5"),
                                    ("restores: cluster failed -> last restore started, s", "<= 0.2")]):
    vals = [float(p[i]) for p in pairs if p[i] != "n/a"]
    shown = f"{statistics.median(vals):.3f}" if vals else "n/a"
    print(f"  {name:<58} {shown:>8}  target {target} ({len(vals)} runs)")
PY
fi
if [ "$large_only" = 0 ] && [ "${#rtt_single[@]}" -gt 0 ]; then
  [ "$rtt_only" = 0 ] || echo "$(load_line); flotilla: $FLOTILLA"
  rtt_bench
fi
if [ "$rtt_only" = 0 ]; then
  [ "$large_only" = 0 ] || echo "$(load_line); flotilla: $FLOTILLA"
  large_bench
fi
echo "$(load_line) (at the end)"
