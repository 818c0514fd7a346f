"""The network: plain PyTorch, no Lightning.

Both training paths (Lightning's ``train.py`` and the hand-written ``train_manual.py``) train this very
class, so anything you can do with an ``nn.Module`` you can do with it.
"""

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and a two-layer classifier head.

    ``in_channels`` and ``num_classes`` come from the DataModule (the CLI links them), so the data
    decides them once. The adaptive pool makes the head's size independent of the image size, so
    the same network runs on 8x8 digits and on 32x32 images.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: int = 32,
        hidden: int = 128,
        dropout: float = 0.25,
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
