"""Where a run (one training, by any rung) writes: a fresh directory, and its logger."""

import csv
import hashlib
import netrc
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch import LightningDataModule
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from .checkpoints import find_checkpoint, run_dir_of
from .distributed import from_rank_zero
from .recipe import Metrics, prefixed

LoggerName = Literal["wandb", "tensorboard", "csv", "none"]
DEFAULT_LOGGER = "{{ cookiecutter.logger }}"  # chosen when the project was baked; --logger switches
PROJECT = "{{ cookiecutter.__wandb_project }}"  # the wandb project (the slug: letters, digits, ".", "_", "-")
# Options that change how a run is kept or launched, not its result: they stay out of the config's hash.
RUN_ONLY_OPTIONS = ("config", "logger", "run_root", "run_name", "ckpt_path", "trust_checkpoint")
RUN_ONLY_OPTIONS += ("save_every_n_steps", "dist_timeout", "logger_group", "logger_project", "logger_entity", "test")


@dataclass
class RunResult:
    """What a training entry's ``main`` returns: the trained network, its data, the run's directory, the test."""

    net: torch.nn.Module
    datamodule: LightningDataModule
    run_dir: Path | None  # None on ranks other than 0 under the Trainer
    test: dict[str, float] | None = None  # {"loss": ..., "acc": ...}; None under --test false


class EpochLogger(Logger):
    """A logger of your own, kept in memory: each row a run logs, with its epoch, goes to ``log_epoch``.

    Subclass it and pass it to any rung's ``main(args, loggers=[...])``: every rung logs the same rows at
    the same steps to it. It writes nothing and has no experiment.
    """

    name, version = "epochs", 0

    @property
    def experiment(self) -> None:
        return None

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "epoch" in metrics:
            self.log_epoch(int(metrics["epoch"]), {key: float(value) for key, value in metrics.items()}, step)

    def log_epoch(self, epoch: int, row: dict[str, float], step: int | None) -> None:
        raise NotImplementedError


def new_run_dir(root: str | Path, rung: str, name: str | None = None) -> Path:
    """Create ``root/<name>-<rung>`` (name: ``<date>_<time>`` by default), adding ``-1``, ``-2``... so an
    earlier run is never overwritten."""
    stem = f"{name or format(datetime.now(), '%Y%m%d_%H%M%S')}-{rung}"
    for suffix in ["", *(f"-{i}" for i in range(1, 1000))]:
        run_dir = Path(root) / f"{stem}{suffix}"
        try:
            run_dir.mkdir(parents=True)  # atomic: two runs can never claim the same directory
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run directory for {stem} under {root}")


RUN_DIR_VARIABLE = "PROJECT_RUN_DIR"


def shared_run_dir(config: Any, rung: str, rank: int) -> Path | None:
    """The run directory, made once per run however many processes it has, by rank 0: a new one, or the one
    that holds the checkpoint it resumes (--ckpt_path), so a resumed run goes on where it was.

    Rank 0 names it in the environment, which the processes Lightning launches for DDP inherit. Under a
    process group that exists already (torchrun, Fabric), the other ranks get it from rank 0; otherwise
    (torchrun, before the Trainer makes its group) they get None.
    """
    run_dir = None
    if rank == 0:
        run_dir = run_dir_of(find_checkpoint(config, rung)) or new_run_dir(config.run_root, rung, config.run_name)
        os.environ[RUN_DIR_VARIABLE] = str(run_dir)
    elif RUN_DIR_VARIABLE in os.environ:
        run_dir = Path(os.environ[RUN_DIR_VARIABLE])
    return from_rank_zero(run_dir)


def start_run(
    cli: Any, rung: str, loggers: Sequence[Logger] = (), write_config: bool = True
) -> tuple[Path | None, list[Logger]]:
    """Open a run of ``cli``'s config (a ``cli.ProjectCLI``): its directory, its config.yaml and its loggers.

    Rank 0 makes the directory, or takes the one of the checkpoint it resumes; under a process group the
    other ranks get it too. The loggers are the one --logger names, then ``loggers``, on rank 0 only; in a
    resumed run's directory they continue its tracker run (the same wandb run, the same TensorBoard and CSV
    files). ``write_config=False`` leaves config.yaml to the Trainer, which writes it once fit starts.
    ``rung`` names the directory, runs/<date>_<time>-<rung>.

    Called once the model and the data exist, so an invalid config writes nothing, and once the process
    group is up (torchrun's or Fabric's): every rank then restarts its random state from the run's seed, as
    the Trainer's DDP setup does (``reset_seed``), so dropout draws the same masks on every rung.
    """
    if torch.distributed.is_initialized():
        reset_seed()
    config, rank = cli.config, rank_zero_only.rank  # from RANK, LOCAL_RANK or SLURM_PROCID: 0 in one process
    run_dir = shared_run_dir(config, rung, rank)
    if rank != 0:
        return run_dir, []
    if write_config:  # everything the run was trained with, to train it again with --config (a resume's: updated)
        cli.parser.save(config, str(run_dir / "config.yaml"), skip_none=False, overwrite=True)
    chosen = cli.config_init.trainer.logger  # a --trainer.logger of the user's wins over --logger
    if isinstance(chosen, Logger) or chosen is False or config.trainer.barebones:
        logger = chosen or None  # --trainer.barebones: no --logger, on every rung
    else:
        where = {"project": config.logger_project, "entity": config.logger_entity}
        logger = build_logger(config.logger, run_dir, rung, config.logger_group or config_id(cli), **where)
    opened = [*([logger] if logger is not None else []), *loggers]
    for each in opened:
        each.log_hyperparams(config.as_dict())
    return run_dir, opened


