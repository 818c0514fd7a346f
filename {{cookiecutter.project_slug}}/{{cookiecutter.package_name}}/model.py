"""The network: plain PyTorch, no Lightning.

Every rung (``train_manual.py``, ``train_fabric.py`` and ``train.py``) trains this very class, so
anything you can do with an ``nn.Module`` you can do with it. The argument types come from jsonargparse's
``typing``: they are ints and floats with a domain (``PositiveInt(0)`` raises), so the command line
refuses ``--model.net.width 0`` in one line, read from this signature and from nowhere else.
"""

import torch
from jsonargparse.typing import ClosedUnitInterval, PositiveInt
from torch import nn


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and a two-layer classifier head.

    ``in_channels`` and ``num_classes`` come from the DataModule (the CLI links them), so the data
    decides them once. The adaptive pool makes the head's size independent of the image size, so
    the same network runs on 8x8 digits and on 32x32 images.
    """

    def __init__(
        self,
        num_classes: PositiveInt = 10,
        in_channels: PositiveInt = 1,
        width: PositiveInt = 32,
        hidden: PositiveInt = 128,
        dropout: ClosedUnitInterval = 0.25,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * width * 4 * 4, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> features: (B, 2*width, 4, 4) -> logits: (B, num_classes)
        return self.classifier(self.features(x))


class DeployedClassifier(nn.Module):
    """``net`` as it is deployed: uint8 images in, class probabilities out (deploy/export.py exports this).

    The scaling to [0, 1] and the normalisation run inside, with the very operations of the DataModule's
    transform, so a consumer of the exported graph needs nothing from this project but the input size.
    """

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))  # (1, C, 1, 1)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images: uint8 (N, C, H, W) at the training resolution -> probabilities: (N, num_classes)
        x = images.to(torch.float32).mul(1.0 / 255)  # as torchvision's ToDtype(float32, scale=True)
        x = x.sub(self.mean).div(self.std)  # as Normalize(mean, std)
        return self.net(x).softmax(dim=-1)
