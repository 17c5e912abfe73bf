#!/usr/bin/env python3
"""Tags each mutant `run` or `unrun` by whether the battery executed its
code, from an lcov file of the battery and `cargo mutants --list --json`.

Usage: scripts/battery-coverage.py BATTERY.lcov MUTANTS.json > mutants.tsv

A mutant is `run` when any line of its span has a nonzero count. A span
with no counted line (a whole function body replaced, say) falls back to
its function's span. Prints `run|unrun<TAB>name` per mutant and, on
stderr, the unrun count per file.
"""
import collections
import json
import sys


def line_counts(path):
    counts = collections.defaultdict(dict)
    source = None
    with open(path) as lcov:
        for line in lcov:
            line = line.strip()
            if line.startswith("SF:"):
                source = line[3:]
            elif line.startswith("DA:") and source:
                number, count = line[3:].split(",")[:2]
                lines = counts[source]
                lines[int(number)] = max(lines.get(int(number), 0), int(count))
    return counts


def main():
    counts = line_counts(sys.argv[1])

    def executed(path, first, last):
        source = next((s for s in counts if s.endswith("/" + path)), None)
        if source is None:
            return None
        seen = [counts[source][n] for n in range(first, last + 1) if n in counts[source]]
        return any(seen) if seen else None

    unrun = collections.Counter()
    with open(sys.argv[2]) as listing:
        mutants = json.load(listing)
    for mutant in mutants:
        span = mutant["span"]
        ran = executed(mutant["file"], span["start"]["line"], span["end"]["line"])
        if ran is None and mutant.get("function"):
            body = mutant["function"]["span"]
            ran = executed(mutant["file"], body["start"]["line"], body["end"]["line"])
        if not ran:
            unrun[mutant["file"]] += 1
        print("run" if ran else "unrun", mutant["name"], sep="\t")
    for path, count in sorted(unrun.items()):
        print(f"{count:4} unrun  {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
