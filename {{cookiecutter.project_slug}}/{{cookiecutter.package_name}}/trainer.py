"""The Trainer that train.py runs: built from the --trainer options, with the run's directory, loggers and
checkpoints (best.ckpt by validation accuracy, last.ckpt to resume from)."""

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import StrategyRegistry

from .checkpoints import find_checkpoint
from .cli import ProjectCLI
from .distributed import with_dist_timeout
from .errors import ConfigError
from .preemption import StopSignal
from .runs import start_run

# Lightning warns that a run resumed mid-epoch may train on other batches; the DataModule starts such an
# epoch where it stopped (data.batches_done), and the resume is bit-identical (tests/test_preemption.py).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


class SaveRunConfig(SaveConfigCallback):
    """The Trainer's config.yaml, in the run directory (the Trainer's default_root_dir) whatever its loggers."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        path = Path(trainer.default_root_dir) / "config.yaml"  # a resumed run's: updated
        self.parser.save(self.config, str(path), skip_none=False, overwrite=True)


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
        self.ckpt_path = find_checkpoint(self.config, "trainer")  # --ckpt_path ("last": the newest), to resume
        # config.yaml comes later: SaveRunConfig writes it as fit starts, once train.py's checks have passed
        self.run_dir, self.loggers = start_run(self, "trainer", self.extra_loggers, write_config=False)
        self.best_checkpoint = None
        callbacks = [*(self.config_init.trainer.callbacks or []), StopOnSignal()]
        if not barebones:
            callbacks += self.checkpoints()
        if self.config.trainer.enable_progress_bar is not False and not barebones:
            # Redrawing the bar every step costs more than a tiny model's step; every 20 is plenty.
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        if barebones:
            kwargs["log_every_n_steps"] = None  # configs/default.yaml's is logging, which barebones turns off
        if SLURMEnvironment.detect() and not self.config_init.trainer.plugins:
            # The job script requeues every rung alike, on the exit status STOPPED (scripts/slurm.sbatch)
            kwargs["plugins"] = [SLURMEnvironment(auto_requeue=False)]
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


class StopOnSignal(Callback):
    """The Trainer's answer to SIGTERM and SLURM's SIGUSR1, as the loops': last.ckpt, then ``Stopped``.

    Lightning's own handler (``received_sigterm``) stops at a batch's end too, but saves nothing there and
    exits 0, which a scheduler reads as done; under DDP it runs a collective inside the signal handler. This
    callback puts a ``StopSignal`` in its place once fit has started (Lightning's teardown gives back the
    handlers from before fit), and at the end of each batch that
    stepped asks it, on every rank at once: when a signal came, every rank saves last.ckpt with the batch's
    place in the epoch (the Trainer's own mid-epoch checkpoint) and stops.
    """

    def __init__(self) -> None:
        self.stop = StopSignal()

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stop.device = trainer.strategy.root_device  # the Trainer registers its handlers after this hook

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stop.install()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stop.install()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches and batch_idx + 1 < trainer.num_training_batches:
            return  # mid-accumulation: the gradients so far are in no checkpoint
        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        self.stop.stop_if_asked(trainer.current_epoch, batch_idx + 1, lambda: trainer.save_checkpoint(last))
