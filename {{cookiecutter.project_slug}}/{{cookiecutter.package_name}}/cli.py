"""One command line for every entry: the rungs, evaluate.py and predict.py parse the same options.

LightningCLI turns the typed ``__init__`` arguments of the model, the network and the DataModule into
flags and YAML keys. The hand-written loops parse through this same class, so the ways of training
cannot drift apart in what they accept or in how the seed, the network and the data are built. This
module parses, and nothing else: the run directory and loggers are ``runs.py``'s, the Trainer is
``trainer.py``'s.
"""

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveInt
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from .data import DataModule
from .errors import exit_with
from .module import LitClassifier
from .runs import DEFAULT_LOGGER, PROJECT, LoggerName

# configs/ sits at the project root, beside this package.
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


class OneLineErrorParser(LightningArgumentParser):
    """A bad option or value ends the run in one line that names it and its allowed range, with exit status 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a parser used for checking, not for a command line
            super().error(message, ex)
        exit_with(f"{' '.join(message.split())} (--help lists every option)")

    def add_function_arguments(self, function: Any, *args: Any, linked_targets: Any = None, **kwargs: Any) -> list:
        """A network named by its builder function (``--model.net torchvision.models.resnet18``).

        jsonargparse 4.53 hands a function the ``linked_targets`` of our links into ``model.net``, which
        only ``add_class_arguments`` accepts; it clears the linked arguments' "required" mark itself after.
        """
        return super().add_function_arguments(function, *args, **kwargs)


class ProjectCLI(LightningCLI):
    """Parses the config and the flags, seeds, and builds the DataModule and the model; no Trainer.

    The hand-written loops (train_manual.py, train_fabric.py) parse with this class and open their run
    with ``runs.start_run``; train.py parses with ``trainer.TrainerCLI``, which also builds the Trainer;
    evaluate.py, predict.py, deploy/export.py and deploy/serve.py parse with ``CheckpointCLI``, which reads the
    checkpoint's run config first.
    """

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        defaults = [str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.exists() else []
        kwargs.setdefault("datamodule_class", DataModule)
        super().__init__(
            LitClassifier,
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
        for name, kind, default, description in RUN_OPTIONS + LOGGER_OPTIONS:
            parser.add_argument(f"--{name}", type=kind, default=default, help=description)
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


class CheckpointCLI(ProjectCLI):
    """ProjectCLI for a trained model (evaluate.py, predict.py, deploy/export.py, deploy/serve.py): when --ckpt_path
    names a checkpoint inside a run directory, that run's config.yaml sets the model and the data, under the flags."""

    def config_files(self, args: list[str] | None) -> list[str]:
        return run_config_of(sys.argv[1:] if args is None else args)


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


# The project's own options, beside the model's, the data's and the Trainer's: (name, type, default, help).
# Where a run is kept, what it resumes, and how it runs: none of them changes its result.
RUN_OPTIONS = [
    ("run_root", str, "runs", "Each run gets a new directory here."),
    ("run_name", str | None, None, "Names the run's directory <run_name>-<rung> (default: <date>_<time>-<rung>)."),
    ("ckpt_path", str | None, None, "Resume from this checkpoint ('last': the newest), in its run's directory."),
    (
        "trust_checkpoint",
        bool,
        False,
        "Unpickle any object in --ckpt_path, which can run code: only for a file you trust.",
    ),
    ("test", bool, True, "After training, test the best checkpoint on the test split (false: train only)."),
    (
        "save_every_n_steps",
        NonNegativeInt,
        200,
        "The hand-written loops also write last.pt every N steps (0: at epoch ends only).",
    ),
    (
        "dist_timeout",
        PositiveInt,
        600,
        "Under DDP, seconds a rank waits for the others in a collective before it stops.",
    ),
]
# The experiment logger, and where a wandb run goes.
LOGGER_OPTIONS = [
    ("logger", LoggerName, DEFAULT_LOGGER, "Experiment logger."),
    (
        "logger_group",
        str | None,
        None,
        "The wandb group of this run (default: a hash of the config, shared by its runs).",
    ),
    ("logger_project", str, PROJECT, "The wandb project of this run."),
    (
        "logger_entity",
        str | None,
        None,
        "The wandb team or user that owns the project (default: yours, or WANDB_ENTITY).",
    ),
]
