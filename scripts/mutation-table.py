#!/usr/bin/env python3
"""Per-file table of a cargo-mutants run, for docs/verification.md.

Usage: scripts/mutation-table.py OUT_DIR [OUT_DIR ...]

Each OUT_DIR is a `mutants.out` directory. Later directories override
earlier ones for the same mutant (a first pass with the cheap runs, then a
second pass over its survivors with the rest of the battery), so give them
in the order they ran. Prints a Markdown table: per file, mutants, caught,
missed, unviable, timed out, and the share of viable mutants caught.
"""
import json
import sys
from collections import OrderedDict, defaultdict

KINDS = {
    "CaughtMutant": "caught",
    "MissedMutant": "missed",
    "Unviable": "unviable",
    "Timeout": "timeout",
}


def load(out_dirs):
    outcome = OrderedDict()
    for out_dir in out_dirs:
        with open(f"{out_dir}/outcomes.json") as f:
            for row in json.load(f)["outcomes"]:
                mutant = row["scenario"]
                if not isinstance(mutant, dict) or "Mutant" not in mutant:
                    continue  # the baseline
                name = mutant["Mutant"]["name"]
                outcome[name] = (mutant["Mutant"]["file"], KINDS.get(row["summary"], row["summary"]))
    return outcome


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    outcome = load(sys.argv[1:])
    per_file = defaultdict(lambda: defaultdict(int))
    for file, kind in outcome.values():
        per_file[file][kind] += 1
        per_file["all"][kind] += 1
    print("| file | mutants | caught | missed | unviable | timeout | caught of viable |")
    print("|---|---|---|---|---|---|---|")
    for file in sorted(per_file, key=lambda f: (f == "all", f)):
        counts = per_file[file]
        total = sum(counts.values())
        viable = total - counts["unviable"]
        share = f"{100 * counts['caught'] / viable:.0f} %" if viable else "–"
        name = "**all**" if file == "all" else f"`{file.removeprefix('model/src/')}`"
        print(
            f"| {name} | {total} | {counts['caught']} | {counts['missed']} "
            f"| {counts['unviable']} | {counts['timeout']} | {share} |"
        )


if __name__ == "__main__":
    main()
