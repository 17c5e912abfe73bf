#!/usr/bin/env bash
# Compares two builds of berth on the same machine in the same run: for each
# of ROUNDS rounds, each binary in turn starts a fresh local cluster
# (default size, fsync on), `berth bench` books BOOKINGS cabins with one
# client, and the cluster is stopped. Alternating keeps a noisy machine fair
# to both. Prints each run's line and the median bookings/s of each.
#
#   bench/compare.sh OLD_BERTH NEW_BERTH [ROUNDS] [BOOKINGS]
#
# e.g. build the previous commit in a worktree and compare it with this one:
#   git worktree add /tmp/old HEAD~1 && (cd /tmp/old && cargo build --release -p berth)
#   cargo build --release -p berth
#   bench/compare.sh /tmp/old/target/release/berth target/release/berth 5 300
set -euo pipefail
old=${1:?usage: compare.sh OLD_BERTH NEW_BERTH [ROUNDS] [BOOKINGS]}
new=${2:?usage: compare.sh OLD_BERTH NEW_BERTH [ROUNDS] [BOOKINGS]}
rounds=${3:-5}
bookings=${4:-300}
port=${BASE_PORT:-27000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # binary label round
  local dir="$work/$2-$3"
  "$1" cluster up --dir "$dir" --base-port "$port" >"$dir.up" 2>&1 &
  local up=$!
  # Ready once the cluster says so and a first booking goes through.
  until [ -f "$dir/cluster.toml" ] && grep -q 'cluster up' "$dir.up"; do sleep 0.2; done
  for _ in $(seq 100); do
    "$1" bench --config "$dir/cluster.toml" --bookings 1 >/dev/null 2>&1 && break
    sleep 0.2
  done
  local line
  line=$("$1" bench --config "$dir/cluster.toml" --bookings "$bookings" | tail -n 1)
  kill -TERM "$up"; wait "$up" 2>/dev/null || true
  echo "$2 round $3: $line"
  echo "$line" | sed -E 's/.*: ([0-9]+) confirmed bookings\/s.*/\1/' >>"$work/$2.rates"
}

for round in $(seq "$rounds"); do
  run "$old" old "$round"
  run "$new" new "$round"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(median "$work/old.rates"); n=$(median "$work/new.rates")
echo "median confirmed bookings/s: old $o, new $n (new/old $(awk -v o="$o" -v n="$n" 'BEGIN {printf "%.2f", n/o}'))"
