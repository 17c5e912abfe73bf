#!/usr/bin/env python3
"""Per-file table of cargo-mutants runs, for docs/mutation-results.md, and the
record that keeps their outcomes between runs.

Usage:
  scripts/mutation-table.py SOURCE [SOURCE ...]
  scripts/mutation-table.py --record RECORD SOURCE [SOURCE ...]
  scripts/mutation-table.py --resume RECORD OUT_DIR

A SOURCE is a `mutants.out` directory (its outcomes.json) or a record file.
Later sources override earlier ones for the same mutant (a first pass with
the cheap runs, then a second pass over its survivors with the rest of the
battery), so give them in the order they ran.

Without options: prints a Markdown table: per file, mutants, caught,
missed, unviable, timed out, and the share of viable mutants detected
(caught or timed out: a mutant whose battery does not finish within the
timeout loops or blows up the state space, and `berth-check verify` would
not finish either).

--record RECORD: merges the sources into RECORD (a tab-separated file:
outcome, seconds of tests, mutant name; created if missing), so that the
outcomes of many runs, on different days and machines, add up.

--resume RECORD OUT_DIR: writes OUT_DIR/mutants.out/caught.txt and
unviable.txt from RECORD (timed-out mutants listed as caught), so that
`cargo mutants --iterate -o OUT_DIR ...` tests only the mutants the record
has not settled: those it has as missed, and those it does not have (new
code, or code whose lines moved).
"""
import json
import os
import sys
from collections import OrderedDict, defaultdict

KINDS = {
    "CaughtMutant": "caught",
    "MissedMutant": "missed",
    "Unviable": "unviable",
    "Timeout": "timeout",
}
HEADER = "# outcome\tseconds\tmutant (scripts/mutation-table.py --record)\n"


def file_of(name):
    return name.split(":", 1)[0]


def load_outcomes_json(out_dir, outcome):
    with open(os.path.join(out_dir, "outcomes.json")) as f:
        for row in json.load(f)["outcomes"]:
            mutant = row["scenario"]
            if not isinstance(mutant, dict) or "Mutant" not in mutant:
                continue  # the baseline
            seconds = sum(
                phase["duration"]
                for phase in row.get("phase_results", [])
                if phase.get("phase") == "Test"
            )
            kind = KINDS.get(row["summary"], row["summary"])
            outcome[mutant["Mutant"]["name"]] = (kind, round(seconds))


def load_record(path, outcome):
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            kind, seconds, name = line.rstrip("\n").split("\t", 2)
            outcome[name] = (kind, int(seconds))


def load(sources):
    outcome = OrderedDict()
    for source in sources:
        if os.path.isdir(source):
            load_outcomes_json(source, outcome)
        else:
            load_record(source, outcome)
    return outcome


def table(outcome):
    per_file = defaultdict(lambda: defaultdict(int))
    for name, (kind, _) in outcome.items():
        per_file[file_of(name)][kind] += 1
        per_file["all"][kind] += 1
    print("| file | mutants | caught | missed | unviable | timeout | detected of viable |")
    print("|---|---|---|---|---|---|---|")
    for file in sorted(per_file, key=lambda f: (f == "all", f)):
        counts = per_file[file]
        total = sum(counts.values())
        viable = total - counts["unviable"]
        detected = counts["caught"] + counts["timeout"]
        share = f"{100 * detected / viable:.0f} %" if viable else "–"
        name = "**all**" if file == "all" else f"`{file.removeprefix('model/src/')}`"
        print(
            f"| {name} | {total} | {counts['caught']} | {counts['missed']} "
            f"| {counts['unviable']} | {counts['timeout']} | {share} |"
        )


def record(path, sources):
    outcome = load(([path] if os.path.exists(path) else []) + sources)
    with open(path, "w") as f:
        f.write(HEADER)
        for name in sorted(outcome, key=lambda n: (file_of(n), n)):
            kind, seconds = outcome[name]
            f.write(f"{kind}\t{seconds}\t{name}\n")
    print(f"{path}: {len(outcome)} mutants")


def resume(path, out_dir):
    outcome = load([path])
    directory = os.path.join(out_dir, "mutants.out")
    os.makedirs(directory, exist_ok=True)
    settled = {"caught": [], "unviable": []}
    for name, (kind, _) in outcome.items():
        if kind in ("caught", "timeout"):
            settled["caught"].append(name)
        elif kind == "unviable":
            settled["unviable"].append(name)
    for kind, names in settled.items():
        with open(os.path.join(directory, f"{kind}.txt"), "w") as f:
            f.writelines(f"{name}\n" for name in names)
    print(f"{directory}: {len(settled['caught'])} caught, {len(settled['unviable'])} unviable")


def main():
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "--record":
        record(args[1], args[2:])
    elif len(args) == 3 and args[0] == "--resume":
        resume(args[1], args[2])
    elif args and not args[0].startswith("--"):
        table(load(args))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
