"""Predict the class of each image with a checkpoint from any way of training, and write a CSV.

    python predict.py --ckpt_path runs/<run>/checkpoints/best.ckpt photo.png more/ --output predictions.csv

Inputs are image files or folders (searched recursively). The run's config.yaml, beside checkpoints/,
sets the model and the data; pass other options as --key=value.
"""

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # the package, installed or not

import torch
from PIL import Image

from {{ cookiecutter.package_name }}.checkpoints import load_weights
from {{ cookiecutter.package_name }}.cli import ProjectCLI, one_line_errors
from {{ cookiecutter.package_name }}.data import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


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


@torch.no_grad()
def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt_path", required=True, help="a .ckpt (Lightning) or .pt (manual) checkpoint")
    parser.add_argument("--output", default="predictions.csv", help="the CSV to write")
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    own, rest = parser.parse_known_args(argv)
    cli = ProjectCLI(rung=None, args=[*rest, "--ckpt_path", own.ckpt_path])
    net, data = cli.model.net.eval(), cli.datamodule
    load_weights(net, own.ckpt_path, cli.config.trust_checkpoint)
    rows = []
    for path in image_files(own.inputs):
        with Image.open(path) as image:
            x = data.predict_transform(image).unsqueeze(0)  # (1, C, H, W)
        probs = net(x).softmax(dim=-1)[0]  # (num_classes,)
        confidence, index = probs.max(dim=0)
        rows.append({"path": str(path), "class": data.class_names[index], "confidence": round(confidence.item(), 6)})
    with open(own.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "class", "confidence"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} predictions written to {own.output}")
    return rows


if __name__ == "__main__":
    with one_line_errors():
        main()
