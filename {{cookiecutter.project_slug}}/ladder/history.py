"""A run's logs, kept in memory: the logger that the tools and the tests pass to a rung's ``main``."""

from collections import defaultdict
from collections.abc import Callable

from {{ cookiecutter.package_name }}.runs import EpochLogger


class History(EpochLogger):
    """What one run logs: each epoch's row (merged), each metric's (step, value) series, and the config.

    ``on_epoch(epoch, row)``, when given, sees each row as it is logged: a sweep reports it to its trial.
    """

    def __init__(self, on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> None:
        super().__init__()
        self.rows: dict[int, dict[str, float]] = defaultdict(dict)
        self.series: dict[str, list[tuple[int | None, float]]] = defaultdict(list)
        self.config: dict = {}
        self.on_epoch = on_epoch

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        self.config.update(params)

    def log_epoch(self, epoch: int, row: dict[str, float], step: int | None) -> None:
        self.rows[epoch].update(row)
        for key, value in row.items():
            if "/" in key:  # "train/loss", not "epoch"
                self.series[key].append((step, value))
        if self.on_epoch is not None:
            self.on_epoch(epoch, row)

    def epochs(self) -> list[dict[str, float]]:
        """One row per epoch, in order."""
        return [self.rows[epoch] for epoch in sorted(self.rows)]
