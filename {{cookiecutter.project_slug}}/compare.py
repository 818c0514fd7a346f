"""Train on every rung of the ladder (by hand, Fabric, Lightning's Trainer), same config and seed, and compare.

    python compare.py                          # the defaults; prints the table, writes compare.png
    python compare.py --json figures.json      # also the figures as JSON, for CI
    python compare.py --check                  # exit 1 unless every rung's final weights equal the manual loop's
    python compare.py --repeats 3              # alternate the order, pool the timings: steadier figures
    python compare.py --trainer.max_epochs 3 --data.batch_size 100   # any option train.py takes
    torchrun --nproc_per_node 2 compare.py --trainer.devices 2 --trainer.strategy ddp   # both on 2 processes

Both are measured the same way, from outside: a ``TimedLoader`` stamps each training batch as it is
handed out, and a ``HistoryLogger`` records what each logs per epoch. Neither's code changes for it.
"""

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

_start = time.perf_counter()
ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # the entries beside this file, and the package, installed or not

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader

import train
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.cli import ConfigError, ProjectCLI, one_line_errors
from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.distributed import leave_process_group

IMPORT_S = time.perf_counter() - _start
# The ladder, from the loop written by hand to Lightning's Trainer; each rung is timed and checked against the first.
RUNGS = {"manual": train_manual.main, "fabric": train_fabric.main, "lightning": train.main}
WARMUP_EPOCHS = 1  # the first epoch pays for allocator growth and first-call dispatch


class TimedLoader(DataLoader):
    """A DataLoader that stamps the time each batch is handed out, one list of stamps per epoch.

    Between two stamps lies one whole iteration: fetching, the six steps, metrics and every hook. It is
    a DataLoader, so Fabric and the Trainer take it as they take the project's own.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[list[float]] = []

    def __iter__(self) -> Iterator:
        stamps: list[float] = []
        self.stamps.append(stamps)
        for batch in super().__iter__():
            stamps.append(time.perf_counter())
            yield batch

    def step_times(self) -> list[float]:
        """Seconds per step within each epoch after the warm-up; the gaps across validation are left out."""
        return [b - a for stamps in self.stamps[WARMUP_EPOCHS:] for a, b in zip(stamps, stamps[1:], strict=False)]


class HistoryLogger(Logger):
    """Keeps in memory what a rung logs, merged into one row per epoch."""

    name, version = "history", 0

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.rows: dict[int, dict[str, float]] = defaultdict(dict)

    @property
    def save_dir(self) -> str | None:
        return str(self.run_dir) if self.run_dir else None

    @property
    def experiment(self) -> None:
        return None

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "epoch" in metrics:
            self.rows[int(metrics["epoch"])].update({k: float(v) for k, v in metrics.items()})

    def epochs(self) -> list[dict[str, float]]:
        return [self.rows[epoch] for epoch in sorted(self.rows)]


class TimedDataModule(DataModule):
    """The project's DataModule with timed loaders (the train loader kept as ``timed``) and a ``HistoryLogger``."""

    loader_class = TimedLoader

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = HistoryLogger()

    def train_dataloader(self) -> TimedLoader:
        self.timed = super().train_dataloader()
        return self.timed


class TimedCLI(ProjectCLI):
    """The project's CLI with the timed DataModule; the history logger joins the run's own loggers."""

    def __init__(self, **kwargs) -> None:
        super().__init__(datamodule_class=TimedDataModule, **kwargs)

    def start_run(self) -> tuple[Path | None, list[Logger]]:
        run_dir, loggers = super().start_run()
        self.datamodule.history.run_dir = run_dir  # the Trainer writes config.yaml to its first logger's save_dir
        return run_dir, [*loggers, self.datamodule.history]


def timed_run(rung: str, args: list[str]) -> dict:
    """Build one rung from the config and train it, timed from outside."""
    start = time.perf_counter()
    results = RUNGS[rung](args, cli_class=TimedCLI, test=False)
    data = results["datamodule"]
    return {
        "net": results["net"],
        "history": data.history.epochs(),
        "step_times": data.timed.step_times(),
        "startup_s": data.timed.stamps[0][0] - start,
        "total_s": time.perf_counter() - start,
        "run_dir": str(results["run_dir"]),
    }


