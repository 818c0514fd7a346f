import ast

import pytest
import torch

from {{ cookiecutter.package_name }}.model import SmallCNN


@pytest.mark.parametrize(("shape", "classes"), [((1, 8, 8), 10), ((1, 28, 28), 10), ((3, 32, 32), 7)])
def test_output_shape(shape, classes):
    net = SmallCNN(num_classes=classes, in_channels=shape[0])
    assert net(torch.randn(5, *shape)).shape == (5, classes)


def test_model_module_imports_torch_and_argument_types_only():
    import {{ cookiecutter.package_name }}.model as model

    tree = ast.parse(open(model.__file__).read())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"torch", "jsonargparse.typing"}  # no Lightning: the types only check the arguments
