"""Run both paths with one config and seed, and measure what they differ in: the weights and the time.

Both paths are instrumented the same way, from outside: a ``TimedLoader`` stamps each training batch
as it is handed out, and a ``HistoryLogger`` records what each path logs per epoch.
"""

import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import torch
from lightning.pytorch.loggers import Logger
from torch import nn

from .cli import ProjectCLI
from .paths import run_lightning, run_manual

PATHS = {"lightning": run_lightning, "manual": run_manual}
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
    """Keeps in memory what a path logs, merged into one row per epoch.

    ``save_dir`` is the run's directory: the Trainer takes its log_dir from its first logger.
    """

    name, version = "history", 0

    def __init__(self, save_dir: Path) -> None:
        super().__init__()
        self._save_dir = str(save_dir)
        self.rows: dict[int, dict[str, float]] = defaultdict(dict)

    @property
    def save_dir(self) -> str:
        return self._save_dir

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


def run_path(path: str, args: list[str]) -> dict:
    """Build one path from the config and train it, timed from outside."""
    start = time.perf_counter()
    cli = ProjectCLI(path=path, args=args)
    loader = {}
    make_loader = cli.datamodule.train_dataloader
    cli.datamodule.train_dataloader = lambda: loader.setdefault("timed", TimedLoader(make_loader()))
    history = HistoryLogger(cli.run_dir or cli.config.run_root)  # under torchrun only rank 0 has a run_dir
    results = PATHS[path](cli, test=False, extra_loggers=(history,))
    first_batch = loader["timed"].stamps[0][0]
    return {
        "net": results["net"],
        "history": history.epochs(),
        "step_times": loader["timed"].step_times(),
        "startup_s": first_batch - start,
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
    """Train both paths on ``args`` (the same options train.py takes) and return the side-by-side figures.

    With ``repeats`` > 1 the pair runs again, in alternating order. The step times of all runs are
    pooled for the per-path medians, and the overhead ratio is the median of the pairs' own ratios: on a
    shared machine one run can land in a slow spell, and a pair run back to back mostly shares it.
    """
    pooled: dict[str, list[dict]] = {path: [] for path in PATHS}
    for repeat in range(repeats):
        for path in list(PATHS)[:: 1 if repeat % 2 == 0 else -1]:
            pooled[path].append(run_path(path, args))
    runs = {path: results[0] for path, results in pooled.items()}
    diff, identical = max_abs_weight_diff(runs["lightning"]["net"], runs["manual"]["net"])
    ms = {
        path: 1000 * statistics.median([t for run in results for t in run["step_times"]])
        for path, results in pooled.items()
    }
    pairs = zip(pooled["lightning"], pooled["manual"], strict=True)
    ratios = [statistics.median(lit["step_times"]) / statistics.median(man["step_times"]) for lit, man in pairs]
    keys = ("train/loss", "val/loss", "val/acc")
    history = {path: [{k: row[k] for k in keys} for row in run["history"]] for path, run in runs.items()}
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
        "startup_s": {path: run["startup_s"] for path, run in runs.items()},
        "total_s": {path: run["total_s"] for path, run in runs.items()},
        "run_dirs": {path: run["run_dir"] for path, run in runs.items()},
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
        f"median time per step ({figures['timed_steps']} steps per path, {figures['repeats']} run(s), "
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