def max_abs_weight_diff(a: nn.Module, b: nn.Module) -> tuple[float, bool]:
    """The largest |difference| over every tensor of the two state dicts, and whether all are equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), "the two networks have different parameters"
    identical = all(torch.equal(sa[k], sb[k]) for k in sa)
    diff = max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa)
    return diff, identical


def compare(args: list[str], repeats: int = 1) -> dict:
    """Train every rung on ``args`` (the same options train.py takes) and return the side-by-side figures.

    With ``repeats`` > 1 the rungs run again, in alternating order. The step times of all runs are pooled
    for the per-rung medians, and each rung's ratio to the manual loop is the median of its ratios within
    a repeat: on a shared machine a slow spell lasts seconds, and runs back to back mostly share it.
    """
    pooled: dict[str, list[dict]] = {rung: [] for rung in RUNGS}
    for repeat in range(repeats):
        for rung in list(RUNGS)[:: 1 if repeat % 2 == 0 else -1]:
            pooled[rung].append(timed_run(rung, args))
    runs = {rung: results[0] for rung, results in pooled.items()}
    ms = {
        rung: 1000 * statistics.median([t for run in results for t in run["step_times"]])
        for rung, results in pooled.items()
    }
    keys = ("train/loss", "val/loss", "val/acc")
    history = {rung: [{k: row[k] for k in keys} for row in run["history"]] for rung, run in runs.items()}
    rungs, below = {}, None
    for rung in RUNGS:
        diff, identical = max_abs_weight_diff(runs[rung]["net"], runs["manual"]["net"])
        ratios = [
            statistics.median(run["step_times"]) / statistics.median(manual["step_times"])
            for run, manual in zip(pooled[rung], pooled["manual"], strict=True)
        ]
        rungs[rung] = {
            "ms_per_step": ms[rung],
            "step_up_us": None if below is None else 1000 * (ms[rung] - ms[below]),
            "ratio_to_manual": statistics.median(ratios),
            "ratios": ratios,
            "identical": identical,
            "max_abs_weight_diff": diff,
            "same_epoch_metrics": history[rung] == history["manual"],
            "startup_s": runs[rung]["startup_s"],
            "total_s": runs[rung]["total_s"],
            "run_dir": runs[rung]["run_dir"],
        }
        below = rung
    return {
        "epochs": len(history["manual"]),
        "identical": all(figures["identical"] for figures in rungs.values()),
        "same_epoch_metrics": all(figures["same_epoch_metrics"] for figures in rungs.values()),
        "max_abs_weight_diff": max(figures["max_abs_weight_diff"] for figures in rungs.values()),
        "paths": rungs,
        # The two ends of the ladder, as before the Fabric rung: Lightning's Trainer against the manual loop
        "lightning_ms_per_step": ms["lightning"],
        "manual_ms_per_step": ms["manual"],
        "overhead_ratio": rungs["lightning"]["ratio_to_manual"],
        "pair_ratios": rungs["lightning"]["ratios"],
        "lightning_fixed_cost_us_per_step": 1000 * (ms["lightning"] - ms["manual"]),
        "timed_steps": sum(len(run["step_times"]) for run in pooled["manual"]),
        "repeats": repeats,
        "history": history,
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
            + " ".join(f"{row['val/acc']:>10.4f}" for row in rows)
        )
    lines += [
        "",
        f"median ms per step ({figures['timed_steps']} steps per rung, {figures['repeats']} run(s) each, "
        f"after {WARMUP_EPOCHS} warm-up epoch):",
        f"{'rung':<10} {'ms/step':>8} {'step up':>10} {'x manual':>9}  weights = manual's  metrics = manual's",
    ]
    for name, rung in figures["paths"].items():
        step_up = "" if rung["step_up_us"] is None else f"{rung['step_up_us']:+.0f} µs"
        lines.append(
            f"{name:<10} {rung['ms_per_step']:>8.3f} {step_up:>10} {rung['ratio_to_manual']:>9.3f}  "
            f"{str(rung['identical']):<18} {rung['same_epoch_metrics']}"
        )
    lines += [
        "",
        f"weights identical on every rung: {figures['identical']}   max |Δw|: {figures['max_abs_weight_diff']:.3g}",
        "start-up to first batch (after imports): "
        + ", ".join(f"{name} {rung['startup_s']:.2f} s" for name, rung in figures["paths"].items()),
    ]
    return "\n".join(lines)


def plot(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (losses, times) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for (name, rows), style in zip(figures["history"].items(), ("-", "--", ":"), strict=False):
        for key, marker in (("train/loss", "o"), ("val/loss", "s")):
            losses.plot([r[key] for r in rows], style, marker=marker, label=f"{name} {key}", alpha=0.8)
    losses.set(xlabel="epoch", ylabel="loss", yscale="log", title=f"weights identical: {figures['identical']}")
    losses.legend(fontsize=8)
    names = list(figures["paths"])
    times.bar(names, [figures["paths"][name]["ms_per_step"] for name in names], color=["C0", "C1", "C2"][: len(names)])
    times.set(ylabel="ms per step (median)", title="the price of each rung")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, exit_on_error=False
    )
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--plot", default="compare.png", help="the loss curves' PNG ('' for none)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the weights are identical")
    parser.add_argument("--repeats", type=PositiveInt, default=1, help="run the pair this often for steadier timings")
    try:
        own, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as error:
        raise ConfigError(str(error)) from None
    figures = compare(rest, own.repeats)
    if rank_zero_only.rank != 0:
        return 0  # under torchrun every rank ran both rungs; rank 0 reports
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
        code = main()
        leave_process_group()  # under torchrun: every rank leaves together
    sys.exit(code)
