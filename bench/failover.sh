#!/usr/bin/env bash
# Failover time of a local cluster, as a user sees it: for each of RUNS
# runs, start a fresh cluster of BUCKETS buckets (fsync on), book one cabin
# on a bucket led by replica 1, `kill -9` replica 1, and time until the
# next booking on one of its buckets is confirmed. With HOG=1 (the
# default) a busy loop keeps one core busy throughout, as another
# process on a shared machine would. Prints each run (seconds to the
# confirmed booking, the epoch changes that bucket went through, the
# controller's peak memory, log lines written during the failover) and
# the median.
#
#   bench/failover.sh [BERTH] [BUCKETS] [RUNS]
#
# e.g. cargo build --release -p berth && bench/failover.sh target/release/berth 2048 5
set -euo pipefail
berth=${1:-target/release/berth}
buckets=${2:-2048}
runs=${3:-5}
port=${BASE_PORT:-27100}
hog=${HOG:-1}
work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

if [ "$hog" = 1 ]; then
  (while :; do :; done) &
fi

run() { # round
  local dir="$work/run-$1"
  mkdir -p "$dir"
  "$berth" cluster up --dir "$dir" --base-port "$port" --buckets "$buckets" >"$dir.up" 2>&1 &
  local up=$!
  local config="$dir/cluster.toml"
  until [ -f "$config" ] && grep -q 'cluster up' "$dir.up"; do sleep 0.2; done
  # Ready once a booking goes through.
  until "$berth" book --config "$config" --trip FAILOVER-BENCH-$1 --cabin A1 --timeout 5 >/dev/null 2>&1; do sleep 0.2; done
  sleep 2 # every replica heard from, followers caught up
  local pid controller lines_before
  pid=$(sed -nE 's/.*pid ([0-9]+) \(log .*replica-1\.log\).*/\1/p' "$dir.up")
  controller=$(sed -nE 's/.*pid ([0-9]+) \(log .*controller\.log\).*/\1/p' "$dir.up")
  lines_before=$(cat "$dir"/logs/*.log 2>/dev/null | wc -l)
  local start end
  start=$(date +%s.%N)
  kill -9 "$pid"
  # Book cabins until one lands on a bucket replica 1 led and is confirmed.
  local n=0 out bucket
  while :; do
    n=$((n + 1))
    out=$("$berth" book --config "$config" --trip FAILOVER-BENCH-$1 --cabin "K$n" --timeout 60 2>&1 || true)
    bucket=$(echo "$out" | sed -nE 's/.*bucket ([0-9]+) at e([0-9]+).*/\1 \2/p' | tail -n 1)
    if echo "$out" | grep -q '^confirmed' && [ "${bucket%% *}" -lt $((buckets / 2)) ]; then
      break
    fi
  done
  end=$(date +%s.%N)
  local epoch=${bucket##* }
  local lines_after mem
  lines_after=$(cat "$dir"/logs/*.log 2>/dev/null | wc -l)
  mem=$(awk '/VmHWM/ {print $2}' "/proc/$controller/status" 2>/dev/null || echo 0)
  printf 'run %s: %.2f s to a confirmed booking on bucket %s (now e%s), controller %d MB, %d log lines since the kill\n' \
    "$1" "$(echo "$end - $start" | bc)" "${bucket%% *}" "$epoch" $((mem / 1024)) $((lines_after - lines_before))
  echo "$end - $start" | bc >>"$work/times"
  kill -TERM "$up"
  wait "$up" 2>/dev/null || true
}

for round in $(seq "$runs"); do
  run "$round"
done
sort -n "$work/times" | awk '{a[NR]=$1} END {printf "median failover (kill -9 to next confirmed booking): %.2f s over %d runs\n", a[int((NR+1)/2)], NR}'
