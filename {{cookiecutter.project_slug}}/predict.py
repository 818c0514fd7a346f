"""Predict the class of each image with a model from any rung, or its export, and write a CSV.

    python predict.py --ckpt_path runs/<run>/checkpoints/best.ckpt photo.png more/ --output predictions.csv
    python predict.py --ckpt_path runs/<run>/exported/model.onnx photo.png          # or model.pt2

--ckpt_path takes a checkpoint (.ckpt, .pt: the run's config.yaml beside checkpoints/ rebuilds the
network; pass other options as --key=value) or an export (.onnx, .pt2: model.json beside it gives the
classes and the input). Inputs are image files or folders (searched recursively), of any size and mode:
each is brought to the training channels and resolution as the evaluation images are. A file that is not
a readable image is named in one line on stderr, and the others are still predicted.
"""

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from {{ cookiecutter.package_name }}.data import resize_transform
from {{ cookiecutter.package_name }}.errors import ArgumentParser, DataError, one_line_errors
from {{ cookiecutter.package_name }}.inference import from_checkpoint, picture_to_pixels, run_export

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# A model: uint8 images (N, C, H, W) -> probabilities (N, num_classes); and what a picture becomes for it.
Model = tuple[Callable[[np.ndarray], np.ndarray], Callable[[Image.Image], torch.Tensor], list[str]]


def image_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in EXTENSIONS)
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"no image or folder at {item}")
    if not files:
        raise DataError(f"no images ({', '.join(sorted(EXTENSIONS))}) in {', '.join(inputs)}")
    return files


def load_model(path: str, options: list[str]) -> Model:
    """The model at ``path``: a checkpoint of any rung, or an export of one (model.json beside it)."""
    if path.endswith((".onnx", ".pt2")):
        meta = json.loads((Path(path).parent / "model.json").read_text())
        channels, size = meta["input"]["shape"][1:3]
        resize = resize_transform(size)
        return run_export(path), lambda image: picture_to_pixels(image, resize, channels), meta["classes"]
    model, data = from_checkpoint(path, options)
    to_pixels = lambda image: picture_to_pixels(image, data.resize, data.num_channels)  # noqa: E731
    return lambda images: model(torch.from_numpy(images)).numpy(), to_pixels, data.class_names


@torch.no_grad()
def main(argv: list[str] | None = None) -> list[dict]:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint (.ckpt, .pt) or an export (.onnx, .pt2)")
    parser.add_argument("--output", default="predictions.csv", help="the CSV to write")
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    own, rest = parser.parse_known_args(argv)
    run, to_pixels, classes = load_model(own.ckpt_path, rest)
    rows = []
    for path in image_files(own.inputs):
        try:
            with Image.open(path) as image:
                pixels = to_pixels(image)  # uint8 (C, H, W) at the training resolution
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            print(f"error: {path}: not a readable image ({error.__class__.__name__}); skipped", file=sys.stderr)
            continue
        probabilities = run(pixels.unsqueeze(0).numpy())[0]  # (num_classes,)
        index = int(probabilities.argmax())
        rows.append({"path": str(path), "class": classes[index], "confidence": round(float(probabilities[index]), 6)})
    with open(own.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "class", "confidence"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} predictions written to {own.output}")
    return rows


if __name__ == "__main__":
    with one_line_errors():
        main(sys.argv[1:])
