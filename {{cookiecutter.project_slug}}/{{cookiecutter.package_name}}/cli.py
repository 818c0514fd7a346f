"""One command line for every entry: train.py, train_manual.py, evaluate.py and predict.py parse the same options.

LightningCLI turns the typed ``__init__`` arguments of the model, the network and the DataModule into
flags and YAML keys. The hand-written loop parses through this same class, so the ways of training
cannot drift apart in what they accept or in how the seed, the network and the data are built.
"""

import argparse
import hashlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveInt
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import StrategyRegistry
from lightning.pytorch.utilities import rank_zero_only

from .checkpoints import CheckpointError
from .data import DataError, DataModule
from .distributed import describe_stall
from .module import Classifier
from .recipe import NonFiniteLossError
from .runs import DEFAULT_LOGGER, LoggerName, build_logger, shared_run_dir
from .trainer_options import RefusedOption

PROJECT = "{{ cookiecutter.__wandb_project }}"  # the wandb project (the slug: letters, digits, ".", "_", "-")
# configs/ sits at the project root, beside this package.
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


# Options that change how a run is kept or launched, not its result: they stay out of the config's hash.
RUN_ONLY_OPTIONS = ("config", "logger", "run_root", "run_name", "ckpt_path", "trust_checkpoint")
RUN_ONLY_OPTIONS += ("save_every_n_steps", "dist_timeout", "logger_group", "logger_project", "logger_entity", "test")
# What --trainer.barebones turns off, so that the project's own callbacks and logger step aside too.
BAREBONES = {"enable_checkpointing": False, "enable_progress_bar": False}
BAREBONES |= {"enable_model_summary": False, "log_every_n_steps": 0, "num_sanity_val_steps": 0}


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
    """Parses the config and the flags, seeds, and builds the DataModule and the model; no Trainer.

    The hand-written loops (train_manual.py, train_fabric.py) parse with this class and ask for their
    run directory with ``start_run``; train.py parses with ``TrainerCLI``, which also builds the Trainer;
    evaluate.py, predict.py, export.py and serve.py parse with ``CheckpointCLI``, which reads the
    checkpoint's run config first.
    """

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        defaults = [str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.exists() else []
        kwargs.setdefault("datamodule_class", DataModule)
        super().__init__(
            Classifier,
            args=args,
            run=False,  # `python train.py` with no subcommand: the entries call fit and test themselves
            auto_configure_optimizers=False,  # the optimizer lives in recipe.py, for every way of training
            parser_kwargs={"default_config_files": defaults + self.config_files(args)},
            parser_class=OneLineErrorParser,
            **kwargs,
        )

    def config_files(self, args: list[str] | None) -> list[str]:
        """Config files read after configs/default.yaml and before the flags: none here."""
        return []

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str] | None) -> None:
        # An entry that parses options of its own hands the rest over as ``args``, and sys.argv holds those
        # words too: no mistake, so no warning about it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            super().parse_arguments(parser, args)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--logger", type=LoggerName, default=DEFAULT_LOGGER, help="Experiment logger.")
        parser.add_argument("--run_root", type=str, default="runs", help="Each run gets a new directory here.")
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="Names the run's directory <run_name>-<rung> (default: <date>_<time>-<rung>).",
        )
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
            "--test",
            type=bool,
            default=True,
            help="After training, test the best checkpoint on the test split (false: train only, as a sweep's trials).",
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
        parser.add_argument("--logger_project", type=str, default=PROJECT, help="The wandb project of this run.")
        parser.add_argument(
            "--logger_entity",
            type=str | None,
            default=None,
            help="The wandb team or user that owns the project (default: your wandb account's, or WANDB_ENTITY).",
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
        init_args = self.config.model.net.get("init_args")
        for name, value in (init_args or {}).items():
            if type(value) in (PositiveInt, ClosedUnitInterval):
                init_args[name] = int(value) if isinstance(value, int) else float(value)
        # The data's class count reaches the network through a link, which fills a key it finds. A builder
        # that takes num_classes through **kwargs has none once config.yaml is read back (a link's target is
        # not saved): give it one, so that the network rebuilt from a run has the head it was trained with.
        if init_args is not None and "num_classes" not in init_args:
            init_args["num_classes"] = None  # the link's value replaces it, as in the run that trained it

    def instantiate_trainer(self, **kwargs: Any) -> None:
        """No Trainer: the hand-written loops run their own."""
        return None

    def start_run(self, rung: str, loggers: Sequence[Logger] = ()) -> tuple[Path | None, list[Logger]]:
        """Make this run's directory (rank 0 makes it; under a process group the other ranks get it too),
        write its config.yaml there, and open its loggers: the one --logger names, then ``loggers`` (rank 0
        only; TrainerCLI leaves config.yaml to the Trainer, once fit starts).

        ``rung`` names the directory, runs/<date>_<time>-<rung>. Called once the model and the data exist,
        so an invalid config writes nothing, and once the process group is up (torchrun's or Fabric's): every
        rank then restarts its random state from the run's seed, as the Trainer's DDP setup does
        (``reset_seed``), so dropout draws the same masks on every rung.
        """
        if torch.distributed.is_initialized():
            reset_seed()
        rank = rank_zero_only.rank  # from RANK, LOCAL_RANK or SLURM_PROCID: 0 in a single process
        run_dir = shared_run_dir(self.config.run_root, rung, rank, self.config.run_name)
        chosen = self.config_init.trainer.logger  # a --trainer.logger of the user's wins over --logger
        if rank != 0:
            logger = None
        elif isinstance(chosen, Logger) or chosen is False or self.config.trainer.barebones:
            logger = chosen or None  # --trainer.barebones: no --logger, on every rung
        else:
            group = self.config.logger_group or self.config_id()
            where = {"project": self.config.logger_project, "entity": self.config.logger_entity}
            logger = build_logger(self.config.logger, run_dir, rung, group, **where)
        if rank != 0:
            return run_dir, []
        self.save_run_config(run_dir)
        opened = [*([logger] if logger is not None else []), *loggers]
        for each in opened:
            each.log_hyperparams(self.config.as_dict())
        return run_dir, opened

    def save_run_config(self, run_dir: Path) -> None:
        """The run's config.yaml: everything it was trained with, to train it again with --config."""
        self.parser.save(self.config, str(run_dir / "config.yaml"), skip_none=False, overwrite=False)

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


class SaveRunConfig(SaveConfigCallback):
    """The Trainer's config.yaml, in the run directory (the Trainer's default_root_dir) whatever its loggers."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        path = Path(trainer.default_root_dir) / "config.yaml"
        self.parser.save(self.config, str(path), skip_none=False, overwrite=False)


class TrainerCLI(ProjectCLI):
    """ProjectCLI that also builds the Trainer (train.py): with its run directory, loggers and checkpoints.

    ``loggers`` join the one --logger names, as the loops' ``start_run`` takes them.
    """

    def __init__(self, args: list[str] | None = None, loggers: Sequence[Logger] = (), **kwargs: Any) -> None:
        self.extra_loggers = list(loggers)
        kwargs.setdefault("save_config_kwargs", {"save_to_log_dir": False})  # SaveRunConfig knows where
        super().__init__(args, save_config_callback=SaveRunConfig, **kwargs)

    def save_run_config(self, run_dir: Path) -> None:
        """Not yet: Lightning's SaveConfigCallback writes it as fit starts, once train.py's checks have passed."""

    def instantiate_trainer(self, **kwargs: Any):
        """The Trainer, with its run directory, loggers and checkpoints; under --trainer.barebones, none of them."""
        barebones = self.config.trainer.barebones  # Lightning's loop alone: no logger, checkpoints or progress bar
        if barebones and self.config.test:
            raise ConfigError("--trainer.barebones logs nothing, so a test would have no figures: add --test false")
        strategy = with_dist_timeout(self.config_init.trainer.strategy, self.config.dist_timeout, StrategyRegistry)
        self.run_dir, self.loggers = self.start_run("trainer", self.extra_loggers)  # under barebones: no --logger
        self.best_checkpoint = None
        if barebones:
            off = {**BAREBONES, "logger": self.loggers or False}  # a logger passed in is Lightning's to refuse
            return LightningCLI.instantiate_trainer(self, strategy=strategy, default_root_dir=self.run_dir, **off)
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
        return LightningCLI.instantiate_trainer(  # ProjectCLI's builds none
            self,
            default_root_dir=self.run_dir,
            logger=self.loggers or False,
            callbacks=callbacks,
            strategy=strategy,
            **kwargs,
        )


class CheckpointCLI(ProjectCLI):
    """ProjectCLI for a trained model (evaluate.py, predict.py, export.py, serve.py): when --ckpt_path names a
    checkpoint inside a run directory, that run's config.yaml sets the model and the data, under the flags."""

    def config_files(self, args: list[str] | None) -> list[str]:
        return run_config_of(sys.argv[1:] if args is None else args)


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
