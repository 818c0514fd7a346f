"""One command line for every entry: train.py, train_manual.py, evaluate.py and predict.py parse the same options.

LightningCLI turns the typed ``__init__`` arguments of the model, the network and the DataModule into
flags and YAML keys. The hand-written loop parses through this same class, so the ways of training
cannot drift apart in what they accept or in how the seed, the network and the data are built.
"""

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveInt
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import StrategyRegistry
from lightning.pytorch.utilities import rank_zero_only

from .checkpoints import CheckpointError
from .data import DataError, DataModule
from .distributed import describe_stall
from .module import Classifier
from .runs import DEFAULT_LOGGER, LoggerName, build_logger, shared_run_dir
from .shared import NonFiniteLossError
from .trainer_options import RefusedOption

PROJECT = "{{ cookiecutter.__wandb_project }}"  # the wandb project (the slug: letters, digits, ".", "_", "-")
# configs/ sits at the project root, beside this package.
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


# Options that change how a run is kept or launched, not its result: they stay out of the config's hash.
RUN_ONLY_OPTIONS = ("config", "logger", "run_root", "ckpt_path", "trust_checkpoint", "save_every_n_steps")
RUN_ONLY_OPTIONS += ("dist_timeout", "logger_group")


class ConfigError(ValueError):
    """A combination of options that this project cannot run; the entry points print it as one line."""


class OneLineErrorParser(LightningArgumentParser):
    """A bad option or value ends the run in one line that names it and its allowed range, with exit status 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a parser used for checking, not for a command line
            super().error(message, ex)
        print(f"error: {' '.join(message.split())} (--help lists every option)", file=sys.stderr)
        raise SystemExit(2)

    def add_function_arguments(self, function: Any, *args: Any, linked_targets: Any = None, **kwargs: Any) -> list:
        """A network named by its builder function (``--model.net torchvision.models.resnet18``).

        jsonargparse 4.53 hands a function the ``linked_targets`` of our links into ``model.net``, which
        only ``add_class_arguments`` accepts; it clears the linked arguments' "required" mark itself after.
        """
        return super().add_function_arguments(function, *args, **kwargs)


class ProjectCLI(LightningCLI):
    """Parses the config and the flags, seeds, and builds the DataModule and the model.

    ``rung`` names the way of training this parse is for: ``"trainer"`` also builds the Trainer, with
    a fresh run directory and the run's logger; ``"manual"`` and ``"fabric"`` stop before the Trainer,
    and their loops ask for their run directory with ``start_run``. ``None`` (evaluate.py, predict.py) trains nothing;
    given a checkpoint inside a run directory, it reads that run's config.yaml first.
    """

    def __init__(self, rung: str | None = "trainer", args: list[str] | None = None, **kwargs: Any) -> None:
        self.rung, self.run_dir, self.loggers = rung, None, []
        defaults = [str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.exists() else []
        if rung is None:
            defaults += run_config_of(sys.argv[1:] if args is None else args)
        kwargs.setdefault("datamodule_class", DataModule)
        super().__init__(
            Classifier,
            args=args,
            run=False,  # `python train.py` with no subcommand: the entries call fit and test themselves
            auto_configure_optimizers=False,  # the optimizer lives in shared.py, for every way of training
            parser_kwargs={"default_config_files": defaults},
            parser_class=OneLineErrorParser,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--logger", type=LoggerName, default=DEFAULT_LOGGER, help="Experiment logger.")
        parser.add_argument("--run_root", type=str, default="runs", help="Each run gets a new directory here.")
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="Resume from this checkpoint ('last': the newest)."
        )
        parser.add_argument(
            "--trust_checkpoint",
            type=bool,
            default=False,
            help="Unpickle any object in --ckpt_path, which can run code: only for a file you trust.",
        )
        parser.add_argument(
            "--save_every_n_steps",
            type=NonNegativeInt,
            default=200,
            help="The hand-written loops also write last.pt every N steps (0: at epoch ends only, as the Trainer).",
        )
        parser.add_argument(
            "--logger_group",
            type=str | None,
            default=None,
            help="The wandb group of this run (default: a hash of the config, shared by the runs of one config).",
        )
        parser.add_argument(
            "--dist_timeout",
            type=PositiveInt,
            default=600,
            help="Under DDP, seconds a rank waits for the others in a collective before the run stops with an error.",
        )
        # The data decides the class count and the channels; the network and the metrics follow.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.net.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.num_channels", "model.net.init_args.in_channels", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        # `--model.net torchvision.models.resnet18` keeps the arguments the default network shares with it
        # (num_classes), parsed as SmallCNN's PositiveInt: as plain numbers they can be saved in config.yaml.
        init_args = self.config.model.net.get("init_args") or {}
        for name, value in init_args.items():
            if type(value) in (PositiveInt, ClosedUnitInterval):
                init_args[name] = int(value) if isinstance(value, int) else float(value)

    def instantiate_trainer(self, **kwargs: Any):
        """The Trainer, for ``rung="trainer"`` only: with its run directory, logger and checkpoints."""
        if self.rung != "trainer":
            return None
        self.run_dir, self.loggers = self.start_run()
        ckpt_dir = self.run_dir / "checkpoints" if self.run_dir else None  # rank 0's is sent to the others
        # best.ckpt by validation accuracy, for the test at the end
        self.best_checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/acc", mode="max")
        # last.ckpt after every epoch, to resume from (save_last=True rewrites it only when best.ckpt improves)
        last = ModelCheckpoint(
            dirpath=ckpt_dir, filename="last", enable_version_counter=False, save_on_train_epoch_end=False
        )
        callbacks = [*(self.config_init.trainer.callbacks or []), self.best_checkpoint, last]
        if self.config.trainer.enable_progress_bar is not False:
            # Redrawing the bar every step costs more than a tiny model's step; every 20 is plenty.
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        strategy = with_dist_timeout(self.config_init.trainer.strategy, self.config.dist_timeout, StrategyRegistry)
        return super().instantiate_trainer(
            default_root_dir=self.run_dir,
            logger=self.loggers or False,
            callbacks=callbacks,
            strategy=strategy,
            **kwargs,
        )

    def start_run(self) -> tuple[Path | None, list[Logger]]:
        """Make this run's directory (rank 0; the others get it as ``None``) and its loggers (rank 0 only).

        Called once the model and the data exist, so an invalid config writes nothing.
        """
        rank = rank_zero_only.rank  # from RANK, LOCAL_RANK or SLURM_PROCID: 0 in a single process
        run_dir = shared_run_dir(self.config.run_root, self.rung, rank)
        chosen = self.config_init.trainer.logger  # a --trainer.logger of the user's wins over --logger
        if rank != 0:
            logger = None
        elif isinstance(chosen, Logger) or chosen is False:
            logger = chosen or None
        else:
            group = self.config.logger_group or self.config_id()
            logger = build_logger(self.config.logger, run_dir, PROJECT, self.rung, group)
        if rank == 0 and self.rung != "trainer":  # the Trainer's SaveConfigCallback and loggers do their own
            self.parser.save(self.config, str(run_dir / "config.yaml"), skip_none=False, overwrite=False)
            if logger is not None:
                logger.log_hyperparams(self.config.as_dict())
        return run_dir, [logger] if logger is not None else []

    def fabric_arguments(self) -> dict[str, Any]:
        """Fabric's arguments from the trainer options: devices, nodes, strategy (with --dist_timeout), precision."""
        from lightning.fabric.strategies import STRATEGY_REGISTRY

        trainer = self.config.trainer
        return {
            "accelerator": trainer.accelerator,
            "devices": trainer.devices,
            "num_nodes": trainer.num_nodes,
            "strategy": with_dist_timeout(trainer.strategy, self.config.dist_timeout, STRATEGY_REGISTRY),
            "precision": trainer.precision,
        }

    def config_id(self) -> str:
        """A short hash of what decides the result: the runs of one config share it (the wandb group)."""
        config = self.config.clone()
        for key in RUN_ONLY_OPTIONS:
            config.pop(key, None)
        return "config-" + hashlib.sha1(self.parser.dump(config, skip_check=True).encode()).hexdigest()[:8]


