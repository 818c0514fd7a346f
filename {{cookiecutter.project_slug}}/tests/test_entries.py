import argparse
import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import evaluate
import predict
import train
import train_manual
from {{ cookiecutter.package_name }}.checkpoints import load_weights, network_weights
from {{ cookiecutter.package_name }}.cli import CheckpointCLI, ProjectCLI
from {{ cookiecutter.package_name }}.data import DataModule, dataset
from {{ cookiecutter.package_name }}.errors import CheckpointError, one_line_errors
from {{ cookiecutter.package_name }}.runs import start_run, wandb_should_go_offline
from ladder import compare

from bounded import run_bounded
from conftest import RUNG_ENTRIES


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for flag in ("--config", "--model.lr", "--trainer.max_epochs", "--data.batch_size", "--logger", "--run_root"):
        assert flag in out


def test_overrides_reach_the_objects(quick_args):
    overrides = ["--model.lr", "0.01", "--trainer.max_epochs", "2", "--data.batch_size", "8", "--model.net.width", "4"]
    cli = ProjectCLI(args=[*quick_args, *overrides])
    assert cli.model.hparams.lr == 0.01 and cli.config.trainer.max_epochs == 2
    assert cli.datamodule.hparams.batch_size == 8 and cli.model.net.features[0].out_channels == 4
    assert cli.model.net.classifier[-1].out_features == cli.datamodule.num_classes


def test_config_file_round_trip(quick_args, tmp_path):
    first = ProjectCLI(args=[*quick_args, "--model.lr", "0.005", "--data.batch_size", "16"])
    path = tmp_path / "config.yaml"
    path.write_text(first.parser.dump(first.config))
    second = ProjectCLI(args=["--config", str(path)])
    assert second.config.clone().as_dict() | {"config": None} == first.config.as_dict() | {"config": None}
    assert second.model.hparams == first.model.hparams and second.datamodule.hparams == first.datamodule.hparams


def test_train_fast_dev_run_prints_test_accuracy(quick_args, capsys):
    results = train.main([*quick_args, "--trainer.fast_dev_run", "true"])
    # fast_dev_run tests on one batch: the accuracy of the trained network there, counted by hand
    net, data = results.net.eval(), results.datamodule
    x, y = next(iter(data.test_dataloader()))
    with torch.no_grad():
        by_hand = (net(x).argmax(dim=1) == y).float().mean().item()
    assert results.test["acc"] == pytest.approx(by_hand, abs=1e-6)
    assert f"test accuracy: {by_hand:.4f}" in capsys.readouterr().out


def test_train_manual_one_epoch_checkpoints_and_saves_its_config(quick_args):
    results = train_manual.main([*quick_args, "--trainer.max_epochs", "1"])
    # the loop's own test of best.pt, against Trainer.test of the same file in evaluate.py
    best = evaluate.main(["--ckpt_path", str(results.run_dir / "checkpoints" / "best.pt")])
    assert results.test["acc"] == pytest.approx(best["acc"], abs=1e-6)
    assert results.test["loss"] == pytest.approx(best["loss"], rel=1e-5)
    ckpt = torch.load(results.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["next_epoch"], ckpt["next_batch"]) == (1, 0)  # resume with epoch 1
    assert (results.run_dir / "checkpoints" / "best.pt").exists()
    assert (results.run_dir / "config.yaml").is_file()


@pytest.mark.parametrize(("rung", "name"), [("trainer", "best.ckpt"), ("fabric", "best.pt"), ("manual", "best.pt")])
def test_evaluate_reads_every_rungs_checkpoint(trained_runs, rung, name):
    metrics = evaluate.main(["--ckpt_path", str(trained_runs[rung].run_dir / "checkpoints" / name)])
    assert metrics["acc"] == pytest.approx(trained_runs[rung].test["acc"], abs=1e-6)  # what training printed


@pytest.mark.parametrize(("rung", "name"), [("trainer", "last.ckpt"), ("fabric", "last.pt"), ("manual", "last.pt")])
def test_predict_writes_a_csv_of_classes_and_confidences(trained_runs, tmp_path, data_dir, rung, name):
    images = write_images(tmp_path / "images", data_dir)
    out = tmp_path / "predictions.csv"
    ckpt = trained_runs[rung].run_dir / "checkpoints" / name
    rows = predict.main(["--ckpt_path", str(ckpt), str(images), "--output", str(out)])
    with open(out) as f:
        written = list(csv.DictReader(f))
    classes = DataModule(data_dir=data_dir).class_names
    assert len(written) == len(rows) == len(list(images.iterdir()))
    assert all(row["class"] in classes and 0 < float(row["confidence"]) <= 1 for row in written)