def config_id(cli: Any) -> str:
    """A short hash of what decides the result: the runs of one config share it (the wandb group)."""
    config = cli.config.clone()
    for key in RUN_ONLY_OPTIONS:
        config.pop(key, None)
    return "config-" + hashlib.sha1(cli.parser.dump(config, skip_check=True).encode()).hexdigest()[:8]


def build_logger(
    name: LoggerName, run_dir: Path, rung: str, group: str | None, project: str, entity: str | None = None
) -> Logger | None:
    """The experiment logger of one run; ``project`` and ``entity`` say where a wandb run goes.

    wandb shows ``rung`` ("trainer", "fabric", "manual") as the job type and ``group`` as the group: runs of
    one config share a group, so the rungs sit side by side.
    """
    if name == "none":
        return None
    if name == "csv":
        return AppendingCSVLogger(save_dir=run_dir, name="", version="")  # run_dir/metrics.csv
    if name == "tensorboard":
        return TensorBoardLogger(save_dir=run_dir, name="", version="")  # tensorboard --logdir runs
    offline = wandb_should_go_offline()
    if offline:
        print(
            f"wandb: no API key found, logging offline to {run_dir}/wandb; "
            f"upload later with: wandb sync {run_dir}/wandb/offline-run-*"
        )
    import wandb

    # Offline there is no run page to link to: the line above says all, so wandb itself stays silent.
    settings = wandb.Settings(silent=True) if offline else None
    return WandbLogger(
        project=project,
        entity=entity,
        name=run_dir.name,
        save_dir=str(run_dir),
        offline=offline,
        job_type=rung,
        group=group,
        settings=settings,
        **resumed_wandb_run(run_dir),
    )


def resumed_wandb_run(run_dir: Path) -> dict[str, str]:
    """For a run directory that logged to wandb already (a resumed run's), that run's id: its rows go on there."""
    files = sorted((run_dir / "wandb" / "latest-run").glob("run-*.wandb"))  # wandb's run-<run id>.wandb
    return {"id": files[0].stem.removeprefix("run-"), "resume": "allow"} if files else {}


class AppendingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, which appends to a resumed run's metrics.csv where Lightning's deletes it."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Keep the metrics.csv of the run this one resumes, and its columns: the writer appends to it."""
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


def wandb_should_go_offline() -> bool:
    """True when nobody chose a wandb mode and no API key is at hand, so wandb would prompt or hang."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError):
        auth = None
    return auth is None


@rank_zero_only
def say(*args: object) -> None:
    """print, on rank 0 alone: the other processes of a DDP run stay quiet."""
    print(*args)


def log_epoch(loggers: list[Logger], epoch: int, steps: int, train: Metrics, val: dict[str, float] | None) -> None:
    """A hand-written loop's epoch row, at the step of the epoch's last batch (counted from 0), as the Trainer."""
    row = {"epoch": epoch, **prefixed("train", train.compute_and_reset()), **prefixed("val", val)}
    for logger in loggers:
        logger.log_metrics(row, step=steps - 1)
    say(f"epoch {epoch}: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if "/" in k))


def log_test(loggers: list[Logger], epochs: int, steps: int, test: dict[str, float]) -> None:
    """The test row, at ``global_step`` with the epoch count, as Trainer.test logs it."""
    for logger in loggers:
        logger.log_metrics({"epoch": epochs, **prefixed("test", test)}, step=steps)
    say(f"test accuracy: {test['acc']:.4f}")


def close_loggers(loggers: list[Logger]) -> None:
    """Flush the loggers and finish a wandb run, so that a second run in this process starts clean."""
    for logger in loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger) and wandb_run_started(logger):
            logger.experiment.finish()


def wandb_run_started(logger: WandbLogger) -> bool:
    """Whether the logger has a wandb run to finish; asking for ``logger.experiment`` would start one."""
    import wandb

    return wandb.run is not None
