#!/usr/bin/env bash
# berth and etcd side by side on this machine, in the same run, with the
# same durability (every write fsync'd by a quorum's WAL before it is
# acknowledged; both on the same filesystem), the same load generator and
# the same concurrency: `berth bench --clients N` against a fresh default
# berth cluster (3 groups, 2,048 buckets), and bench/etcd-grpc (the same
# load driver, over etcd's native gRPC API; built here, with protoc from
# Debian's protobuf-compiler) with N clients against a fresh 3-member etcd
# cluster from Debian's etcd-server package (both installed if missing),
# plus etcd's own `etcdctl check perf --load=l` once, for reference
# (CHECK_PERF=0 skips its minute). A booking is two writes in
# both: a conditional write (berth's hold; etcd's create-if-absent
# transaction), then a write (the confirm; a put). For each N the two runs
# alternate, ROUNDS times; the table shows the medians and the ratio of
# committed writes per second.
#
#   bench/vs-etcd.sh [BERTH] [CLIENTS...]
#
# e.g. cargo build --release -p berth && bench/vs-etcd.sh target/release/berth 1 16 64 256
# Environment: BOOKINGS per run (default 4000), ROUNDS (default 3),
# HOG=1 keeps one core busy with a busy loop throughout (a shared machine),
# RATE=R runs the open loop at R bookings/s instead of the closed loop,
# KEEP=1 keeps the working directory (logs), BASE_PORT (default 27200).
set -euo pipefail
berth=${1:-target/release/berth}
shift || true
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(1 16 64 256)
bookings=${BOOKINGS:-4000}
rounds=${ROUNDS:-3}
port=${BASE_PORT:-27200}
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}" berth-vs-etcd.XXXXXX)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

if ! command -v etcd >/dev/null || ! command -v protoc >/dev/null; then
  echo "installing etcd and protoc from Debian's packages" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client protobuf-compiler) >&2
fi
here=$(cd "$(dirname "$0")" && pwd)
(cd "$here/etcd-grpc" && cargo build --release --quiet) >&2
etcd_bench="$here/etcd-grpc/target/release/berth-bench-etcd"
if [ "${HOG:-0}" = 1 ]; then
  (while :; do :; done) &
fi

# A 3-member etcd on loopback.
e=$((port + 50))
cluster="e1=http://127.0.0.1:$((e + 10)),e2=http://127.0.0.1:$((e + 11)),e3=http://127.0.0.1:$((e + 12))"
endpoints="http://127.0.0.1:$e,http://127.0.0.1:$((e + 1)),http://127.0.0.1:$((e + 2))"
for i in 0 1 2; do
  etcd --name "e$((i + 1))" --data-dir "$work/etcd-$i" \
    --listen-client-urls "http://127.0.0.1:$((e + i))" --advertise-client-urls "http://127.0.0.1:$((e + i))" \
    --listen-peer-urls "http://127.0.0.1:$((e + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((e + 10 + i))" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token berth-bench \
    >"$work/etcd-$i.log" 2>&1 &
done
for _ in $(seq 150); do
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >&2

# A default berth cluster.
"$berth" cluster up --dir "$work/berth" --base-port "$port" >"$work/berth.up" 2>&1 &
config="$work/berth/cluster.toml"
until [ -f "$config" ] && grep -q 'cluster up' "$work/berth.up"; do sleep 0.2; done
for _ in $(seq 150); do
  "$berth" bench --config "$config" --bookings 1 --patience 1 >/dev/null 2>&1 && break
done

rate=()
[ -n "${RATE:-}" ] && rate=(--rate "$RATE")
field() { sed -E "s/.*\"$2\":([0-9.]+).*/\1/" <<<"$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
results="$work/results"
: >"$results"
for n in "${clients[@]}"; do
  for round in $(seq "$rounds"); do
    for target in berth etcd; do
      if [ "$target" = berth ]; then
        line=$("$berth" bench --config "$config" --clients "$n" --bookings "$bookings" "${rate[@]}" --json 2>/dev/null || true)
      else
        line=$("$etcd_bench" --endpoints "$endpoints" --clients "$n" --bookings "$bookings" "${rate[@]}" --json 2>/dev/null || true)
      fi
      [ -n "$line" ] || { echo "$target at $n clients gave no figures" >&2; continue; }
      echo "$target clients=$n round=$round writes/s=$(field "$line" writes_per_second) p50=$(field "$line" p50_ms) p99=$(field "$line" p99_ms) refused=$(field "$line" refused) timeouts=$(field "$line" timeouts)" >&2
      echo "$target $n $(field "$line" writes_per_second) $(field "$line" p50_ms) $(field "$line" p99_ms) $(field "$line" p999_ms)" >>"$results"
    done
  done
done

printf '%-8s %14s %10s %10s %14s %10s %10s %8s\n' clients "berth writes/s" "p50 ms" "p99 ms" "etcd writes/s" "p50 ms" "p99 ms" ratio
for n in "${clients[@]}"; do
  col() { awk -v t="$1" -v n="$n" -v c="$2" '$1 == t && $2 == n {print $c}' "$results" | median; }
  bw=$(col berth 3); ew=$(col etcd 3)
  printf '%-8s %14.0f %10.2f %10.2f %14.0f %10.2f %10.2f %8.2f\n' "$n" "$bw" "$(col berth 4)" "$(col berth 5)" \
    "$ew" "$(col etcd 4)" "$(col etcd 5)" "$(awk -v b="$bw" -v e="$ew" 'BEGIN {print (e > 0 ? b / e : 0)}')"
done

if [ "${CHECK_PERF:-1}" = 1 ]; then
  echo "etcd's own tool, for reference: etcdctl check perf --load=l (500 clients, up to 8000 puts/s offered, 60 s)"
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" check perf --load=l 2>/dev/null | tr '\r' '\n' | grep -E '^(PASS|FAIL)' || true
fi
