"""One command line for both paths: ``train.py`` and ``train_manual.py`` parse the same options.

LightningCLI turns the typed ``__init__`` arguments of the model, the network and the DataModule into
flags and YAML keys. The hand-written loop parses through this same class, so the two paths cannot
drift apart in what they accept or in how the seed, the network and the data are built.
"""

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import Logger

from .data import DataModule
from .module import Classifier
from .runs import LoggerName, build_logger, new_run_dir

PROJECT = {{ cookiecutter.__wandb_project | tojson }}  # the wandb project
# configs/ sits at the project root, two levels above this package's src/ directory.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


class ProjectCLI(LightningCLI):
    """Parses the config and the flags, seeds, and builds the DataModule, the model and the run directory.

    ``path="lightning"`` also builds the Trainer; ``path="manual"`` stops before it, for the
    hand-written loop. Either way ``run_dir`` is a fresh directory and ``logger`` the run's logger.
    """

    def __init__(self, path: str = "lightning", args: list[str] | None = None, **kwargs: Any) -> None:
        self.path = path
        defaults = [str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.exists() else []
        super().__init__(
            Classifier,
            DataModule,
            args=args,
            run=False,  # `python train.py` with no subcommand: train.py calls fit and test itself
            auto_configure_optimizers=False,  # the optimizer lives in recipe.py, for both paths
            parser_kwargs={"default_config_files": defaults},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--logger", type=LoggerName, default={{ cookiecutter.logger | tojson }}, help="Experiment logger.")
        parser.add_argument("--run_root", type=str, default="runs", help="Each run gets a new directory here.")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="Checkpoint to resume from.")
        # The data decides the class count and the channels; the network and the metrics follow.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.net.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.num_channels", "model.net.init_args.in_channels", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any):
        # Reached once the model and the data exist: the run directory is made only for a valid config.
        self.run_dir = new_run_dir(self.config.run_root, self.path)
        chosen = self.config_init.trainer.logger  # a --trainer.logger of the user's wins over --logger
        if isinstance(chosen, Logger) or chosen is False:
            self.logger = chosen or None
        else:
            self.logger = build_logger(self.config.logger, self.run_dir, PROJECT, self.path)
        if self.path == "manual":
            return None
        callbacks = [
            *(self.config_init.trainer.callbacks or []),
            # best.ckpt by validation accuracy, and last.ckpt to resume from
            ModelCheckpoint(dirpath=self.run_dir / "checkpoints", filename="best",
                            monitor="val/acc", mode="max", save_last=True),
        ]
        if self.config.trainer.enable_progress_bar is not False:
            # Redrawing the bar every step costs more than a tiny model's step; every 20 is plenty.
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        return super().instantiate_trainer(
            default_root_dir=self.run_dir, logger=self.logger or False, callbacks=callbacks, **kwargs
        )
