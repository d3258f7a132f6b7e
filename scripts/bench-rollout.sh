#!/usr/bin/env bash
# Measures flotilla on a local fleet of 1, 3 and 10 clusters (all in one wave):
#   deploy_s    wall time of an upgrade of every cluster (`flotilla deploy`, healthy)
#   rollback_s  from the first cluster reported failed (a crashloop image in one cluster)
#               to the last cluster rolled back and healthy again
#   failed_run_s wall time of that failing deploy, rollback included
# `--short`: 1 and 3 clusters only (CI). Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=(1 3 10)
[ "${1:-}" = "--short" ] && sizes=(1 3)

. scripts/bench-common.sh
bench_build
trap bench_cleanup EXIT

# A deployment repo with one release whose image tag turns to `crashloop` in one cluster
# when `--set breakIn=CLUSTER` is given, and one secret from the fleet's Vault.
make_repo() { # $1 = dir, $2.. = clusters
  local root=$1; shift
  mkdir -p "$root/environments" "$root/releases/hello/chart/templates"
  {
    printf 'name: prod\nvault:\n  auth: { method: token }\n  kv: { mount: kv, version: 1 }\n'
    printf 'rollout: { timeout: 60s, concurrency: 10, on_failure: rollback }\nclusters:\n'
    for c in "$@"; do
      printf '  - context: %s\n    global: { cloud: true, env: prod, region: r, clusterName: %s }\n' "$c" "$c"
    done
  } >"$root/environments/prod.yaml"
  cat >"$root/releases/hello/release.yaml" <<'YAML'
apiVersion: flotilla/v1
kind: Release
metadata: { name: hello, namespace: bench }
spec:
  chart: ./chart
  version: v1
  secrets:
    - secret_id: db-password
      contexts:
        - { name: default, vaultPath: "kv/{{global.env}}/hello/db", vaultKey: password }
YAML
  printf 'name: hello\nversion: 0.1.0\n' >"$root/releases/hello/chart/Chart.yaml"
  printf 'breakIn: none\n' >"$root/releases/hello/chart/values.yaml"
  cat >"$root/releases/hello/chart/templates/deployment.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: { name: hello-web }
spec:
  replicas: 2
  selector: { matchLabels: { app: hello-web } }
  template:
    metadata: { labels: { app: hello-web } }
    spec:
      containers:
        - name: web
          image: "registry.local/hello:{{#if (eq Values.global.clusterName Values.breakIn)}}crashloop{{else}}{{Release.Version}}{{/if}}"
YAML
  printf 'apiVersion: v1\nkind: Secret\nmetadata: { name: hello-db }\ntype: Opaque\ndata:\n  password: {{b64enc Values.secrets.[db-password]}}\n' \
    >"$root/releases/hello/chart/templates/secret.yaml"
}

# Seconds from the first "FAILED" progress line to the last "rolled back" one.
rollback_span() {
  python3 -c '
import sys, datetime
t = lambda l: datetime.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
lines = [l for l in open(sys.argv[1]) if l[:2] == "20"]
failed = [t(l) for l in lines if "] FAILED" in l]
back = [t(l) for l in lines if "] rolled back" in l]
print("%.1f" % (max(back) - min(failed)).total_seconds() if failed and back else "n/a")
' "$1"
}

printf '%-9s %-10s %-11s %-12s\n' clusters deploy_s rollback_s failed_run_s
for n in "${sizes[@]}"; do
  bench_tempdir REPO bench-repo
  names=$(cluster_names "$n")
  fleet_up "$names"
  make_repo "$REPO" ${names//,/ }
  fl() { "$FLOTILLA" --root "$REPO" "$@"; }
  fl deploy hello --env prod --create-namespace >/dev/null 2>&1                 # install: not measured
  start=$(date +%s.%N)
  fl deploy hello --env prod --version v2 >/dev/null 2>"$REPO/deploy.log"
  deploy_s=$(elapsed "$start")
  start=$(date +%s.%N)
  if fl deploy hello --env prod --version v3 --set breakIn=bench-1 >/dev/null 2>"$REPO/fail.log"; then
    echo "the crashloop deploy succeeded: see $REPO/fail.log" >&2; exit 1
  fi
  failed_s=$(elapsed "$start")
  printf '%-9s %-10s %-11s %-12s\n' "$n" "$deploy_s" "$(rollback_span "$REPO/fail.log")" "$failed_s"
  fleet_down
done
