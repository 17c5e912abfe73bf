#!/usr/bin/env bash
# Which lines of the protocol does the standard battery never execute?
# A mutant there survives for certain (the battery cannot see a change to
# code it never runs), so each such line is a missing scenario, code only
# the runtime or a test calls, or dead code (docs/mutation-results-2026-12-06.md,
# "What the battery never runs").
#
# Usage: scripts/battery-coverage.sh [OUT_DIR] [VERIFY_ARGS...]
#   OUT_DIR      default target/battery-coverage
#   VERIFY_ARGS  passed to `berth-check verify` (default: --only correct)
#
# Needs the llvm-tools component (`rustup component add llvm-tools`) and
# cargo-mutants (for the list of mutants). Builds an instrumented
# berth-check in OUT_DIR/target (a few minutes), runs the battery with it
# (slower than usual), and writes:
#   OUT_DIR/battery.lcov      line counts of the whole run
#   OUT_DIR/mutants.tsv       every mutant of .cargo/mutants.toml's files:
#                             run | unrun, then its name
#   OUT_DIR/unrun.txt         the unrun mutants' names, one per line
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/target/battery-coverage}")
shift || true
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--only correct)
sysroot=$(rustc --print sysroot)
tools=$(echo "$sysroot"/lib/rustlib/*/bin)
[ -x "$tools/llvm-profdata" ] || {
  echo "llvm-profdata not found in $tools: rustup component add llvm-tools" >&2
  exit 2
}
mkdir -p "$out"
rm -rf "$out/profiles"
cd "$root"
# Build scripts and proc macros are instrumented too: keep their profiles
# out of the working tree.
LLVM_PROFILE_FILE="$out/profiles/build-%p-%m.profraw" \
  RUSTFLAGS="-C instrument-coverage" CARGO_TARGET_DIR="$out/target" \
  cargo build --release -p berth-checker --bin berth-check
rm -f "$out"/profiles/build-*.profraw
LLVM_PROFILE_FILE="$out/profiles/verify-%p-%m.profraw" \
  "$out/target/release/berth-check" verify "${args[@]}" >&2 || {
  echo "the battery failed: coverage of a failing run is not the battery's" >&2
  exit 1
}
"$tools/llvm-profdata" merge -sparse "$out"/profiles/*.profraw -o "$out/battery.profdata"
"$tools/llvm-cov" export --format=lcov --instr-profile="$out/battery.profdata" \
  "$out/target/release/berth-check" > "$out/battery.lcov"
cargo mutants --list --json > "$out/mutants.json"
python3 "$root/scripts/battery-coverage.py" "$out/battery.lcov" "$out/mutants.json" \
  > "$out/mutants.tsv"
awk -F'\t' '$1 == "unrun" { print $2 }' "$out/mutants.tsv" > "$out/unrun.txt"
echo "$(wc -l < "$out/unrun.txt") mutants on lines the battery never runs: $out/unrun.txt" >&2
