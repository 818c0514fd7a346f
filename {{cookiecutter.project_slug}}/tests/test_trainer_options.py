"""Every trainer option is mirrored by the hand-written loops bit for bit, refused in one line, or without effect."""

import re
from pathlib import Path

import pytest
import torch

import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.errors import one_line_errors
from {{ cookiecutter.package_name }}.trainer_options import MIRRORED, OPTIONS, REFUSED, markdown_table, trainer_defaults
from ladder.compare import compare

from conftest import QUICK

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # what a loop does with an option depends on no data set: one bake runs these


def test_every_option_of_the_installed_trainer_is_classified():
    assert set(OPTIONS) == set(trainer_defaults()), "classify the new option in trainer_options.OPTIONS"


def test_the_docs_print_the_table_of_the_code():
    assert markdown_table() in (ROOT / "docs" / "trainer_options.md").read_text()


def odd_batch_size(data_dir: str, groups: int) -> int:
    """A batch size whose epoch has a batch count that is not a multiple of ``groups``, with a partial last batch."""
    data = DataModule(data_dir=data_dir)
    data.setup("fit")
    n = len(data.splits["train"])
    return next(b for b in range(n // 10, 0, -1) if n % b and -(-n // b) % groups)


MIRRORS = {
    "clip by norm": ["--trainer.gradient_clip_val", "0.05"],
    "clip by value": ["--trainer.gradient_clip_val", "0.002", "--trainer.gradient_clip_algorithm", "value"],
    "accumulate, a partial last group": ["--trainer.accumulate_grad_batches", "3"],
    "max_steps mid-epoch": ["--trainer.max_steps", "13"],
    "limits": ["--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "0.5"],
    "a share of the batches": ["--trainer.limit_train_batches", "0.5"],
    "validation every 2 epochs": ["--trainer.check_val_every_n_epoch", "2", "--trainer.max_epochs", "3"],
    "all at once": ["--trainer.accumulate_grad_batches", "2", "--trainer.gradient_clip_val", "0.1"]
    + ["--trainer.max_steps", "17", "--trainer.limit_train_batches", "9"],
}


def ladder_args(quick_args: list[str], data_dir: str) -> list[str]:
    return [*quick_args, "--trainer.max_epochs", "2", "--data.batch_size", str(odd_batch_size(data_dir, 3))]


@pytest.fixture(scope="module")
def plain_history(data_dir, tmp_path_factory) -> list[dict]:
    """The Trainer's epochs with no option set: a mirrored option must change them."""
    quick_args = [*QUICK, "--run_root", str(tmp_path_factory.mktemp("plain")), "--data.data_dir", data_dir]
    return compare(ladder_args(quick_args, data_dir), rungs=["trainer"])["history"]["trainer"]


@pytest.mark.parametrize("name", MIRRORS)
@pytest.mark.timeout(180)  # three rungs of three epochs: past 60 s on a 28x28 bake beside a busy process
def test_a_mirrored_option_keeps_every_rung_bit_identical(quick_args, data_dir, plain_history, name):
    figures = compare([*ladder_args(quick_args, data_dir), *MIRRORS[name]], rungs=["fabric", "trainer"])
    assert figures["identical"] and figures["max_abs_weight_diff"] == 0.0, figures["max_abs_weight_diff"]
    assert figures["same_epoch_metrics"]
    assert figures["history"]["trainer"] != plain_history  # the option changed the training


def test_fast_dev_run_trains_as_many_batches_on_every_rung(quick_args):
    figures = compare([*quick_args, "--trainer.fast_dev_run", "3"], rungs=["fabric", "trainer"])
    assert figures["identical"] and figures["max_abs_weight_diff"] == 0.0


REFUSALS = {
    "callbacks": "lightning.pytorch.callbacks.LearningRateMonitor",
    "max_time": "00:00:01:00",
    "overfit_batches": "2",
    "val_check_interval": "0.5",
    "deterministic": "true",
    "benchmark": "true",
    "detect_anomaly": "true",
    "plugins": "lightning.pytorch.plugins.environments.LightningEnvironment",
    "sync_batchnorm": "true",
    "reload_dataloaders_every_n_epochs": "1",
}


def test_every_refused_option_has_a_refusal_test():
    assert set(REFUSALS) == {name for name, option in OPTIONS.items() if option.kind == REFUSED}


@pytest.mark.parametrize("entry", [train_manual, train_fabric], ids=["manual", "fabric"])
@pytest.mark.parametrize("name", REFUSALS)
def test_a_refused_option_stops_in_one_line_before_anything_is_written(quick_args, tmp_path, capsys, entry, name):
    with pytest.raises(SystemExit) as stop, one_line_errors():
        entry.main([*quick_args, f"--trainer.{name}", REFUSALS[name]])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.match(rf"error: --trainer\.{name} .*: the {entry.RUNG} loop does not mirror it", err), err
    assert not (tmp_path / "runs").exists()


def test_the_table_names_every_mirrored_option_in_the_loops():
    mirrored_here = {"max_epochs", "max_steps", "accumulate_grad_batches", "gradient_clip_val"}
    assert mirrored_here <= {name for name, option in OPTIONS.items() if option.kind == MIRRORED}
    source = (ROOT / "train_manual.py").read_text()
    for option in ("limit_train_batches", "max_steps", "accumulate_grad_batches", "gradient_clip_val"):
        assert f"--trainer.{option}" in source  # the line that mirrors it says so
    assert torch.nn.utils.clip_grad_norm_.__name__ in source
