"""The Trainer that train.py runs: built from the --trainer options, with the run's directory, loggers and
checkpoints (best.ckpt by validation accuracy, last.ckpt to resume from)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import StrategyRegistry

from .cli import ProjectCLI
from .distributed import with_dist_timeout
from .errors import ConfigError
from .runs import start_run


class SaveRunConfig(SaveConfigCallback):
    """The Trainer's config.yaml, in the run directory (the Trainer's default_root_dir) whatever its loggers."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        path = Path(trainer.default_root_dir) / "config.yaml"
        self.parser.save(self.config, str(path), skip_none=False, overwrite=False)


class TrainerCLI(ProjectCLI):
    """ProjectCLI that also builds the Trainer: ``cli.trainer``, ``cli.run_dir``, ``cli.loggers`` and
    ``cli.best_checkpoint``. ``loggers`` join the one --logger names, as the loops' ``start_run`` takes them.
    """

    def __init__(self, args: list[str] | None = None, loggers: Sequence[Logger] = (), **kwargs: Any) -> None:
        self.extra_loggers = list(loggers)
        kwargs.setdefault("save_config_kwargs", {"save_to_log_dir": False})  # SaveRunConfig knows where
        super().__init__(args, save_config_callback=SaveRunConfig, **kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer, with its run directory, loggers and checkpoints.

        Under --trainer.barebones the Trainer turns off its checkpoints, loggers and progress bar, and so
        does this project: Lightning's loop alone.
        """
        barebones = self.config.trainer.barebones
        if barebones and self.config.test:
            raise ConfigError("--trainer.barebones logs nothing, so a test would have no figures: add --test false")
        strategy = with_dist_timeout(self.config_init.trainer.strategy, self.config.dist_timeout, StrategyRegistry)
        # config.yaml comes later: SaveRunConfig writes it as fit starts, once train.py's checks have passed
        self.run_dir, self.loggers = start_run(self, "trainer", self.extra_loggers, write_config=False)
        self.best_checkpoint = None
        callbacks = list(self.config_init.trainer.callbacks or [])
        if not barebones:
            callbacks += self.checkpoints()
        if self.config.trainer.enable_progress_bar is not False and not barebones:
            # Redrawing the bar every step costs more than a tiny model's step; every 20 is plenty.
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        if barebones:
            kwargs["log_every_n_steps"] = None  # configs/default.yaml's is logging, which barebones turns off
        return LightningCLI.instantiate_trainer(  # ProjectCLI's builds none
            self,
            default_root_dir=self.run_dir,
            logger=self.loggers or False,
            callbacks=callbacks,
            strategy=strategy,
            **kwargs,
        )

    def checkpoints(self) -> list[ModelCheckpoint]:
        """best.ckpt by validation accuracy, for the test at the end; last.ckpt after every epoch, to resume."""
        ckpt_dir = self.run_dir / "checkpoints" if self.run_dir else None  # rank 0's is sent to the others
        self.best_checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/acc", mode="max")
        # (save_last=True would rewrite last.ckpt only when best.ckpt improves)
        last = ModelCheckpoint(
            dirpath=ckpt_dir, filename="last", enable_version_counter=False, save_on_train_epoch_end=False
        )
        return [self.best_checkpoint, last]