def write_images(folder: Path, data_dir: str, count: int = 5) -> Path:
    """A few images of the data set as PNG files, the way a user would hand them to predict.py."""
    folder.mkdir()
    source = next(iter(dataset.load(data_dir).values()))  # (images, labels) in memory, or a Dataset on disk
    for index in range(count):
        if isinstance(source, tuple):
            image = Image.fromarray(source[0][index].permute(1, 2, 0).squeeze(-1).numpy())  # (H, W) or (H, W, 3)
        else:
            image = source[index][0]
        image.save(folder / f"{index}.png")
    return folder


RGB = len(dataset.MEAN) == 3  # a channel per statistic; torchvision's classification networks take RGB images


@pytest.mark.skipif(not RGB, reason="torchvision's networks take 3 channels; the template bakes RGB data sets too")
@pytest.mark.parametrize(("rung", "name"), [("trainer", "best.ckpt"), ("fabric", "best.pt"), ("manual", "best.pt")])
def test_a_torchvision_network_by_name_trains_evaluates_and_predicts(quick_args, tmp_path, data_dir, rung, name):
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    results = RUNG_ENTRIES[rung].main([*quick_args, "--model.net", "torchvision.models.resnet18", *short])
    net, classes = results.net, results.datamodule.num_classes
    assert type(net).__name__ == "ResNet" and net.fc.out_features == classes  # num_classes from the data
    ckpt = results.run_dir / "checkpoints" / name
    metrics = evaluate.main(["--ckpt_path", str(ckpt)])  # the network rebuilt from the run's config.yaml
    assert metrics["acc"] == pytest.approx(results.test["acc"], abs=1e-6)
    images = write_images(tmp_path / "images", data_dir)
    rows = predict.main(["--ckpt_path", str(ckpt), str(images), "--output", str(tmp_path / "predictions.csv")])
    assert len(rows) == 5


# torchvision's classification builders of every family that trains on the quick tier's 16x16 images in
# seconds. The others need larger images (VGG, AlexNet, DenseNet, SqueezeNet, ConvNeXt, ViT, Inception,
# MaxViT) or more than the quick tier's budget (the larger members of each family, Swin); ShuffleNet's
# builders take a class as an argument, which the parser cannot build from a name.
TORCHVISION = ["resnet18", "mobilenet_v3_small", "mobilenet_v2", "efficientnet_b0", "mnasnet0_5", "regnet_x_400mf"]
TORCHVISION += ["regnet_y_400mf"]


@pytest.mark.skipif(not RGB, reason="torchvision's networks take 3 channels; the template bakes RGB data sets too")
@pytest.mark.parametrize("builder", TORCHVISION)
def test_every_small_torchvision_network_that_trains_loads_again(quick_args, data_dir, builder):
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"]
    result = train_manual.main([*quick_args, "--model.net", f"torchvision.models.{builder}", *short])
    checkpoint = result.run_dir / "checkpoints" / "best.pt"
    # the rebuild that evaluate, predict, export and serve share: the run's config.yaml, then the weights
    rebuilt = CheckpointCLI(["--ckpt_path", str(checkpoint), "--data.data_dir", data_dir]).model.net
    load_weights(rebuilt, checkpoint)
    trained, loaded = result.net.state_dict(), rebuilt.state_dict()
    assert trained.keys() == loaded.keys() and all(torch.equal(trained[k], loaded[k]) for k in trained)
    metrics = evaluate.main(["--ckpt_path", str(checkpoint)])  # the same predictions on the test split
    assert metrics == pytest.approx(result.test, abs=1e-6)


def test_resuming_a_run_of_another_network_fails_in_one_line(quick_args):
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    train_manual.main([*quick_args, *short, "--model.net.width", "8"])
    with pytest.raises(CheckpointError, match="another model shape"):  # the entries print it as one line
        train_manual.main([*quick_args, *short, "--ckpt_path", "last"])


@pytest.mark.parametrize("problem", ["missing", "truncated", "other_shape"])
def test_a_bad_checkpoint_gets_one_clear_line(trained_runs, tmp_path, capsys, data_dir, problem):
    good = trained_runs["manual"].run_dir / "checkpoints" / "best.pt"
    args = ["--ckpt_path", str(tmp_path / "nope.pt"), "--data.data_dir", data_dir]
    if problem == "truncated":
        (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:1000])
        args = ["--ckpt_path", str(tmp_path / "cut.pt"), "--data.data_dir", data_dir]
    if problem == "other_shape":
        args = ["--ckpt_path", str(good), "--model.net.width", "8"]
    with pytest.raises(SystemExit) as exit_info, one_line_errors():  # what `python evaluate.py ...` runs
        evaluate.main(args)
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    expected = {"missing": "no checkpoint", "truncated": "truncated", "other_shape": "shape"}[problem]
    assert len(errors) == 1 and expected in errors[0]


