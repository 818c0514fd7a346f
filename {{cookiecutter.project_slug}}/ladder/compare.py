"""Train on every rung of the ladder (by hand, Fabric, Lightning's Trainer), same config and seed, and compare.

    python -m ladder.compare                          # the defaults; prints the table, writes compare.png
    python -m ladder.compare --json figures.json      # also the figures as JSON, for CI
    python -m ladder.compare --check                  # exit 1 unless every rung's final weights equal the manual loop's
    python -m ladder.compare --repeats 3              # alternate the order, pool the timings: steadier figures
    python -m ladder.compare --rungs manual trainer   # some rungs only (the manual loop is always the reference)
    python -m ladder.compare --trainer.max_epochs 3 --data.batch_size 100   # any option train.py takes
    torchrun --nproc_per_node 2 -m ladder.compare --trainer.devices 2 --trainer.strategy ddp  # on 2 processes

The rungs, each a step up from the one before: the manual loop; Fabric; ``Trainer(barebones=True)``,
Lightning's loop with checkpoints, logging, the progress bar and the sanity check off (for timing only:
it logs nothing to compare); and the project's Trainer, as ``python train.py`` runs it.

Every rung is measured the same way, from outside: a ``StepClock`` stamps each training batch as a
DataLoader hands it out, and a ``History`` logger, passed to each entry's ``main`` as a user would pass a
logger of their own, records what it logs per epoch. No rung's code changes for it.
"""

import json
import statistics
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

_start = time.perf_counter()
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import StrategyRegistry
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import DataLoader

import train
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.cli import ProjectCLI
from {{ cookiecutter.package_name }}.distributed import leave_process_group, with_dist_timeout
from {{ cookiecutter.package_name }}.errors import ArgumentParser, one_line_errors
from {{ cookiecutter.package_name }}.runs import RunResult
from ladder.history import History

IMPORT_S = time.perf_counter() - _start
WARMUP_EPOCHS = 1  # the first epoch pays for allocator growth and first-call dispatch
# Trainer(barebones=True) refuses a logger; its self.log calls are no-ops, by design.
warnings.filterwarnings("ignore", message=r"You are trying to `self.log\(\)` but `Trainer\(barebones=True\)`")


class StepClock:
    """Stamps every batch that any DataLoader hands out, and counts the optimizer's steps.

    It attaches to torch itself (``DataLoader.__iter__`` and torch's optimizer step hook), so it times every
    rung the same way and no rung's code changes for it. A training epoch is a pass over a loader during
    which the optimizer stepped; between two of its stamps lies one whole iteration: fetching, the six
    steps, metrics and every hook.
    """

    def __init__(self) -> None:
        self.passes: list[tuple[list[float], int]] = []  # each loader pass: its stamps, the steps before it
        self.steps = 0

    @contextmanager
    def attached(self) -> Iterator["StepClock"]:
        iterate = DataLoader.__iter__

        def stamped(loader: DataLoader) -> Iterator:
            stamps: list[float] = []
            self.passes.append((stamps, self.steps))
            for batch in iterate(loader):
                stamps.append(time.perf_counter())
                yield batch

        hook = register_optimizer_step_post_hook(self.count)
        DataLoader.__iter__ = stamped
        try:
            yield self
        finally:
            DataLoader.__iter__ = iterate
            hook.remove()

    def count(self, *_) -> None:
        self.steps += 1

    def epochs(self) -> list[list[float]]:
        """The stamps of each training epoch: the passes during which the optimizer stepped."""
        ends = [steps for _, steps in self.passes[1:]] + [self.steps]
        return [stamps for (stamps, start), end in zip(self.passes, ends, strict=True) if end > start]

    def step_times(self) -> list[float]:
        """Seconds per step within each epoch after the warm-up; the gaps across validation are left out."""
        epochs = self.epochs()
        epochs = epochs[WARMUP_EPOCHS:] or epochs  # a one-epoch run (fast_dev_run) has only the warm-up
        return [b - a for stamps in epochs for a, b in zip(stamps, stamps[1:], strict=False)]


