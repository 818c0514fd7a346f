"""Coverage of the baked projects' own code by the template's test suite: the union over every bake it makes.

Not a test: it prints a table and never fails on it. It runs the template's suite (``pytest tests``) under
coverage.py with ``patch = subprocess``, so that every Python process the suite starts is measured: the
baked suites, the entry scripts they run, the torchrun ranks. Only the baked projects' package and entry
scripts count (``*/digits-classifier/`` and the awkwardly named bake, tests omitted). Every bake is mapped onto one tree that holds every
data set's module, so the figure is the union over the bakes.

    python benchmarks/coverage.py                       # the table per file, and the process count
    python benchmarks/coverage.py --out build/coverage -- -k "digits"   # pytest arguments after --
    python benchmarks/coverage.py --default_bake -- -m "not slow"      # the default bake's own quick tier

Each measured process writes one data file, so their count is the count of Python processes that the
suite started and that ended by themselves (a SIGKILLed rank writes none). ``coverage.json`` (and the tree
it is relative to) stay in --out for ``benchmarks/coverage_diff.py``, which lists the lines one run covered
and another does not.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "image_folder")
PROJECT, PACKAGE = "digits-classifier", "digits_classifier"  # the default names
AWKWARD, AWKWARD_PACKAGE = "unicode-quoted-net-s-back", "unicode_quoted_net_s_back"  # test_bake.py's AWKWARD

# Every process measured, its branches too, one data file each.
RUN = """\
[run]
branch = true
parallel = true
patch = subprocess
sigterm = true
data_file = {data}/.coverage
"""
RCFILE = RUN + """\
include =
    */{project}/*
    */{awkward}/*
omit =
    */tests/*
    */site-packages/*

[paths]
package =
    {tree}/{package}/
    */{project}/{package}/
    */{awkward}/{awkward_package}/
project =
    {tree}/
    */{project}/
    */{awkward}/

[report]
show_missing = false
skip_empty = true
precision = 1
"""


def union_tree(out: Path) -> Path:
    """One project tree holding every data set's files: what each bake's paths are mapped onto."""
    tree = out / "tree" / PROJECT
    shutil.rmtree(out / "tree", ignore_errors=True)
    for dataset in DATASETS:
        baked = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out / "bakes" / dataset),
                                  extra_context={"dataset": dataset}, overwrite_if_exists=True))
        shutil.copytree(baked, tree, dirs_exist_ok=True)
    shutil.rmtree(out / "bakes")
    return tree


BAKE_RCFILE = RUN + """\
source = .
omit =
    tests/*

[report]
skip_empty = true
precision = 1
"""


def default_bake(out: Path, pytest_args: list[str]) -> None:
    """The default bake's own suite (or the part ``pytest_args`` select) under coverage, as a user runs it."""
    shutil.rmtree(out / "default", ignore_errors=True)
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out / "default")))
    data = out / "default" / "data"
    data.mkdir()
    rcfile = out / "default" / "coveragerc"
    rcfile.write_text(BAKE_RCFILE.format(data=data))
    command = [sys.executable, "-m", "coverage", "run", f"--rcfile={rcfile}", "-m", "pytest", "-q", *pytest_args]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    suite = subprocess.run(command, cwd=project, env=env, timeout=3600)
    seconds = time.perf_counter() - start
    coverage = [sys.executable, "-m", "coverage"]
    subprocess.run([*coverage, "combine", f"--rcfile={rcfile}", "--quiet"], cwd=project, check=True, timeout=600)
    subprocess.run([*coverage, "report", f"--rcfile={rcfile}"], cwd=project, timeout=600)
    print(f"\nthe default bake's suite: exit {suite.returncode}, {seconds:.0f} s under coverage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=TEMPLATE / "build" / "coverage")
    parser.add_argument("--default_bake", action="store_true", help="the default bake's own pytest instead")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to the template's pytest")
    args = parser.parse_args()
    out = args.out.resolve()
    if args.default_bake:
        return default_bake(out, args.pytest_args)
    data = out / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    tree = union_tree(out)
    rcfile = out / "coveragerc"
    names = {"project": PROJECT, "package": PACKAGE, "awkward": AWKWARD, "awkward_package": AWKWARD_PACKAGE}
    rcfile.write_text(RCFILE.format(data=data, tree=tree, **names))
    # The baked suites' outputs (with every test's duration) stay in out/tmp/*/pytest-output.txt.
    pytest_args = args.pytest_args or ["-q", "-n", "auto", "--dist", "loadgroup", "--timeout", "1500", "--basetemp", str(out / "tmp"), "tests"]
    command = [sys.executable, "-m", "coverage", "run", f"--rcfile={rcfile}", "-m", "pytest", *pytest_args]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    suite = subprocess.run(command, cwd=TEMPLATE, env={**os.environ, "WANDB_MODE": "disabled", "PYTEST_ADDOPTS": "--durations=0", "TEMPLATE_SUITE_TIMEOUT": "3600"}, timeout=4 * 3600)
    minutes = (time.perf_counter() - start) / 60
    processes = len(list(data.glob(".coverage.*")))
    coverage = [sys.executable, "-m", "coverage"]
    subprocess.run([*coverage, "combine", f"--rcfile={rcfile}", "--quiet"], cwd=out, check=True, timeout=600)
    subprocess.run([*coverage, "report", f"--rcfile={rcfile}"], cwd=tree, timeout=600)
    # for benchmarks/coverage_diff.py: which lines another run covered that this one does not
    subprocess.run([*coverage, "json", f"--rcfile={rcfile}", "-o", str(out / "coverage.json"), "--quiet"], cwd=tree)
    print(f"\nthe suite: exit {suite.returncode}, {minutes:.1f} min under coverage; "
          f"{processes} measured Python processes (one data file each)")


if __name__ == "__main__":
    main()