def test_a_new_run_never_reuses_a_directory(quick_args):
    dirs = {start_run(ProjectCLI(args=quick_args), "manual")[0] for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() for d in dirs)
    named = [start_run(ProjectCLI(args=[*quick_args, "--run_name", "try"]), "fabric")[0].name for _ in range(2)]
    assert named == ["try-fabric", "try-fabric-1"]


def test_barebones_trains_the_same_weights_without_the_projects_extras(quick_args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        train.main([*quick_args, "--trainer.barebones", "true"])  # a test needs the logging barebones turns off
    assert exit_info.value.code == 2 and "--test false" in one_error_line(capsys)
    assert not list((tmp_path / "runs").rglob("*"))
    args = [*quick_args, "--trainer.max_epochs", "1", "--test", "false", "--logger", "csv"]
    barebones = train.main([*args, "--trainer.barebones", "true"])
    manual = train_manual.main(args)
    assert barebones.test is None and [p.name for p in barebones.run_dir.iterdir()] == ["config.yaml"]
    weights, expected = barebones.net.state_dict(), manual.net.state_dict()
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in weights)


def test_compare_check_and_json(quick_args, tmp_path):
    out = tmp_path / "figures.json"
    own = ["--check", "--json", str(out), "--plot", str(tmp_path / "c.png")]
    short = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2"]
    code = compare.main([*own, *quick_args, *short])
    figures = json.loads(out.read_text())
    assert code == 0 and figures["identical"] is True and (tmp_path / "c.png").stat().st_size > 0
    for key in ("epochs", "max_abs_weight_diff", "trainer_ms_per_step", "manual_ms_per_step", "overhead_ratio"):
        assert key in figures


KEYS = [({}, True), ({"WANDB_API_KEY": "x" * 40}, False), ({"WANDB_MODE": "online"}, False)]


@pytest.mark.parametrize(("env", "offline"), KEYS)
def test_wandb_goes_offline_without_a_key(monkeypatch, tmp_path, env, offline):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for var in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert wandb_should_go_offline() is offline


def test_a_nan_loss_stops_every_rung_at_the_same_step(quick_args, capsys, tmp_path):
    steps = []
    for entry in RUNG_ENTRIES.values():
        run_root = tmp_path / entry.__name__
        args = [*quick_args, "--run_root", str(run_root), "--model.lr", "1e30", "--save_every_n_steps", "1"]
        with pytest.raises(SystemExit) as exit_info, one_line_errors():  # what `python train.py ...` runs
            entry.main(args)
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
        assert exit_info.value.code == 2 and len(errors) == 1 and "--model.lr" in errors[0], errors
        steps.append(int(errors[0].split(" at step ")[1].split(";")[0]))
        for checkpoint in run_root.rglob("checkpoints/*"):  # none holds weights spoiled by the NaN
            weights = network_weights(torch.load(checkpoint, weights_only=True))
            assert all(torch.isfinite(w).all() for w in weights.values()), checkpoint
    assert steps[0] == steps[1] == steps[2] > 0


def test_a_checkpoint_with_python_objects_needs_the_trust_flag(trained_runs, tmp_path, capsys, data_dir):
    run_dir = trained_runs["manual"].run_dir
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({**state, "args": argparse.Namespace(lr=0.1)}, unsafe)  # an object a weights-only load refuses
    # outside a run directory, so the run's config.yaml is passed by hand
    args = ["--config", str(run_dir / "config.yaml"), "--ckpt_path", str(unsafe), "--data.data_dir", data_dir]
    with pytest.raises(SystemExit), one_line_errors():
        evaluate.main(args)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--trust_checkpoint true" in errors[0]
    trusted = evaluate.main([*args, "--trust_checkpoint", "true"])
    assert trusted["acc"] == pytest.approx(trained_runs["manual"].test["acc"], abs=1e-6)  # best.pt's weights


