"""What only an image folder has: two layouts, and clear errors for a folder that cannot be used."""

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from {{ cookiecutter.package_name }}.data import DataModule, dataset
from {{ cookiecutter.package_name }}.errors import DataError

from fake_data import TEST, TRAIN
from fakes.image_folder import CLASSES


def test_train_and_val_folders_are_the_splits(data_dir):
    dm = DataModule(data_dir=data_dir, num_workers=0)
    dm.setup("fit")
    assert dm.class_names == sorted(CLASSES) and not dm.indices  # nothing drawn at random
    # every image in exactly one of train/ and val/; val serves as test when there is no test/
    train, val = ({path for path, _ in dm.splits[name].files.samples} for name in ("train", "val"))
    assert len(train) == TRAIN and len(val) == TEST and not train & val
    assert dm.splits["test"].files.root == dm.splits["val"].files.root


def test_one_folder_is_split_by_a_seeded_ratio(data_dir):
    def split_indices(seed: int) -> list[set[int]]:
        dm = DataModule(data_dir=f"{data_dir}/train", num_workers=0, seed=seed)
        dm.setup("fit")
        return [set(dm.indices[name]) for name in ("train", "val", "test")]

    train, val, test = split_indices(42)
    assert [len(train), len(val), len(test)] == [168, 36, 36]
    assert train | val | test == set(range(TRAIN)) and not (train & val or train & test or val & test)
    assert split_indices(42) == [train, val, test] and split_indices(7)[0] != train


@pytest.mark.parametrize("layout", ["missing", "empty", "one_class", "no_images"])
def test_a_bad_folder_gets_a_clear_error(tmp_path, layout):
    if layout != "missing":
        (tmp_path / "train").mkdir()
    if layout in ("one_class", "no_images"):
        (tmp_path / "train" / "cat").mkdir()
    if layout == "no_images":
        (tmp_path / "train" / "dog").mkdir()
        (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
        (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match=str(tmp_path)):
        DataModule(data_dir=str(tmp_path)).setup("fit")


def test_images_are_normalized_with_the_data_sets_statistics(data_dir):
    dm = DataModule(data_dir=data_dir, num_workers=0, image_size=24)  # the fakes' own size: nothing resized
    dm.setup("fit")
    path, _ = dm.splits["val"].files.samples[0]
    mean, std = torch.tensor(dataset.MEAN)[:, None, None], torch.tensor(dataset.STD)[:, None, None]
    expected = (pil_to_tensor(Image.open(path).convert("RGB")).float() / 255 - mean) / std
    assert torch.allclose(dm.splits["val"][0][0], expected, atol=1e-5)
