"""Bake the default project and measure what Lightning and the input pipeline cost, side by side.

    make bench                          # or: .venv/bin/python benchmarks/bench.py [--repeats 3]

Every row is a ratio of two things measured in the same run, alternating, after warm-up:

    P1  Lightning step time / manual step time, and Lightning's fixed cost per step   goal <= 1.05
    F1  Fabric step time / manual step time   goal <= 1.03
    B1  the project's Trainer step time / Trainer(barebones=True) step time: what the project's callbacks,
        logger and progress bar add   goal <= 1.03
    F2  F1 priced instead of timed: 1 + what each step line Fabric changes costs over the manual loop's line
        for the same job, each timed apart on a one-weight network (benchmarks/fabric_cost.py) / the manual
        loop's step from P1   goal <= 1.03
    B2  B1 priced instead of timed: 1 + the per-batch time of the callbacks that barebones leaves out / the
        training batch's time, both from Lightning's SimpleProfiler in one run (a shared machine's slow
        spells move B1 by more than its goal; they move both terms of B2 alike)   goal <= 1.03
    P2  compute-only step time / manual end-to-end step time (the input pipeline's share)   goal >= 0.95
    P3  `python train.py --trainer.fast_dev_run true` / `python -c "import lightning, torchvision"`   goal <= 1.6

P1 and P2 are measured at several batch sizes: the fixed costs weigh less as the step grows.
Extra arguments go to every training run (say --trainer.precision bf16-mixed on a GPU).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--logger", "none", "--trainer.enable_model_summary", "false"]


def bake(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(ROOT)],
                   check=True, capture_output=True)
    return out / "digits-classifier"


def python(project: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess:
    # input_cost.py lives here, not beside the project's package: the package comes from PYTHONPATH
    env = {**os.environ, "PYTHONPATH": str(project), "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=capture, text=True,
                          check=True)


def p1(project: Path, batch: int, repeats: int, extra: list[str]) -> dict:
    """ladder/compare.py's own figures: every rung, same config, alternating order, pooled step times."""
    out = project / f"p1-{batch}.json"
    python(project, "-m", "ladder.compare", "--repeats", str(repeats), "--json", str(out), "--plot", "",
           *QUIET, "--data.batch_size", str(batch), "--run_root", "bench-runs", *extra)
    figures = json.loads(out.read_text())
    assert figures["identical"], "the rungs no longer end with the same weights"
    return figures


def p2(project: Path, batch: int, repeats: int, extra: list[str]) -> dict:
    out = project / f"p2-{batch}.json"
    python(project, str(ROOT / "benchmarks" / "input_cost.py"), "--json", str(out), "--repeats", str(repeats),
           *QUIET, "--data.batch_size", str(batch), "--run_root", "bench-runs", *extra)
    return json.loads(out.read_text())


