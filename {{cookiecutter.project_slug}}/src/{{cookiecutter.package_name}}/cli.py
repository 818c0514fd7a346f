"""One command line for every entry: train.py, train_manual.py, evaluate.py and predict.py parse the same options.

LightningCLI turns the typed ``__init__`` arguments of the model, the network and the DataModule into
flags and YAML keys. The hand-written loop parses through this same class, so the two paths cannot
drift apart in what they accept or in how the seed, the network and the data are built.
"""

import hashlib
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveInt
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from lightning.pytorch.utilities import rank_zero_only

from .checkpoints import CheckpointError
from .data import DataError, DataModule
from .module import Classifier
from .recipe import NonFiniteLossError
from .runs import LoggerName, build_logger, shared_run_dir

PROJECT = {{ cookiecutter.__wandb_project | tojson }}  # the wandb project
# configs/ sits at the project root, two levels above this package's src/ directory.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
TRAINING = ("lightning", "manual")  # the paths that train, and so get a run directory and a logger
# model.py imports torch only, so the network's arguments are plain ints and floats; their domains are
# checked here, with jsonargparse's own types, before anything is built.
NETWORK_DOMAINS = {
    "num_classes": PositiveInt,
    "in_channels": PositiveInt,
    "width": PositiveInt,
    "hidden": PositiveInt,
    "dropout": ClosedUnitInterval,
}


# Options that change how a run is kept or launched, not its result: they stay out of the config's hash.
RUN_ONLY_OPTIONS = ("config", "logger", "run_root", "ckpt_path", "trust_checkpoint", "save_every_n_steps")
RUN_ONLY_OPTIONS += ("dist_timeout",)


class ConfigError(ValueError):
    """A combination of options that this project cannot run; the entry points print it as one line."""


class OneLineErrorParser(LightningArgumentParser):
    """A bad option or value ends the run in one line that names it and its allowed range, with exit status 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a parser used for checking, not for a command line
            super().error(message, ex)
        print(f"error: {' '.join(message.split())} (--help lists every option)", file=sys.stderr)
        raise SystemExit(2)


class ProjectCLI(LightningCLI):
    """Parses the config and the flags, seeds, and builds the DataModule and the model.

    ``path="lightning"`` also builds the Trainer; ``"manual"`` stops before it, for the hand-written
    loop. Both get a fresh ``run_dir`` and the run's ``logger``. Other paths (evaluate, predict) get
    neither; given a checkpoint inside a run directory, they read that run's config.yaml first.
    """

    def __init__(self, path: str = "lightning", args: list[str] | None = None, **kwargs: Any) -> None:
        self.path, self.run_dir, self.logger = path, None, None
        defaults = [str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.exists() else []
        if path not in TRAINING:
            defaults += run_config_of(sys.argv[1:] if args is None else args)
        super().__init__(
            Classifier,
            DataModule,
            args=args,
            run=False,  # `python train.py` with no subcommand: the entries call fit and test themselves
            auto_configure_optimizers=False,  # the optimizer lives in recipe.py, for both paths
            parser_kwargs={"default_config_files": defaults},
            parser_class=OneLineErrorParser,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--logger", type=LoggerName, default={{ cookiecutter.logger | tojson }}, help="Experiment logger.")
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
            help="The manual loop also writes last.pt every N steps (0: only at epoch ends, as Lightning does).",
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
        config = self.config.model.net
        for name, value in (config.init_args or {}).items():
            if name in NETWORK_DOMAINS and value is not None:
                try:
                    NETWORK_DOMAINS[name](value)
                except ValueError as error:
                    raise ConfigError(f"--model.net.{name}: {error}") from None

    def instantiate_trainer(self, **kwargs: Any):
        # Reached once the model and the data exist: the run directory is made only for a valid config.
        if self.path not in TRAINING:
            return None
        # Under DDP every process parses the config; only rank 0 makes the run directory and logs.
        rank = rank_zero_only.rank  # from RANK, LOCAL_RANK or SLURM_PROCID: 0 in a single process
        self.run_dir = shared_run_dir(self.config.run_root, self.path, rank)
        chosen = self.config_init.trainer.logger  # a --trainer.logger of the user's wins over --logger
        if rank != 0:
            self.logger = None
        elif isinstance(chosen, Logger) or chosen is False:
            self.logger = chosen or None
        else:
            self.logger = build_logger(self.config.logger, self.run_dir, PROJECT, self.path, self.config_id())
        if self.path == "manual":
            return None
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
        strategy = self.config_init.trainer.strategy
        registered = StrategyRegistry[strategy] if isinstance(strategy, str) and strategy in StrategyRegistry else {}
        if registered.get("strategy") is DDPStrategy:  # "ddp" and its variants, with --dist_timeout
            strategy = DDPStrategy(timeout=timedelta(seconds=self.config.dist_timeout), **registered["init_params"])
        return super().instantiate_trainer(
            default_root_dir=self.run_dir, logger=self.logger or False, callbacks=callbacks, strategy=strategy, **kwargs
        )

    def config_id(self) -> str:
        """A short hash of what decides the result: both paths run with one config share it (the wandb group)."""
        config = self.config.clone()
        for key in RUN_ONLY_OPTIONS:
            config.pop(key, None)
        return "config-" + hashlib.sha1(self.parser.dump(config, skip_check=True).encode()).hexdigest()[:8]

    def save_run_config(self) -> None:
        """Write config.yaml into the run directory, as Lightning's SaveConfigCallback does for its path."""
        self.parser.save(self.config, str(self.run_dir / "config.yaml"), skip_none=False, overwrite=False)


def run_config_of(args: list[str]) -> list[str]:
    """[runs/<run>/config.yaml] when --ckpt_path names a checkpoint inside a run directory, else []."""
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--ckpt_path=") else None
        if arg == "--ckpt_path" and i + 1 < len(args):
            value = args[i + 1]
        if value:
            config = Path(value).resolve().parent.parent / "config.yaml"
            return [str(config)] if config.is_file() else []
    return []


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line on stderr and exit status 2, not a traceback.

    Under DDP the line names the rank, and a stall says what the rank waited on.
    """
    try:
        yield
    except (ConfigError, DataError, CheckpointError, NonFiniteLossError) as error:
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


def describe_stall(error: RuntimeError) -> str | None:
    """What a stalled rank waited on, from the timeout error of a loader or of a collective; else None."""
    message = " ".join(str(error).split())
    if "DataLoader timed out" in message:
        return f"{message}: a loader worker sent no batch in time (--data.worker_timeout); it is stuck or too slow"
    if "Timed out" in message:
        return f"waited in {collective_of(error)} for the other ranks in vain ({message}); see --dist_timeout"
    if "Connection closed by peer" in message:
        return f"another rank left during {collective_of(error)} ({message}); its own error line says why"
    return None


def collective_of(error: BaseException) -> str:
    """The collective call that ``error`` came from: the innermost torch.distributed call, or DDP's backward."""
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    collectives = [name for name in frames if name in COLLECTIVES]
    if collectives:
        return collectives[-1]
    return "backward (DDP's gradient all-reduce)" if "backward" in frames else frames[-1]


COLLECTIVES = {"barrier", "all_reduce", "all_gather", "all_gather_object", "broadcast", "broadcast_object_list"}
