"""Stress the DDP runs: how many of N runs per data set and per rung pass, fail or hang, under CPU load.

Not a test: it prints a table and never fails on it. It bakes each data set (logger none) and runs the
very commands of the baked ``tests/test_distributed.py`` (its ``ddp_command``, ``DDP_ARGS`` and
``ddp_env``), each through the baked ``tests/bounded.py``: a run past the limit gets every thread of
every process dumped (faulthandler) and, with ``--native``, gdb's native stacks too, all kept in
``--out``. ``--suite`` also runs the DDP test the way the template's own tests do, inside the baked
suite (``pytest tests/test_distributed.py``), N times.

    python benchmarks/stress_ddp.py --runs 50                          # every data set, every rung
    python benchmarks/stress_ddp.py --runs 20 --datasets image_folder --epochs 20 --workers 4 --suite
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
RUNGS = ("manual", "fabric", "trainer")


def bake(dataset: str, out: Path) -> Path:
    shutil.rmtree(out / dataset, ignore_errors=True)
    context = {"dataset": dataset, "logger": "none"}
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out / dataset), extra_context=context))


def load_harness(project: Path):
    """The baked project's own DDP test module and bounded runner, imported from its tests/."""
    sys.path[:0] = [str(project / "tests"), str(project)]
    ours = ("bounded", "conftest", "fake_data", "fakes", "test_distributed", project.name.replace("-", "_"))
    for name in [m for m in sys.modules if m.partition(".")[0] in ours]:
        del sys.modules[name]  # another data set's bake was imported before
    import bounded
    import fake_data
    import test_distributed

    return bounded, fake_data, test_distributed


def native_stacks(pgid: int) -> str:
    """gdb's backtrace of every thread of every process in the group (for locks held in C++)."""
    if shutil.which("gdb") is None:
        return "(no gdb)"
    pids = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    stacks = []
    for pid in pids:
        command = ["gdb", "-p", pid, "-batch", "-ex", "thread apply all bt 30"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        stacks.append(f"===== pid {pid}: {Path(f'/proc/{pid}/cmdline').read_text().replace(chr(0), ' ')[:200]}\n")
        stacks[-1] += "\n".join(line for line in result.stdout.splitlines() if line.startswith(("#", "Thread")))
    return "\n".join(stacks)


def run_once(harness, command: list[str], env: dict[str, str], timeout: float, log: Path, native: bool) -> str:
    """'ok', 'failed' or 'hung'; the output of anything but 'ok' goes to ``log``."""
    bounded = harness[0]
    if native:  # look at the live processes before run_bounded's SIGABRT ends them
        original = bounded.stop_with_stacks

        def stop_with_native_stacks(proc):
            log.with_suffix(".gdb.txt").write_text(native_stacks(proc.pid))
            return original(proc)

        bounded.stop_with_stacks = stop_with_native_stacks
    try:
        result = bounded.run_bounded(command, env, timeout=timeout)
    except BaseException as error:  # pytest.fail's exception: the run hung and its stacks are in the message
        if type(error).__name__ != "Failed":
            raise
        log.write_text(str(error))
        return "hung"
    finally:
        if native:
            bounded.stop_with_stacks = original
    if result.returncode == 0:
        return "ok"
    log.write_text(f"exit {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    return "failed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="runs per data set and rung")
    parser.add_argument("--datasets", default="digits,mnist,fashion_mnist,cifar10,image_folder")
    parser.add_argument("--load", type=int, default=1, help="busy-looping processes beside the runs")
    parser.add_argument("--epochs", type=int, default=2, help="more epochs: more loader workers started per run")
    parser.add_argument("--workers", type=int, default=2, help="loader workers per rank")
    parser.add_argument("--timeout", type=float, default=240, help="seconds before a run counts as hung")
    parser.add_argument("--suite", action="store_true", help="also run the baked DDP test inside pytest N times")
    parser.add_argument("--native", action="store_true", help="on a hang, also keep gdb's native stacks")
    parser.add_argument("--out", default="build/stress", help="bakes, fake data and the logs of failed runs")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    rows = []
    try:
        for dataset in args.datasets.split(","):
            project = bake(dataset, out)
            harness = load_harness(project)
            _, fake_data, test_distributed = harness
            data_dir = fake_data.write(out / dataset / "data")
            logs = out / dataset / "logs"
            logs.mkdir(exist_ok=True)
            epochs = ["--trainer.max_epochs", str(args.epochs), "--data.num_workers", str(args.workers)]
            for rung in RUNGS:
                counts, seconds = Counter(), []
                for i in range(args.runs):
                    run_root = out / dataset / "runs" / f"{rung}-{i}"
                    ddp_args = [*test_distributed.QUICK, *test_distributed.DDP_ARGS, *epochs]
                    ddp_args += ["--data.data_dir", str(data_dir), "--run_root", str(run_root)]
                    command = test_distributed.ddp_command(rung, ddp_args)
                    start = time.perf_counter()
                    log = logs / f"{rung}-{i}.txt"
                    outcome = run_once(harness, command, test_distributed.ddp_env(), args.timeout, log, args.native)
                    counts[outcome] += 1
                    seconds.append(time.perf_counter() - start)
                    shutil.rmtree(run_root, ignore_errors=True)
                    print(f"{dataset} {rung} run {i + 1}/{args.runs}: {outcome} ({seconds[-1]:.1f} s)", flush=True)
                rows.append((dataset, rung, counts, sorted(seconds)[len(seconds) // 2]))
            if args.suite:
                counts, seconds = Counter(), []
                command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_distributed.py"]
                command += ["-k", "bit_identical"]
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                for i in range(args.runs):
                    start = time.perf_counter()
                    log = logs / f"suite-{i}.txt"
                    outcome = run_once(harness, command, env, 3 * args.timeout, log, args.native)
                    if outcome == "failed" and "ran past" in log.read_text():
                        outcome = "hung"  # the DDP test's own bound fired inside the suite
                    counts[outcome] += 1
                    seconds.append(time.perf_counter() - start)
                    print(f"{dataset} suite run {i + 1}/{args.runs}: {outcome} ({seconds[-1]:.1f} s)", flush=True)
                rows.append((dataset, "suite (both)", counts, sorted(seconds)[len(seconds) // 2]))
    finally:
        for hog in hogs:
            hog.kill()
    print(f"\nDDP on 2 processes, {args.epochs} epochs, {args.workers} loader workers per rank, {args.load} busy process(es)")
    print("| data set | rung | runs | ok | failed | hung | median s |")
    print("|---|---|---|---|---|---|---|")
    for dataset, rung, counts, median in rows:
        total = sum(counts.values())
        print(f"| {dataset} | {rung} | {total} | {counts['ok']} | {counts['failed']} | {counts['hung']} | {median:.1f} |")
    print(f"\nlogs of failed and hung runs: {out}/<data set>/logs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
