"""What only the digits have: they are embedded, complete and split 70/15/15."""

from {{ cookiecutter.package_name }}.data import DataModule


def test_all_1797_digits_are_split_70_15_15(data_dir):
    dm = DataModule(data_dir=data_dir)
    dm.setup("fit")
    sizes = {name: len(split) for name, split in dm.splits.items()}
    assert sizes == {"train": 1258, "val": 270, "test": 269}  # random_split hands the remainder out in order
    assert dm.input_shape == (1, 8, 8) and dm.class_names == [str(digit) for digit in range(10)]
