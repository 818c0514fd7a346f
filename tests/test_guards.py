"""Static guards over the baked tests, for what `make test` does not run: the whole suites of the bakes other
than the default. A baked test that reads the digits' defaults passes on the default bake and fails on every
other; these find it without running it."""

import ast
from pathlib import Path

from conftest import TEMPLATE

BAKED_TESTS = TEMPLATE / "{{cookiecutter.project_slug}}" / "tests"
# Where a test gets the bake's data: the fake files' folder, the options that name it, or the DataModule on it
DATA = {"data_dir", "quick_args", "datamodule"}
RUNS = {"main", "compare", "ProjectCLI", "TrainerCLI", "CheckpointCLI"}  # an entry, compare, or a parse


def functions(path: Path) -> list[tuple[ast.FunctionDef, str]]:
    """Every function of a baked test file, with its source, parsed as the bake renders it."""
    source = path.read_text(encoding="utf-8").replace("{{ cookiecutter.package_name }}", "package")
    return [(node, ast.get_source_segment(source, node)) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef)]


def called(node: ast.AST, names: set[str]) -> list[ast.Call]:
    calls = [call for call in ast.walk(node) if isinstance(call, ast.Call)]
    return [call for call in calls if getattr(call.func, "attr", getattr(call.func, "id", None)) in names]


def test_every_baked_datamodule_is_built_on_the_bakes_data():
    found = []
    for path in sorted(BAKED_TESTS.rglob("*.py")):
        for function, _ in functions(path):
            for call in called(function, {"DataModule"}):
                if "data_dir" not in {keyword.arg for keyword in call.keywords}:
                    found.append(f"{path.name}:{call.lineno} {function.name}")
    assert not found, f"DataModule() on the digits' defaults (use the datamodule fixture): {found}"


def test_every_baked_run_is_given_the_bakes_data():
    found = []
    for path in sorted(BAKED_TESTS.rglob("*.py")):
        for function, source in functions(path):
            if not called(function, RUNS) or "pytest.raises(SystemExit" in source:  # --help, a refused option
                continue
            names = {node.id for node in ast.walk(function) if isinstance(node, ast.Name)}
            names |= {argument.arg for argument in function.args.args}
            if not names & DATA and "--ckpt_path" not in source:  # a checkpoint's run config names its data
                found.append(f"{path.name}:{function.lineno} {function.name}")
    assert not found, f"runs without --data.data_dir (quick_args, data_dir or datamodule): {found}"