def barebones_main(args: list[str], loggers: Sequence[Logger] = ()) -> RunResult:
    """Lightning's loop alone: ``Trainer(barebones=True)`` on the project's model, data and --trainer options.

    No checkpoints, logger, progress bar, model summary or sanity check: the price of the Trainer's loop
    itself, between Fabric's and the project's Trainer. It logs nothing, so only its time is compared.
    """
    cli = ProjectCLI(args)
    options = {**cli.config_init.trainer.as_dict(), "logger": False, "callbacks": None, "log_every_n_steps": None}
    options["barebones"] = True
    options["strategy"] = with_dist_timeout(options["strategy"], cli.config.dist_timeout, StrategyRegistry)
    Trainer(**options).fit(cli.model, datamodule=cli.datamodule)
    return RunResult(cli.model.net, cli.datamodule, None)


# The ladder, from the loop written by hand to the project's Trainer: each rung's entry.
# Each is timed, and its weights are checked against the first rung's.
RUNGS = {
    "manual": train_manual.main,
    "fabric": train_fabric.main,
    "trainer_barebones": barebones_main,
    "trainer": train.main,
}
TIMING_ONLY = {"trainer_barebones"}  # logs nothing: its epochs have no metrics to compare


def timed_run(rung: str, args: list[str]) -> dict:
    """Train one rung on ``args``, as its entry trains, timed and recorded from outside."""
    start = time.perf_counter()
    history = History()
    with StepClock().attached() as clock:
        results = RUNGS[rung]([*args, "--test", "false"], loggers=[history])
    return {
        "net": results.net,
        "history": history.epochs(),
        "step_times": clock.step_times(),
        "startup_s": clock.epochs()[0][0] - start,
        "total_s": time.perf_counter() - start,
        "run_dir": str(results.run_dir),
    }