def p3(project: Path, repeats: int) -> dict:
    """Wall time of a whole fast_dev_run, in units of the bare imports; both timed alternately."""
    commands = {
        "imports": ["-c", "import lightning, torchvision"],
        "fast_dev_run": ["train.py", "--trainer.fast_dev_run", "true", "--run_root", "bench-runs"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    python(project, *commands["imports"])  # warm the file cache
    for _ in range(repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            python(project, *command)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {**medians, "ratio": medians["fast_dev_run"] / medians["imports"]}


def f2(project: Path, batch: int, manual_ms: float, extra: list[str]) -> dict:
    """Fabric's step lines priced against the manual loop's, over the manual step (``manual_ms``, P1's)."""
    out = project / f"f2-{batch}.json"
    python(project, str(ROOT / "benchmarks" / "fabric_cost.py"), "--json", str(out), *QUIET,
           "--data.batch_size", str(batch), "--run_root", "bench-runs", *extra)
    figures = json.loads(out.read_text())
    return {**figures, "manual_step_us": 1000 * manual_ms, "ratio": 1 + figures["added_us"] / (1000 * manual_ms)}


def b2(project: Path, batch: int, extra: list[str]) -> dict:
    """What the project's callbacks cost per training batch, by Lightning's SimpleProfiler, against the batch."""
    out = project / "bench-profile"
    python(project, "train.py", *QUIET, "--data.batch_size", str(batch), "--trainer.max_epochs", "3",
           "--test", "false", "--run_root", "bench-runs", "--trainer.profiler", "SimpleProfiler",
           "--trainer.profiler.dirpath", str(out), "--trainer.profiler.filename", f"b2-{batch}", *extra)
    rows = {}  # action: (mean seconds, calls)
    for line in (out / f"fit-b2-{batch}.txt").read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 5 and cells[2].isdigit() and cells[1] != "-":  # the Total row has no mean
            rows[cells[0]] = (float(cells[1]), int(cells[2]))
    batch_s, batches = rows["run_training_batch"]
    # a hook called once per training batch: on_train_batch_*, on_before_backward, on_after_backward, ...
    hooks = {name: mean for name, (mean, calls) in rows.items() if name.startswith("[Callback]") and calls == batches}
    hooks_s = sum(hooks.values())
    return {"batch_us": 1e6 * batch_s, "hooks_us": 1e6 * hooks_s, "ratio": 1 + hooks_s / batch_s,
            "top": sorted(hooks.items(), key=lambda item: -item[1])[:3]}


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU only, {_cores()} cores"
    return f"{date.today()}, {platform.machine()}, {device}, torch {torch.__version__}"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    own, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = bake(Path(tmp))
        rows, ladders = [], {}
        for batch in own.batch_sizes:
            figures = p1(project, batch, own.repeats, extra)
            rows.append(("P1", batch, figures["overhead_ratio"], "<= 1.05", figures["overhead_ratio"] <= 1.05,
                         f"lightning {figures['trainer_ms_per_step']:.3f} ms, manual "
                         f"{figures['manual_ms_per_step']:.3f} ms, fixed cost "
                         f"{figures['trainer_fixed_cost_us_per_step']:+.0f} µs/step"))
            fabric = figures["rungs"]["fabric"]  # the middle rung of the ladder, against the manual loop
            rows.append(("F1", batch, fabric["ratio_to_manual"], "<= 1.03", fabric["ratio_to_manual"] <= 1.03,
                         f"fabric {fabric['ms_per_step']:.3f} ms, {fabric['step_up_us']:+.0f} µs/step above manual"))
            bare, trainer = figures["rungs"]["trainer_barebones"], figures["rungs"]["trainer"]
            ratio = trainer["ratio_to_manual"] / bare["ratio_to_manual"]
            rows.append(("B1", batch, ratio, "<= 1.03", ratio <= 1.03,
                         f"trainer {trainer['ms_per_step']:.3f} ms, barebones {bare['ms_per_step']:.3f} ms, "
                         f"{trainer['step_up_us']:+.0f} µs/step"))
            ladders[batch] = figures["rungs"]
            priced = f2(project, batch, figures["manual_ms_per_step"], extra)
            top = ", ".join(f"{name} {fabric_us - manual_us:+.0f} µs" for name, (fabric_us, manual_us)
                            in sorted(priced["calls_us"].items(), key=lambda item: item[1][1] - item[1][0])[:3])
            rows.append(("F2", batch, priced["ratio"], "<= 1.03", priced["ratio"] <= 1.03,
                         f"Fabric's calls {priced['added_us']:+.0f} µs on a {priced['manual_step_us']:.0f} µs step; "
                         f"most: {top}"))
            priced = b2(project, batch, extra)
            # "[Callback]ModelCheckpoint{'monitor': ...}.on_train_batch_end" -> "ModelCheckpoint.on_train_batch_end"
            top = ", ".join(f"{re.sub(r'{.*}', '', name).removeprefix('[Callback]')} {1e6 * s:.0f} µs"
                            for name, s in priced["top"])
            rows.append(("B2", batch, priced["ratio"], "<= 1.03", priced["ratio"] <= 1.03,
                         f"callbacks {priced['hooks_us']:.0f} µs of a {priced['batch_us']:.0f} µs batch; most: {top}"))
        for batch in own.batch_sizes:
            figures = p2(project, batch, own.repeats, extra)
            rows.append(("P2", batch, figures["ratio"], ">= 0.95", figures["ratio"] >= 0.95,
                         f"compute only {figures['compute_ms']:.3f} ms, end to end {figures['end_to_end_ms']:.3f} ms"))
        figures = p3(project, own.repeats)
        rows.append(("P3", 32, figures["ratio"], "<= 1.6", figures["ratio"] <= 1.6,
                     f"fast_dev_run {figures['fast_dev_run']:.2f} s, imports {figures['imports']:.2f} s"))
    print(f"machine: {machine()}   repeats: {own.repeats}   extra: {' '.join(extra) or '-'}")
    print(f"{'row':<4} {'batch':>5} {'ratio':>7}  {'goal':<8} {'met':<4} detail")
    for name, batch, ratio, goal, met, detail in rows:
        print(f"{name:<4} {batch:>5} {ratio:>7.3f}  {goal:<8} {'yes' if met else 'NO':<4} {detail}")
    print("\nthe ladder (median ms per step; step up from the rung above; ratio to manual):")
    print(f"{'batch':>5} {'rung':<18} {'ms/step':>8} {'step up':>10} {'x manual':>9}")
    for batch, ladder in ladders.items():
        for name, rung in ladder.items():
            step_up = "" if rung["step_up_us"] is None else f"{rung['step_up_us']:+.0f} µs"
            print(f"{batch:>5} {name:<18} {rung['ms_per_step']:>8.3f} {step_up:>10} {rung['ratio_to_manual']:>9.3f}")
    if own.json:
        keys = ("row", "batch", "ratio", "goal", "met", "detail")
        Path(own.json).write_text(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))


if __name__ == "__main__":
    main()
