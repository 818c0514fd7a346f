"""CIFAR-10, a torchvision download: absent files offline are one clear error, never a traceback."""

from urllib.error import URLError

import pytest
import torchvision.datasets.utils as utils

from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.errors import DataError


def test_absent_data_offline_gets_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(utils.urllib.request, "urlopen", offline)  # the network is never touched
    with pytest.raises(DataError, match=f"{tmp_path}.*--data.data_dir"):
        DataModule(data_dir=str(tmp_path)).prepare_data()


def test_the_official_test_set_stays_whole_and_val_comes_out_of_train(data_dir):
    from fake_data import TEST, TRAIN

    dm = DataModule(data_dir=data_dir, val_fraction=0.25)
    dm.setup("fit")
    assert len(dm.splits["test"]) == TEST and set(dm.indices) == {"train", "val"}
    assert (len(dm.splits["train"]), len(dm.splits["val"])) == (TRAIN * 3 // 4, TRAIN // 4)