def with_dist_timeout(strategy: Any, seconds: int, registry: dict) -> Any:
    """A DDP strategy named by its string ("ddp" and its variants) built with a process-group timeout.

    ``registry`` is Lightning's (the Trainer) or Fabric's; each names its own ``DDPStrategy``.
    """
    registered = registry[strategy] if isinstance(strategy, str) and strategy in registry else {}
    if registered.get("strategy", type(None)).__name__ != "DDPStrategy":
        return strategy
    return registered["strategy"](timeout=timedelta(seconds=seconds), **registered["init_params"])


def run_config_of(args: list[str]) -> list[str]:
    """[runs/<run>/config.yaml] when --ckpt_path names a checkpoint inside a run directory, else [].

    It must be known before the parse, as a default config file under the flags, so --ckpt_path is read
    ahead by a parser of its own.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--ckpt_path")
    ckpt_path = pre.parse_known_args(args)[0].ckpt_path
    config = Path(ckpt_path).resolve().parent.parent / "config.yaml" if ckpt_path else None
    return [str(config)] if config and config.is_file() else []


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line on stderr and exit status 2, not a traceback.

    Under DDP the line names the rank, and a stall says what the rank waited on.
    """
    try:
        yield
    except (ConfigError, DataError, CheckpointError, NonFiniteLossError, RefusedOption) as error:
        print(f"error: {rank_prefix()}{error}", file=sys.stderr)
        raise SystemExit(2) from None
    except RuntimeError as error:
        stall = describe_stall(error)
        if stall is None:
            raise
        print(f"error: {rank_prefix()}{stall}", file=sys.stderr)
        raise SystemExit(3) from None


def rank_prefix() -> str:
    """'rank 1: ' in a process of a multi-process run, '' in a single process."""
    # torchrun and Lightning's launcher set LOCAL_RANK for every rank; Lightning unsets WORLD_SIZE at teardown
    multi = "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", 1)) > 1
    return f"rank {rank_zero_only.rank}: " if multi else ""
