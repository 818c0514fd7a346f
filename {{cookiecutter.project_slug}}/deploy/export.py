"""Export a checkpoint of any rung to ONNX and torch.export (.pt2), and prove that each file computes what was trained.

    python -m deploy.export --ckpt_path runs/<run>/checkpoints/best.pt        # writes runs/<run>/exported/
    python -m deploy.export --ckpt_path runs/<run>/checkpoints/best.ckpt --output_dir exported --format onnx

The exported graph takes uint8 images (N, C, H, W) at the training resolution, any N, and returns class
probabilities (N, num_classes): scaling and normalisation are inside it (model.DeployedClassifier).
model.json beside it gives the class names, the input and the checkpoint it came from.

After writing each file, it loads the file again in a fresh process (deploy/check_export.py) and compares it
with the eager model on the test split: ONNX Runtime within Lightning's own ONNX tolerances (rtol 1e-3,
atol 1e-5) with every argmax equal, and the .pt2 program bit for bit on the CPU.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from {{ cookiecutter.package_name }}.errors import ArgumentParser, CheckpointError, one_line_errors
from {{ cookiecutter.package_name }}.inference import from_checkpoint
from {{ cookiecutter.package_name }}.model import DeployedClassifier

ROOT = Path(__file__).resolve().parents[1]  # the project root, where `python -m deploy.check_export` runs
FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2"}


def write(model: DeployedClassifier, example: torch.Tensor, fmt: str, path: Path) -> None:
    """``model`` as ``fmt`` at ``path``, with a dynamic batch dimension."""
    dynamic = ({0: torch.export.Dim("batch")},)
    if fmt == "pt2":
        torch.export.save(torch.export.export(model, (example,), dynamic_shapes=dynamic), path)
    else:  # torch's dynamo exporter, which Lightning's to_onnx(dynamo=True) calls too
        program = torch.onnx.export(
            model, (example,), dynamo=True, dynamic_shapes=dynamic, input_names=["images"], output_names=["probs"]
        )
        program.save(str(path))


def check_in_fresh_process(path: Path, images: np.ndarray, expected: np.ndarray) -> dict:
    """Run deploy/check_export.py on ``path`` in a new interpreter and return its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", images)
        np.save(Path(tmp) / "expected.npy", expected)
        command = [
            sys.executable,
            "-m",
            "deploy.check_export",
            str(path.resolve()),
            f"{tmp}/images.npy",
            f"{tmp}/expected.npy",
        ]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if not result.stdout.strip():
        raise CheckpointError(f"deploy/check_export.py {path} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of any rung: .ckpt (Trainer) or .pt")
    parser.add_argument("--output_dir", default=None, help="default: exported/ in the checkpoint's run directory")
    parser.add_argument("--format", nargs="+", choices=list(FORMATS), default=list(FORMATS), help="what to write")
    own, rest = parser.parse_known_args(argv)
    model, data = from_checkpoint(own.ckpt_path, rest)
    data.setup("test")
    images, _ = data.pixels("test")  # uint8 (N, C, size, size): what a consumer of the export feeds it
    expected = model(images)  # (N, num_classes)
    # The eager wrapper is the trained pipeline, bit for bit: the DataModule's scaling, then the network
    if not torch.equal(expected, model.net(data.to_input(images)).softmax(dim=-1)):
        raise CheckpointError("the export's preprocessing differs from the DataModule's transform")

    output_dir = Path(own.output_dir or Path(own.ckpt_path).resolve().parent.parent / "exported")
    output_dir.mkdir(parents=True, exist_ok=True)
    size = list(images.shape[1:])
    meta = {"classes": data.class_names, "input": {"shape": ["N", *size], "dtype": "uint8"}, "output": "probs"}
    meta["checkpoint"], meta["files"] = str(Path(own.ckpt_path).resolve()), {}
    figures = {}
    for fmt in own.format:
        path = output_dir / FORMATS[fmt]
        write(model, images[:2], fmt, path)
        figures[fmt] = check_in_fresh_process(path, images.numpy(), expected.numpy())
        meta["files"][fmt] = path.name
        got = figures[fmt]
        print(
            f"{path}: max |Δprob| {got['max_abs_diff']:.3g}, argmax equal {got['argmax_equal']:.4f} on "
            f"{len(images)} test images, {'passed' if got['passed'] else 'FAILED'} ({got['rule']})"
        )
    (output_dir / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    if not all(f["passed"] for f in figures.values()):
        raise CheckpointError("an exported file does not compute what the trained model computes (see above)")
    return figures


if __name__ == "__main__":
    with one_line_errors():
        main(sys.argv[1:])
