#!/usr/bin/env python3
"""Carries the mutation record across edits that moved lines.

  scripts/mutation-rename.py [--in RECORD]... REV FILE [FILE ...]

cargo-mutants names a mutant by file, line and column. After an edit, a
mutant of an unchanged line has a new name, and the record would test it
again. For each FILE this matches the version at git revision REV line by
line with the working tree's, and rewrites every name in
docs/mutation-outcomes.tsv and docs/mutation-pending.txt that points at a
line which is still there, unchanged, to its new line number. Names of
lines that were changed or removed are dropped (their code is new: the
next pass tests it), and listed on stderr. `--in RECORD` rewrites RECORD
instead (a list of names, or the record's format), e.g. the outcomes of a
pass made on the older code before they are merged.
"""
import difflib
import re
import subprocess
import sys

RECORDS = ["docs/mutation-outcomes.tsv", "docs/mutation-pending.txt"]
NAME = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+):(?P<rest>.*)$")


def line_map(rev, path):
    old = subprocess.run(
        ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    new = open(path).read().splitlines()
    mapping = {}
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, a0, a1, b0, _ in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(a1 - a0):
                mapping[a0 + offset + 1] = b0 + offset + 1
    return mapping


def main():
    args = sys.argv[1:]
    records = []
    while len(args) >= 2 and args[0] == "--in":
        records.append(args[1])
        args = args[2:]
    if len(args) < 2:
        sys.exit(__doc__)
    rev, files = args[0], args[1:]
    maps = {path: line_map(rev, path) for path in files}
    for record in records or RECORDS:
        out = []
        for raw in open(record).read().splitlines():
            fields = raw.split("\t")
            name = fields[-1]
            m = NAME.match(name)
            if raw.startswith("#") or not m or m["file"] not in maps:
                out.append(raw)
                continue
            new_line = maps[m["file"]].get(int(m["line"]))
            if new_line is None:
                print(f"dropped (line changed): {name}", file=sys.stderr)
                continue
            fields[-1] = f"{m['file']}:{new_line}:{m['col']}:{m['rest']}"
            out.append("\t".join(fields))
        with open(record, "w") as f:
            f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
