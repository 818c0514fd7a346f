"""Every data set's bake, each with a logger, and its whole suite (`pytest -n 2`, both tiers): a table of them.

    python scripts/test_all.py [--datasets mnist image_folder] [--output_dir build/test-all]

`make test` runs the default bake's whole suite and the quick tier of the others; this runs every whole
suite, one after the other (each takes both cores). It prints bake, passed, failed, time, and exits 1 if
any suite failed. Each suite's output is kept in its bake's directory, pytest-output.txt.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
DATASETS, LOGGERS = CONTEXT["dataset"], CONTEXT["logger"]
SUITE_LIMIT = 1800  # seconds: about 3 times the slowest whole suite, beside nothing else


def bakes() -> list[tuple[str, str]]:
    """Each data set with a logger, every logger at least once: the pairs `make test` bakes."""
    return [(dataset, LOGGERS[i % len(LOGGERS)]) for i, dataset in enumerate(DATASETS)]


def count(word: str, summary: str) -> int:
    found = re.search(rf"(\d+) {word}", summary)
    return int(found.group(1)) if found else 0


def run_suite(dataset: str, logger: str, output_dir: Path) -> dict:
    """Bake, then run the bake's whole suite; what its summary line says, and how long it took."""
    where = output_dir / f"{dataset}-{logger}"
    shutil.rmtree(where, ignore_errors=True)
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(where), extra_context={
        "dataset": dataset, "logger": logger}))
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider"]
    start = time.monotonic()
    try:
        result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=SUITE_LIMIT)
        out, code = result.stdout + result.stderr, result.returncode
    except subprocess.TimeoutExpired as expired:
        out, code = f"{expired.stdout or ''}\nran past {SUITE_LIMIT} s", -1
    seconds = time.monotonic() - start
    (where / "pytest-output.txt").write_text(out, encoding="utf-8")
    summary = (out.strip().splitlines() or [""])[-1]
    failed = count("failed", summary) + count("error", summary)
    return {"bake": f"dataset={dataset} logger={logger}", "passed": count("passed", summary), "failed": failed,
            "code": code, "seconds": seconds, "failures": re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=DATASETS)
    parser.add_argument("--output_dir", type=Path, default=TEMPLATE / "build" / "test-all")
    own = parser.parse_args()
    rows = [run_suite(dataset, logger, own.output_dir) for dataset, logger in bakes() if dataset in own.datasets]
    print("\n| bake | passed | failed | time |\n|---|---|---|---|")
    for row in rows:
        minutes, seconds = divmod(round(row["seconds"]), 60)
        print(f"| {row['bake']} | {row['passed']} | {row['failed']} | {minutes} min {seconds:02d} s |")
    for row in rows:
        for failure in row["failures"]:
            print(f"{row['bake']}: {failure}")
    sys.exit(1 if any(row["code"] != 0 for row in rows) else 0)


if __name__ == "__main__":
    main()
