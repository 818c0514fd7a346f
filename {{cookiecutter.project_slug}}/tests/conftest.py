import os

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
