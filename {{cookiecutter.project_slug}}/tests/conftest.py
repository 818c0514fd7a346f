import os
import shutil
from pathlib import Path

import pytest

import train
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.data import DataModule, dataset
from {{ cookiecutter.package_name }}.runs import DEFAULT_LOGGER
from ladder.history import History

import fake_data

# No test may reach the network or prompt: wandb runs, if any, are disabled.
os.environ["WANDB_MODE"] = "disabled"

# Fast, quiet options for any run a test starts; a test adds its own after these.
QUICK = ["--logger", "none", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
# Small images (the tests check the plumbing, not the accuracy), and batches from the main process: a
# loader's workers start a process server of their own, which costs a second import of the project.
# test_data and test_distributed run workers.
QUICK_DATA = {"image_size": min(16, dataset.IMAGE_SIZE), "num_workers": 0}
QUICK += [option for name, value in QUICK_DATA.items() for option in (f"--data.{name}", str(value))]

fake_data.accept_fake_files()  # CIFAR-10's MD5 check, which no fake file passes


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """A tiny copy of the data set in its real on-disk format, written once per session (none for the digits)."""
    return str(fake_data.write(tmp_path_factory.mktemp("data")))


@pytest.fixture
def quick_args(tmp_path, data_dir) -> list[str]:
    return [*QUICK, "--run_root", str(tmp_path / "runs"), "--data.data_dir", data_dir]


@pytest.fixture
def datamodule(data_dir) -> DataModule:
    """The bake's DataModule on its fake files, with the data options of QUICK: what a run of QUICK trains on."""
    return DataModule(data_dir=data_dir, **QUICK_DATA)


RUNG_ENTRIES = {"trainer": train, "fabric": train_fabric, "manual": train_manual}
Series = dict[str, list[tuple[int, float]]]  # metric -> [(step, value), ...] in the order they were logged


@pytest.fixture(scope="session")
def recorders() -> dict[str, History]:
    """What each rung of ``trained_runs`` logged to a logger passed in (test_logging reads it)."""
    return {rung: History() for rung in RUNG_ENTRIES}


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, data_dir, recorders) -> dict:
    """One short run of each rung, for every test that reads a run's checkpoints or logs: with the project's
    default logger (offline) and a History logger. Trained once per session: each run takes seconds here."""
    args = [*QUICK, "--logger", DEFAULT_LOGGER, "--trainer.max_epochs", "2", "--data.batch_size", "64"]
    args += ["--run_root", str(tmp_path_factory.mktemp("trained")), "--data.data_dir", data_dir]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")  # the other tests disable wandb; these runs let it write
        return {rung: entry.main(args, loggers=[recorders[rung]]) for rung, entry in RUNG_ENTRIES.items()}


@pytest.fixture(scope="session")
def manual_ddp_run(tmp_path_factory, data_dir) -> Path:
    """The manual loop's run on 2 processes under torchrun, with test_distributed's PARITY_ARGS: every other
    rung, launched its own way, on two nodes, under SLURM and after a node died, must end with its weights.
    Trained once per session, and once for all the workers of ``pytest -n`` (the first to need it trains it
    under a file lock in their common directory, as pytest-xdist's docs show; the others wait and read it):
    each process costs seconds of imports here."""
    from filelock import FileLock

    from bounded import run_bounded
    from test_distributed import PARITY_ARGS, ddp_command, ddp_env

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    run_root = shared / "manual_ddp"
    with FileLock(f"{run_root}.lock"):
        if not list(run_root.glob("*-manual/checkpoints/last.pt")):  # none yet, or a failed one: train
            shutil.rmtree(run_root, ignore_errors=True)
            args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(run_root), *PARITY_ARGS]
            result = run_bounded(ddp_command("manual", args), ddp_env())
            assert result.returncode == 0, result.stderr[-4000:]
            assert result.stdout.count("test accuracy:") == 1, result.stdout  # rank 0 alone prints
    [run_dir] = run_root.glob("*-manual")  # one run directory for both ranks
    return run_dir
