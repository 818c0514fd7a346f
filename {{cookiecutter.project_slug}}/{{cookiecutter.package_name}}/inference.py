"""A trained classifier, for evaluate, predict, export and serve: from a checkpoint of any rung or from an
export of one, and any picture brought to its input.

deploy/check_export.py runs an export where torch cannot be imported, with ``run_export`` from here: so this module
imports numpy and PIL only at the top, and torch, onnxruntime and the project's parser where they are needed.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # for the annotations only: importing them needs torch
    import torch
    from torchvision.transforms import v2

    from .cli import CheckpointCLI
    from .data import DataModule
    from .model import DeployedClassifier

# A model as a consumer sees it: uint8 images (N, C, H, W) at the training resolution -> probabilities
Run = Callable[[np.ndarray], np.ndarray]


def run_export(path: str) -> Run:
    """An exported model: ONNX Runtime for .onnx (no torch needed), ``torch.export.load`` for .pt2."""
    if str(path).endswith(".onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda images: session.run(None, {name: images})[0]
    import torch

    program = torch.export.load(str(path)).module()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return program(torch.from_numpy(images)).numpy()

    return run


def load_trained(args: list[str] | None) -> "CheckpointCLI":
    """The trained model that ``args`` name with --ckpt_path, a checkpoint of any rung: parsed as the entries
    parse (the config.yaml of the run that wrote it, then ``args``), its network given the checkpoint's
    weights. ``cli.model`` is the LightningModule, ``cli.datamodule`` its data."""
    from .checkpoints import load_weights
    from .cli import CheckpointCLI
    from .errors import CheckpointError

    cli = CheckpointCLI(args=args)
    if not cli.config.ckpt_path:
        raise CheckpointError("pass --ckpt_path, the checkpoint of a trained model")
    load_weights(cli.model.net, cli.config.ckpt_path, cli.config.trust_checkpoint)
    return cli


def from_checkpoint(ckpt_path: str, options: list[str]) -> tuple["DeployedClassifier", "DataModule"]:
    """A checkpoint of any rung as it is deployed (``model.DeployedClassifier``, eval mode), and its DataModule;
    ``options`` (--key=value, as the entries take them) go over the run's config.yaml."""
    from .model import DeployedClassifier

    cli = load_trained([*options, "--ckpt_path", ckpt_path])
    data = cli.datamodule
    return DeployedClassifier(cli.model.net, data.mean, data.std).eval(), data


def picture_to_pixels(image: Image.Image, resize: "v2.Transform", channels: int) -> "torch.Tensor":
    """A picture of any size and mode as uint8 (C, size, size), through ``resize`` (``data.resize_transform``).

    First its channels (gray or RGB, as trained), then a box filter shrinks it by the largest whole factor
    that keeps it at least ``size``: averaging whole blocks gives an enlarged image its own pixels back,
    where a bilinear resize would blur across the blocks. ``resize`` does the rest.
    """
    image = image.convert("L" if channels == 1 else "RGB")
    size = resize.transforms[1].size[0]  # Resize(size)
    factor = min(image.size) // size
    return resize(image.reduce(factor) if factor > 1 else image)
