"""The digits are embedded in scikit-learn: the real data is offline already, and nothing is written."""

from pathlib import Path


def write(data_dir: Path) -> None:
    pass
