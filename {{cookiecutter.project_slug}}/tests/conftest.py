{%- set ds = cookiecutter.dataset -%}
import os

import pytest

import fake_data

# No test may reach the network or prompt: wandb runs, if any, are disabled.
os.environ["WANDB_MODE"] = "disabled"

# Fast, quiet options for any run a test starts; a test adds its own after these.
QUICK = ["--logger", "none", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
# Batches from the main process: a loader's workers start a process server of their own, which costs a
# second process's imports. test_data and test_distributed run them.
QUICK += ["--data.num_workers", "0"]
{%- if ds == "image_folder" %}
QUICK += ["--data.image_size", "16"]  # small images: the tests check the plumbing, not the accuracy
{%- endif %}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """{{ "The digits are embedded; the directory stays empty." if ds == "digits" else "A tiny copy of the data set in its real on-disk format, written once per session." }}"""
    return str(fake_data.write(tmp_path_factory.mktemp("data")))


@pytest.fixture
def quick_args(tmp_path, data_dir) -> list[str]:
    return [*QUICK, "--run_root", str(tmp_path / "runs"), "--data.data_dir", data_dir]
{%- if ds == "cifar10" %}


fake_data.accept_fake_files()
{%- endif %}
