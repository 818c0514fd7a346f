import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import compare
import train
import train_manual
from {{ cookiecutter.package_name }}.cli import ProjectCLI
from {{ cookiecutter.package_name }}.runs import wandb_should_go_offline

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_option():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # as pytest's pythonpath does, for a fresh process
    out = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--config", "--model.lr", "--trainer.max_epochs", "--data.batch_size", "--logger", "--run_root"):
        assert flag in out


def test_overrides_reach_the_objects(quick_args):
    cli = ProjectCLI(path="manual", args=[*quick_args, "--model.lr", "0.01", "--trainer.max_epochs", "2",
                                          "--data.batch_size", "8", "--model.net.width", "4"])
    assert cli.model.hparams.lr == 0.01 and cli.config.trainer.max_epochs == 2
    assert cli.datamodule.hparams.batch_size == 8 and cli.model.net.features[0].out_channels == 4
    assert cli.model.net.classifier[-1].out_features == cli.datamodule.num_classes


def test_config_file_round_trip(quick_args, tmp_path):
    first = ProjectCLI(path="manual", args=[*quick_args, "--model.lr", "0.005", "--data.batch_size", "16"])
    path = tmp_path / "config.yaml"
    path.write_text(first.parser.dump(first.config))
    second = ProjectCLI(path="manual", args=["--config", str(path)])
    assert second.config.clone().as_dict() | {"config": None} == first.config.as_dict() | {"config": None}
    assert second.model.hparams == first.model.hparams and second.datamodule.hparams == first.datamodule.hparams


def test_train_fast_dev_run_prints_test_accuracy(quick_args, capsys):
    results = train.main([*quick_args, "--trainer.fast_dev_run", "true"])
    assert 0 <= results["test"]["acc"] <= 1
    assert "test accuracy:" in capsys.readouterr().out


def test_train_manual_one_epoch_learns_and_checkpoints(quick_args):
    results = train_manual.main([*quick_args, "--trainer.max_epochs", "1"])
    assert results["test"]["acc"] > 0.5  # ten classes: chance is 0.1
    ckpt = torch.load(results["run_dir"] / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 0 and (results["run_dir"] / "checkpoints" / "best.pt").exists()


def test_a_new_run_never_reuses_a_directory(quick_args):
    dirs = {ProjectCLI(path="manual", args=quick_args).run_dir for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() for d in dirs)


def test_compare_check_and_json(quick_args, tmp_path):
    out = tmp_path / "figures.json"
    code = compare.main(["--check", "--json", str(out), "--plot", str(tmp_path / "c.png"), *quick_args,
                         "--trainer.max_epochs", "2"])
    figures = json.loads(out.read_text())
    assert code == 0 and figures["identical"] is True and (tmp_path / "c.png").stat().st_size > 0
    for key in ("epochs", "max_abs_weight_diff", "lightning_ms_per_step", "manual_ms_per_step", "overhead_ratio"):
        assert key in figures


@pytest.mark.parametrize(("env", "offline"), [({}, True), ({"WANDB_API_KEY": "x" * 40}, False),
                                              ({"WANDB_MODE": "online"}, False)])
def test_wandb_goes_offline_without_a_key(monkeypatch, tmp_path, env, offline):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for var in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert wandb_should_go_offline() is offline
