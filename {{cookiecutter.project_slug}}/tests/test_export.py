"""deploy/export.py: a checkpoint of every rung to ONNX and .pt2, checked in a fresh process against the eager model."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import predict
import train
import train_fabric
import train_manual
from deploy import export
from {{ cookiecutter.package_name }}.checkpoints import load_weights
from {{ cookiecutter.package_name }}.errors import CheckpointError
from {{ cookiecutter.package_name }}.model import DeployedClassifier, SmallCNN

from bounded import ROOT
from conftest import QUICK

pytestmark = pytest.mark.slow  # the export depends on the network, not on the data set: one bake runs these
BEST = {"manual": (train_manual, "best.pt"), "fabric": (train_fabric, "best.pt"), "trainer": (train, "best.ckpt")}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, data_dir) -> dict:
    root = tmp_path_factory.mktemp("trained")
    args = [*QUICK, "--run_root", str(root), "--data.data_dir", data_dir, "--trainer.max_epochs", "1"]
    return {rung: entry.main(args).run_dir / "checkpoints" / name for rung, (entry, name) in BEST.items()}


@pytest.mark.parametrize("rung", BEST)
@pytest.mark.timeout(150)  # about 3x its 50 s beside a busy process, with the fixture that trains every rung
def test_every_rungs_checkpoint_exports_to_both_formats_that_compute_what_was_trained(checkpoints, tmp_path, rung):
    figures = export.main(["--ckpt_path", str(checkpoints[rung]), "--output_dir", str(tmp_path)])
    assert figures["pt2"]["passed"] and figures["pt2"]["max_abs_diff"] == 0.0  # bit for bit on the CPU
    assert figures["onnx"]["passed"] and figures["onnx"]["argmax_equal"] == 1.0
    assert figures["onnx"]["max_abs_diff"] < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.onnx", "model.pt2"]
    # any batch size: the test split's, checked above, differs from the two examples the export traced
    assert figures["onnx"]["shape"][0] > 2 and figures["pt2"]["shape"] == figures["onnx"]["shape"]


def test_the_onnx_check_runs_where_torch_cannot_be_imported_and_a_changed_weight_fails_it(
    checkpoints, tmp_path, datamodule
):
    export.main(["--ckpt_path", str(checkpoints["manual"]), "--output_dir", str(tmp_path), "--format", "onnx"])
    datamodule.setup("test")
    images, _ = datamodule.pixels("test")
    net = SmallCNN(num_classes=datamodule.num_classes, in_channels=datamodule.num_channels)
    load_weights(net, checkpoints["manual"])
    model = DeployedClassifier(net, datamodule.mean, datamodule.std).eval()
    with torch.no_grad():
        right = model(images).numpy()
        net.classifier[-1].bias[0] += 5.0  # one weight changed: the first class's bias, which every image sees
        wrong = model(images).numpy()
    np.save(tmp_path / "images.npy", images.numpy())
    no_torch = "import runpy, sys; sys.modules['torch'] = None; "  # `import torch` raises ImportError there
    no_torch += "runpy.run_module('deploy.check_export', run_name='__main__', alter_sys=True)"  # python -m
    for expected, code in ((right, 0), (wrong, 1)):
        np.save(tmp_path / "expected.npy", expected)
        files = [str(tmp_path / name) for name in ("model.onnx", "images.npy", "expected.npy")]
        command = [sys.executable, "-c", no_torch, *files]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == code, result.stderr[-2000:]
        assert ('"passed": true' if code == 0 else '"passed": false') in result.stdout


def test_a_checkpoint_of_another_shape_fails_in_one_line(checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="another model shape"):
        export.main(["--ckpt_path", str(checkpoints["manual"]), "--output_dir", str(tmp_path), "--model.net.width=8"])


@pytest.mark.timeout(60)  # about 3x its 17 s in the template's suite
def test_predict_gives_the_same_class_at_every_size_and_mode_and_from_every_model_file(
    checkpoints, tmp_path, capsys, datamodule
):
    datamodule.setup("test")
    pixels, _ = datamodule.pixels("test")
    size = pixels.shape[-1]
    images = tmp_path / "images"
    images.mkdir()
    for i in range(10):  # the data set's own images, as a user might have them
        picture = Image.fromarray(pixels[i].permute(1, 2, 0).squeeze(-1).numpy())
        for scale in (1, 8):
            for mode in ("L", "RGB"):
                enlarged = picture.resize((size * scale, size * scale), Image.Resampling.NEAREST)
                enlarged.convert(mode).save(images / f"{i}-{scale}x-{mode}.png")
    (images / "notes.png").write_bytes(b"not an image")
    (images / "cut.png").write_bytes((images / "0-1x-L.png").read_bytes()[:40])
    export.main(["--ckpt_path", str(checkpoints["trainer"]), "--output_dir", str(tmp_path / "exported")])
    classes = {}
    for model in (checkpoints["trainer"], tmp_path / "exported" / "model.onnx", tmp_path / "exported" / "model.pt2"):
        rows = predict.main(["--ckpt_path", str(model), str(images), "--output", str(tmp_path / "p.csv")])
        assert len(rows) == 40  # the two broken files are skipped, the rest predicted
        for row in rows:
            classes.setdefault(Path(row["path"]).name.split("-")[0], set()).add(row["class"])
    err = capsys.readouterr().err
    assert "notes.png: not a readable image" in err and "cut.png: not a readable image" in err
    assert len(classes) == 10 and all(len(found) == 1 for found in classes.values()), classes