def test_the_manual_loop_refuses_a_precision_it_does_not_run(quick_args, capsys):
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        train_manual.main([*quick_args, "--trainer.precision", "64-true"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "--trainer.precision 64-true" in errors[0]


BAD_OPTIONS = {
    "wrong type": (["--data.batch_size", "abc"], "batch_size"),
    "unknown option": (["--data.batch_sise", "8"], "batch_sise"),
    "missing config": (["--config", "no_such.yaml"], "no_such.yaml"),
    "missing checkpoint": (["--ckpt_path", "no_such.ckpt"], "no checkpoint at no_such.ckpt"),
}


@pytest.mark.parametrize("entry", list(RUNG_ENTRIES.values()), ids=list(RUNG_ENTRIES))
@pytest.mark.parametrize("problem", list(BAD_OPTIONS))
def test_bad_options_exit_with_a_message_and_write_nothing(quick_args, tmp_path, capsys, entry, problem):
    args, named = BAD_OPTIONS[problem]
    with pytest.raises(SystemExit) as exit_info, one_line_errors():  # what `python train.py ...` runs
        entry.main([*quick_args, *args])
    assert exit_info.value.code != 0
    assert named in capsys.readouterr().err
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]  # no checkpoint, no config written


# One value outside its domain for every option that has one: refused by the parser (jsonargparse's
# typed constraints), before anything is built or written.
BAD_VALUES = {
    "data.batch_size": "0",
    "data.num_workers": "-1",
    "data.val_fraction": "1.5",
    "data.test_fraction": "0",
    "data.worker_timeout": "0",
    "data.image_size": "0",
    "model.lr": "-0.1",
    "model.weight_decay": "-1",
    "model.net.width": "0",
    "model.net.hidden": "0",
    "model.net.dropout": "1.5",
    "save_every_n_steps": "-1",
    "dist_timeout": "0",
}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize("option", sorted(BAD_VALUES))
def test_a_value_outside_its_domain_gets_one_line_and_writes_nothing(quick_args, tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        train_manual.main([*quick_args, f"--{option}", BAD_VALUES[option]])
    line = one_error_line(capsys)
    assert exit_info.value.code == 2 and option.split(".")[-1] in line and "restriction" in line, line
    assert not list((tmp_path / "runs").rglob("*"))


@pytest.mark.parametrize("entry", [train, compare, evaluate, predict])
def test_every_entry_refuses_a_bad_value_in_one_line(quick_args, tmp_path, capsys, entry):
    own = {predict: ["--ckpt_path", "x.pt", str(tmp_path)], evaluate: ["--ckpt_path", "x.pt"]}.get(entry, [])
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        entry.main([*own, *quick_args, "--data.batch_size", "0"])
    assert exit_info.value.code == 2 and "batch_size" in one_error_line(capsys)
    assert not list((tmp_path / "runs").rglob("*"))


def test_compare_refuses_a_repeat_count_below_one(capsys):
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        compare.main(["--repeats", "0"])
    assert exit_info.value.code == 2 and "--repeats" in one_error_line(capsys)


# The entries at the root, run as `python ENTRY`, and the tools in their folders, run as `python -m FOLDER.TOOL`.
ENTRIES = ["train.py", "train_fabric.py", "train_manual.py", "evaluate.py", "predict.py"]
ENTRIES += ["ladder.compare", "ladder.trace_steps", "sweeps.sweep", "deploy.export", "deploy.serve"]
OURS = (DataModule.__module__.partition(".")[0], "train", "train_fabric", "train_manual", "ladder", "sweeps", "deploy")
# Each entry as `python ENTRY --help` or `python -m ENTRY --help` would see it, from the project root: the
# original sys.path, and nothing of the project imported.
RUN_EACH = f"""
import runpy, sys
path = list(sys.path)
for entry in {ENTRIES!r}:
    sys.path[:] = path
    for name in [name for name in sys.modules if name.partition(".")[0] in {OURS!r}]:
        del sys.modules[name]
    sys.argv = [entry, "--help"]
    try:
        if entry.endswith(".py"):
            runpy.run_path(entry, run_name="__main__")
        else:
            runpy.run_module(entry, run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        print("exit of", entry, exit.code)
"""


@pytest.mark.slow
@pytest.mark.timeout(60)  # about 3x its 18 s in the template's suite
def test_every_entry_runs_from_the_project_root_without_the_package_on_the_path():
    # As `python train.py` right after baking: no PYTHONPATH, and (in the template's own tests) no install.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = run_bounded([sys.executable, "-c", RUN_EACH], env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    exits = [line for line in result.stdout.splitlines() if line.startswith("exit of ")]
    assert exits == [f"exit of {entry} 0" for entry in ENTRIES], result.stdout[-3000:]