def max_abs_weight_diff(a: nn.Module, b: nn.Module) -> tuple[float, bool]:
    """The largest |difference| over every tensor of the two state dicts, and whether all are equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), "the two networks have different parameters"
    identical = all(torch.equal(sa[k], sb[k]) for k in sa)
    diff = max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa)
    return diff, identical


def compare(args: list[str], repeats: int = 1, rungs: list[str] | None = None) -> dict:
    """Train the rungs (default: all) on ``args`` (train.py's options) and return the side-by-side figures.

    With ``repeats`` > 1 the rungs run again, in alternating order. The step times of all runs are pooled
    for the per-rung medians, and each rung's ratio to the manual loop is the median of its ratios within
    a repeat: on a shared machine a slow spell lasts seconds, and runs back to back mostly share it.
    """
    names = [rung for rung in RUNGS if rung == "manual" or rung in (rungs or RUNGS)]  # the ladder's order
    pooled: dict[str, list[dict]] = {rung: [] for rung in names}
    for repeat in range(repeats):
        for rung in names[:: 1 if repeat % 2 == 0 else -1]:
            pooled[rung].append(timed_run(rung, args))
    runs = {rung: results[0] for rung, results in pooled.items()}
    ms = {
        rung: 1000 * statistics.median([t for run in results for t in run["step_times"]])
        for rung, results in pooled.items()
    }
    keys = ("train/loss", "val/loss", "val/acc")
    # an epoch without validation (--trainer.check_val_every_n_epoch) has no val/ keys
    history = {rung: [{k: row[k] for k in keys if k in row} for row in runs[rung]["history"]] for rung in runs}
    figures, below = {}, None
    for rung in names:
        figures[rung] = rung_figures(pooled[rung], pooled["manual"], ms[rung], ms[below] if below else None)
        figures[rung]["same_epoch_metrics"] = None if rung in TIMING_ONLY else history[rung] == history["manual"]
        below = rung
    top = names[-1]  # the highest rung run: the project's Trainer, by default
    return {
        "epochs": len(history["manual"]),
        "identical": all(rung["identical"] for rung in figures.values()),
        "same_epoch_metrics": all(rung["same_epoch_metrics"] is not False for rung in figures.values()),
        "max_abs_weight_diff": max(rung["max_abs_weight_diff"] for rung in figures.values()),
        "rungs": figures,
        # The two ends of the ladder, as before the middle rungs: the Trainer against the manual loop
        "trainer_ms_per_step": ms[top],
        "manual_ms_per_step": ms["manual"],
        "overhead_ratio": figures[top]["ratio_to_manual"],
        "pair_ratios": figures[top]["ratios"],
        "trainer_fixed_cost_us_per_step": 1000 * (ms[top] - ms["manual"]),
        "timed_steps": sum(len(run["step_times"]) for run in pooled["manual"]),
        "repeats": repeats,
        "history": {rung: rows for rung, rows in history.items() if rung not in TIMING_ONLY},
    }


def rung_figures(results: list[dict], manual: list[dict], ms: float, ms_below: float | None) -> dict:
    """One rung's figures from its runs (one per repeat) and the manual loop's, with the rung below's time."""
    diff, identical = max_abs_weight_diff(results[0]["net"], manual[0]["net"])
    ratios = [
        statistics.median(run["step_times"]) / statistics.median(reference["step_times"])
        for run, reference in zip(results, manual, strict=True)
    ]
    return {
        "ms_per_step": ms,
        "step_up_us": None if ms_below is None else 1000 * (ms - ms_below),
        "ratio_to_manual": statistics.median(ratios),
        "ratios": ratios,
        "identical": identical,
        "max_abs_weight_diff": diff,
        "startup_s": results[0]["startup_s"],
        "total_s": results[0]["total_s"],
        "run_dir": results[0]["run_dir"],
    }


def format_report(figures: dict) -> str:
    names = list(figures["history"])
    heads = [f"{key} ({', '.join(names)})".center(11 * len(names)) for key in ("train/loss", "val/acc")]
    lines = [f"{'epoch':>5} | " + " | ".join(heads)]
    for epoch in range(figures["epochs"]):
        rows = [figures["history"][name][epoch] for name in names]
        lines.append(
            f"{epoch:>5} | "
            + " ".join(f"{row['train/loss']:>10.6f}" for row in rows)
            + " | "
            + " ".join(f"{row.get('val/acc', float('nan')):>10.4f}" for row in rows)
        )
    lines += [
        "",
        f"median ms per step ({figures['timed_steps']} steps per rung, {figures['repeats']} run(s) each, "
        f"after {WARMUP_EPOCHS} warm-up epoch):",
        f"{'rung':<17} {'ms/step':>8} {'step up':>10} {'x manual':>9}  weights = manual's  metrics = manual's",
    ]
    for name, rung in figures["rungs"].items():
        step_up = "" if rung["step_up_us"] is None else f"{rung['step_up_us']:+.0f} µs"
        metrics = "(logs none)" if rung["same_epoch_metrics"] is None else rung["same_epoch_metrics"]
        lines.append(
            f"{name:<17} {rung['ms_per_step']:>8.3f} {step_up:>10} {rung['ratio_to_manual']:>9.3f}  "
            f"{str(rung['identical']):<18} {metrics}"
        )
    lines += [
        "",
        f"weights identical on every rung: {figures['identical']}   max |Δw|: {figures['max_abs_weight_diff']:.3g}",
        "start-up to first batch (after imports): "
        + ", ".join(f"{name} {rung['startup_s']:.2f} s" for name, rung in figures["rungs"].items()),
    ]
    return "\n".join(lines)


def plot(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (losses, times) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for (name, rows), style in zip(figures["history"].items(), ("-", "--", ":", "-."), strict=False):
        for key, marker in (("train/loss", "o"), ("val/loss", "s")):
            losses.plot([r[key] for r in rows], style, marker=marker, label=f"{name} {key}", alpha=0.8)
    losses.set(xlabel="epoch", ylabel="loss", yscale="log", title=f"weights identical: {figures['identical']}")
    losses.legend(fontsize=8)
    names = list(figures["rungs"])
    times.bar(
        names, [figures["rungs"][name]["ms_per_step"] for name in names], color=[f"C{i}" for i in range(len(names))]
    )
    times.set(ylabel="ms per step (median)", title="the price of each rung")
    times.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--plot", default="compare.png", help="the loss curves' PNG ('' for none)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the weights are identical")
    parser.add_argument("--repeats", type=PositiveInt, default=1, help="run the rungs this often for steadier timings")
    parser.add_argument("--rungs", nargs="+", choices=list(RUNGS), help="the rungs to run (default: all)")
    own, rest = parser.parse_known_args(argv)
    figures = compare(rest, own.repeats, own.rungs)
    if rank_zero_only.rank != 0:
        return 0  # under torchrun every rank ran every rung; rank 0 reports
    figures["import_s"] = IMPORT_S
    print(format_report(figures))
    print(f"imports (torch, lightning, the project): {IMPORT_S:.2f} s")
    if own.plot:
        plot(figures, own.plot)
        print(f"loss curves: {own.plot}")
    if own.json:
        with open(own.json, "w") as f:
            json.dump(figures, f, indent=2)
    if own.check and not figures["identical"]:
        print("FAIL: a rung ended with weights other than the manual loop's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with one_line_errors():
        code = main(sys.argv[1:])
        leave_process_group()  # under torchrun: every rank leaves together
    sys.exit(code)
