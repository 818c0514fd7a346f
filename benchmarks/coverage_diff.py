"""Lines that one coverage run covered and another does not, matched by their text (lines move between runs).

Not a test: it prints what it finds. Give each run's ``coverage json`` file and the tree its paths are
relative to (``benchmarks/coverage.py`` leaves both under its --out: coverage.json and tree/). A line
counts as lost when the file still has a line of that text, every copy of it was covered before, and
none is now; deleted code is not lost. ``--rename OLD=NEW`` maps a moved folder (src/pkg/=pkg/); ``--whole``
matches a line over every file, for code that moved from one file to another.

    python benchmarks/coverage_diff.py before.json before_tree after.json after_tree --rename src/digits_classifier/=digits_classifier/
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path


def covered_texts(report: Path, tree: Path, renames: list[tuple[str, str]]) -> dict[str, dict[str, bool]]:
    """{file: {line text: covered}} where a text is covered when every line with that text ran."""
    files = json.loads(report.read_text())["files"]
    out: dict[str, dict[str, bool]] = {}
    for name, data in files.items():
        lines = (tree / name).read_text().splitlines()
        texts: dict[str, bool] = defaultdict(lambda: True)
        for number in data["executed_lines"]:
            texts[lines[number - 1].strip()] &= True
        for number in data["missing_lines"]:
            texts[lines[number - 1].strip()] = False
        for old, new in renames:
            name = name.replace(old, new, 1) if name.startswith(old) else name
        out[name] = dict(texts)
    return out


def merged(files: dict[str, dict[str, bool]]) -> dict[str, bool]:
    texts: dict[str, bool] = defaultdict(lambda: True)
    for file_texts in files.values():
        for text, covered in file_texts.items():
            texts[text] &= covered
    return dict(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("before_tree", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("after_tree", type=Path)
    parser.add_argument("--rename", action="append", default=[], help="OLD=NEW, a folder the code moved from")
    parser.add_argument("--whole", action="store_true", help="match lines over the whole tree: code moved between files")
    args = parser.parse_args()
    renames = [tuple(pair.split("=", 1)) for pair in args.rename]
    before = covered_texts(args.before, args.before_tree, renames)
    after = covered_texts(args.after, args.after_tree, [])
    if args.whole:  # one file of every line: a line is covered where every copy of it, in any file, ran
        before, after = {"(every file)": merged(before)}, {"(every file)": merged(after)}
    lost = [
        (name, text)
        for name, texts in before.items()
        for text, covered in texts.items()
        if covered and text in after.get(name, {}) and not after[name][text]
    ]
    for name, text in lost:
        print(f"lost: {name}: {text}")
    gone = sorted(set(before) - set(after))
    print(f"{len(lost)} covered lines no longer covered (text still in the file); files gone: {gone or 'none'}")


if __name__ == "__main__":
    main()
