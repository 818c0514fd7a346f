import os
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.data import dataset

import fake_data

# No test may reach the network or prompt: wandb runs, if any, are disabled.
os.environ["WANDB_MODE"] = "disabled"

# Fast, quiet options for any run a test starts; a test adds its own after these.
QUICK = ["--logger", "none", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
# Small images (the tests check the plumbing, not the accuracy), and batches from the main process: a
# loader's workers start a process server of their own, which costs a second import of the project.
# test_data and test_distributed run workers.
QUICK += ["--data.image_size", str(min(16, dataset.IMAGE_SIZE)), "--data.num_workers", "0"]

fake_data.accept_fake_files()  # CIFAR-10's MD5 check, which no fake file passes


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """A tiny copy of the data set in its real on-disk format, written once per session (none for the digits)."""
    return str(fake_data.write(tmp_path_factory.mktemp("data")))


@pytest.fixture
def quick_args(tmp_path, data_dir) -> list[str]:
    return [*QUICK, "--run_root", str(tmp_path / "runs"), "--data.data_dir", data_dir]


@pytest.fixture(scope="session")
def manual_ddp_run(tmp_path_factory, data_dir) -> Path:
    """The manual loop's run on 2 processes under torchrun, with test_distributed's PARITY_ARGS: every other
    rung, launched its own way, on two nodes and under SLURM, must end with its weights. Trained once per
    session: each process costs seconds of imports here."""
    from test_distributed import PARITY_ARGS, ddp_command, ddp_env

    from bounded import run_bounded

    run_root = tmp_path_factory.mktemp("manual_ddp")
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(run_root), *PARITY_ARGS]
    result = run_bounded(ddp_command("manual", args), ddp_env())
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("test accuracy:") == 1, result.stdout  # rank 0 alone prints
    [run_dir] = run_root.glob("*-manual")  # one run directory for both ranks
    return run_dir
