"""Where a run writes: a fresh directory per run, and the logger both paths share."""

import netrc
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

LoggerName = Literal["wandb", "tensorboard", "csv", "none"]


def new_run_dir(root: str | Path, path: str) -> Path:
    """Create ``root/<date>_<time>-<path>``, adding ``-1``, ``-2``... so an earlier run is never overwritten."""
    stem = f"{datetime.now():%Y%m%d_%H%M%S}-{path}"
    for suffix in ["", *(f"-{i}" for i in range(1, 1000))]:
        run_dir = Path(root) / f"{stem}{suffix}"
        try:
            run_dir.mkdir(parents=True)  # atomic: two runs can never claim the same directory
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run directory for {stem} under {root}")


RUN_DIR_VARIABLE = "PROJECT_RUN_DIR"


def shared_run_dir(root: str | Path, path: str, rank: int) -> Path | None:
    """The run directory, made once per run however many processes it has.

    Rank 0 makes it and names it in the environment, which the processes Lightning launches for DDP
    inherit. Processes started apart (torchrun) get None here; the manual loop sends them rank 0's.
    """
    if rank == 0:
        run_dir = new_run_dir(root, path)
        os.environ[RUN_DIR_VARIABLE] = str(run_dir)
        return run_dir
    return Path(os.environ[RUN_DIR_VARIABLE]) if RUN_DIR_VARIABLE in os.environ else None


def build_logger(name: LoggerName, run_dir: Path, project: str, path: str, group: str | None = None) -> Logger | None:
    """The experiment logger of one run.

    wandb shows ``path`` ("lightning" or "manual") as the job type and ``group`` as the group: runs of
    one config share a group, so the two paths sit side by side.
    """
    if name == "none":
        return None
    if name == "csv":
        return CSVLogger(save_dir=run_dir, name="", version="")  # run_dir/metrics.csv
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
        name=run_dir.name,
        save_dir=str(run_dir),
        offline=offline,
        job_type=path,
        group=group,
        settings=settings,
    )


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


def close_logger(logger: Logger | None) -> None:
    """Flush the logger and, for wandb, finish the run so a second run in this process starts clean."""
    if logger is None:
        return
    logger.finalize("success")
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish()
