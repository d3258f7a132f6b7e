#!/usr/bin/env bash
# Measures the local fleet: wall time of `flotilla-fleet up` (binaries cached) and the
# resident memory (sum of RSS of every fleet process) for 3 and 10 clusters.
# `--short`: the 3-cluster fleet only. Prints figures; asserts nothing. The apiservers'
# start-up is CPU-bound: `up_s` depends on what else the machine runs (see `uptime`).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=(3 10)
[ "${1:-}" = "--short" ] && sizes=(3)

. scripts/bench-common.sh
bench_build

trap bench_cleanup EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

load_line
printf '%-9s %-10s %-10s %-12s %-14s %-10s %-10s\n' clusters up_s down_s rss_total_MB apiserver_MB_avg kcm_MB_avg kubelet_MB_avg
for n in "${sizes[@]}"; do
  start=$(now)
  fleet_up "$(cluster_names "$n")"
  up_s=$(elapsed "$start")
  total=0; api=0; kcm=0; kubelet=0
  for f in "$FLEET_DIR"/pids/*.pid; do
    pid=$(cut -d' ' -f1 "$f"); kb=$(rss_kb "$pid"); total=$((total + kb))
    case "$(basename "$f")" in
      apiserver-*) api=$((api + kb)) ;;
      controller-manager-*) kcm=$((kcm + kb)) ;;
      kubelet-*) kubelet=$((kubelet + kb)) ;;
    esac
  done
  start=$(now)
  fleet_down
  down_s=$(elapsed "$start")
  printf '%-9s %-10s %-10s %-12d %-14d %-10d %-10d\n' "$n" "$up_s" "$down_s" $((total / 1024)) \
    $((api / 1024 / n)) $((kcm / 1024 / n)) $((kubelet / 1024 / n))
done
