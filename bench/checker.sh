#!/usr/bin/env bash
# The model checker's speed and memory, side by side with Stateright's own
# Paxos example (`check-bfs 3` and `check-dfs 3`) in the same run, since
# this machine is noisy. For each of ROUNDS rounds, Paxos and then each
# berth scenario run once, breadth-first and depth-first,
# every run pinned to one core (so each checker uses one thread: the Paxos
# example takes as many threads as it may use cores). Prints each run's
# unique states, seconds, unique states per second, peak memory and peak
# memory per unique state, then the median of each over the rounds and
# berth's unique states per second as a ratio of Paxos's with the same
# strategy.
#
#   bench/checker.sh [BERTH_CHECK] [ROUNDS] [SCENARIO...]
#
# e.g. cargo build --release -p berth-checker && bench/checker.sh target/release/berth-check 3
# SCENARIO is a quoted set of `berth-check check` flags, by default the
# standard scenarios: replication, failover and cutover (each run with
# `--strategy bfs` and with `--strategy dfs`).
set -euo pipefail
berth=${1:-target/release/berth-check}
rounds=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("--scenario replication" "--scenario failover" "--scenario cutover")
cpu=${BENCH_CPU:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Stateright's Paxos example, built from the same Stateright this
# workspace uses (its source is in cargo's registry once fetched).
manifest=$(cargo metadata --format-version 1 | python3 -c '
import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "stateright"))')
# Built once, in its own target directory (its warnings are not ours).
paxos_src="$work/stateright"
cp -r "$(dirname "$manifest")" "$paxos_src"
paxos_target="$(pwd)/target/bench-paxos"
(cd "$paxos_src" && RUSTFLAGS=-Awarnings CARGO_TARGET_DIR="$paxos_target" \
  cargo build --quiet --release --example paxos)
paxos="$paxos_target/release/examples/paxos"

# run LABEL COMMAND...: one pinned run; appends "label unique seconds peak_kb".
run() {
  local label=$1; shift
  local out="$work/out" time="$work/time"
  /usr/bin/time -f '%e %M' -o "$time" taskset -c "$cpu" "$@" >"$out" 2>&1 || true
  local unique
  # Paxos: "Done. states=…, unique=N, …"; berth-check: "N unique states, …".
  unique=$(grep -oE 'unique=[0-9]+' "$out" | tail -n 1 | cut -d= -f2 || true)
  [ -n "$unique" ] || unique=$(grep -oE '^[0-9]+ unique states' "$out" | tail -n 1 | cut -d' ' -f1)
  read -r seconds peak <"$time"
  echo "$label $unique $seconds $peak" >>"$work/runs"
  awk -v l="$label" -v u="$unique" -v s="$seconds" -v p="$peak" 'BEGIN {
    printf "%-55s %10d unique %8.1f s %9.0f unique/s %7.0f MiB %6.0f B/unique\n",
      l, u, s, u / s, p / 1024, p * 1024 / u }'
}

for round in $(seq "$rounds"); do
  echo "round $round"
  for strategy in bfs dfs; do
    run "paxos check-$strategy 3" "$paxos" "check-$strategy" 3
    for flags in "${scenarios[@]}"; do
      # shellcheck disable=SC2086 # the flags are words on purpose
      run "berth $flags --strategy $strategy" "$berth" check $flags --strategy "$strategy"
    done
  done
done

echo
echo "median of $rounds rounds:"
awk '{ key = $1; for (i = 2; i <= NF - 3; i++) key = key " " $i
       n[key]++; u[key, n[key]] = $(NF - 2); s[key, n[key]] = $(NF - 1); p[key, n[key]] = $NF
       if (!(key in seen)) { seen[key] = 1; order[++keys] = key } }
  function median(arr, key, count,   i, j, t, v) {
    for (i = 1; i <= count; i++) v[i] = arr[key, i]
    for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((count + 1) / 2)] }
  END {
    for (k = 1; k <= keys; k++) {
      key = order[k]; c = n[key]
      for (i = 1; i <= c; i++) rate[key, i] = u[key, i] / s[key, i]
      r = median(rate, key, c); if (key ~ /^paxos/) paxos = r
      printf "%-55s %10d unique %8.1f s %9.0f unique/s (%.2fx paxos) %7.0f MiB %6.0f B/unique\n",
        key, u[key, 1], median(s, key, c), r, r / paxos, median(p, key, c) / 1024,
        median(p, key, c) * 1024 / u[key, 1] }
  }' "$work/runs"
