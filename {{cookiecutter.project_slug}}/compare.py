"""Train with Lightning and with the hand-written loop, same config and seed, and compare.

    python compare.py                          # the defaults; prints the table, writes compare.png
    python compare.py --json figures.json      # also the figures as JSON, for CI
    python compare.py --check                  # exit 1 unless the final weights are bit-identical
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

import train
import train_manual
from {{ cookiecutter.package_name }}.cli import ConfigError, ProjectCLI, one_line_errors
from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.distributed import leave_process_group

IMPORT_S = time.perf_counter() - _start
RUNGS = {"lightning": train.main, "manual": train_manual.main}
WARMUP_EPOCHS = 1  # the first epoch pays for allocator growth and first-call dispatch


class TimedLoader:
    """Wraps a DataLoader and stamps the time each batch is handed out, one list of stamps per epoch.

    Between two stamps lies one whole iteration: fetching, the six steps, metrics and every hook.
    It has a length, so Lightning reads it one batch at a time, as the manual loop does.
    """

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader, self.sampler, self.batch_size, self.stamps = loader, loader.sampler, loader.batch_size, []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        stamps: list[float] = []
        self.stamps.append(stamps)
        for batch in self.loader:
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
    """The project's DataModule, its train loader wrapped in a ``TimedLoader`` and a ``HistoryLogger`` at hand."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = HistoryLogger()

    def train_dataloader(self) -> TimedLoader:
        self.timed = TimedLoader(super().train_dataloader())
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
    """Train both rungs on ``args`` (the same options train.py takes) and return the side-by-side figures.

    With ``repeats`` > 1 the pair runs again, in alternating order. The step times of all runs are
    pooled for the per-rung medians, and the overhead ratio is the median of the pairs' own ratios: on a
    shared machine one run can land in a slow spell, and a pair run back to back mostly shares it.
    """
    pooled: dict[str, list[dict]] = {rung: [] for rung in RUNGS}
    for repeat in range(repeats):
        for rung in list(RUNGS)[:: 1 if repeat % 2 == 0 else -1]:
            pooled[rung].append(timed_run(rung, args))
    runs = {rung: results[0] for rung, results in pooled.items()}
    diff, identical = max_abs_weight_diff(runs["lightning"]["net"], runs["manual"]["net"])
    ms = {
        rung: 1000 * statistics.median([t for run in results for t in run["step_times"]])
        for rung, results in pooled.items()
    }
    pairs = zip(pooled["lightning"], pooled["manual"], strict=True)
    ratios = [statistics.median(lit["step_times"]) / statistics.median(man["step_times"]) for lit, man in pairs]
    keys = ("train/loss", "val/loss", "val/acc")
    history = {rung: [{k: row[k] for k in keys} for row in run["history"]] for rung, run in runs.items()}
    return {
        "epochs": len(history["manual"]),
        "identical": identical,
        "same_epoch_metrics": history["lightning"] == history["manual"],
        "max_abs_weight_diff": diff,
        "lightning_ms_per_step": ms["lightning"],
        "manual_ms_per_step": ms["manual"],
        "overhead_ratio": statistics.median(ratios),
        "pair_ratios": ratios,
        "lightning_fixed_cost_us_per_step": 1000 * (ms["lightning"] - ms["manual"]),
        "timed_steps": sum(len(run["step_times"]) for run in pooled["manual"]),
        "repeats": repeats,
        "startup_s": {rung: run["startup_s"] for rung, run in runs.items()},
        "total_s": {rung: run["total_s"] for rung, run in runs.items()},
        "run_dirs": {rung: run["run_dir"] for rung, run in runs.items()},
        "history": history,
    }


def format_report(figures: dict) -> str:
    lines = [
        f"{'epoch':>5} | {'train/loss':^21} | {'val/loss':^21} | {'val/acc':^17}",
        f"{'':>5} | {'lightning':>10} {'manual':>10} | {'lightning':>10} {'manual':>10} "
        f"| {'lightning':>8} {'manual':>8}",
    ]
    rows = zip(figures["history"]["lightning"], figures["history"]["manual"], strict=True)
    for epoch, (lit, man) in enumerate(rows):
        lines.append(
            f"{epoch:>5} | {lit['train/loss']:>10.6f} {man['train/loss']:>10.6f} "
            f"| {lit['val/loss']:>10.6f} {man['val/loss']:>10.6f} "
            f"| {lit['val/acc']:>8.4f} {man['val/acc']:>8.4f}"
        )
    startup = figures["startup_s"]
    lines += [
        "",
        f"weights identical: {figures['identical']}   max |Δweight|: {figures['max_abs_weight_diff']:.3g}   "
        f"per-epoch metrics identical: {figures['same_epoch_metrics']}",
        f"median time per step ({figures['timed_steps']} steps per rung, {figures['repeats']} run(s), "
        f"after {WARMUP_EPOCHS} warm-up epoch each): "
        f"lightning {figures['lightning_ms_per_step']:.3f} ms, manual {figures['manual_ms_per_step']:.3f} ms",
        f"Lightning overhead: x{figures['overhead_ratio']:.3f} (median of the pairs: "
        f"{', '.join(f'x{r:.3f}' for r in figures['pair_ratios'])}), "
        f"fixed cost {figures['lightning_fixed_cost_us_per_step']:+.0f} µs per step",
        f"start-up to first batch (after imports): lightning {startup['lightning']:.2f} s, "
        f"manual {startup['manual']:.2f} s",
    ]
    return "\n".join(lines)


def plot(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, style in (("lightning", "-"), ("manual", "--")):
        rows = figures["history"][name]
        for key, marker in (("train/loss", "o"), ("val/loss", "s")):
            ax.plot([r[key] for r in rows], style, marker=marker, label=f"{name} {key}", alpha=0.8)
    ax.set(
        xlabel="epoch",
        ylabel="loss",
        yscale="log",
        title=f"Lightning vs manual loop: weights identical = {figures['identical']}",
    )
    ax.legend()
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
        print("FAIL: the two rungs ended with different weights", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with one_line_errors():
        code = main()
        leave_process_group()  # under torchrun: every rank leaves together
    sys.exit(code)
