"""Bake the template and check what comes out: the files, the rendering, and the project's own tests."""

import json
from pathlib import Path

import pytest
from conftest import TEMPLATE, bake, run_project_tests

EXPECTED = {
    "README.md", "pyproject.toml", ".gitignore", "configs/default.yaml", "train.py", "train_manual.py",
    "compare.py", "docs/design_decisions.md", "docs/six_steps.md", "docs/wandb.md",
    "src/digits_classifier/__init__.py", "src/digits_classifier/model.py", "src/digits_classifier/data.py",
    "src/digits_classifier/module.py", "src/digits_classifier/loop.py", "src/digits_classifier/recipe.py",
    "src/digits_classifier/cli.py", "src/digits_classifier/runs.py", "src/digits_classifier/paths.py",
    "src/digits_classifier/compare.py", "tests/conftest.py", "tests/test_data.py", "tests/test_model.py",
    "tests/test_module.py", "tests/test_loop.py", "tests/test_parity.py", "tests/test_entries.py",
}
AWKWARD = 'Ünïcödé "Quoted" Net\'s \\ Back'


def files_of(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}


def assert_fully_rendered(project: Path) -> None:
    for path in project.rglob("*"):
        assert "{{" not in str(path) and "}}" not in str(path), path
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for marker in ("{{", "}}", "{%", "%}"):
                assert marker not in text, f"{marker} left in {path}"


def test_defaults_bake_the_expected_files(default_project):
    assert default_project.name == "digits-classifier"
    assert files_of(default_project) == EXPECTED
    assert_fully_rendered(default_project)
    assert "wandb" in (default_project / "pyproject.toml").read_text()


def test_csv_logger_drops_wandb(tmp_path):
    project = bake(tmp_path, logger="csv")
    assert files_of(project) == EXPECTED - {"docs/wandb.md"}
    assert_fully_rendered(project)
    assert "wandb" not in (project / "pyproject.toml").read_text()
    assert "logger" in (project / "src/digits_classifier/cli.py").read_text()


def test_awkward_name_bakes_into_valid_names(tmp_path):
    project = bake(tmp_path, project_name=AWKWARD, author_name='Zoë "Z" O\'Neil')
    assert project.name == "unicode-quoted-net-s-back"
    assert (project / "src/unicode_quoted_net_s_back/model.py").exists()
    assert_fully_rendered(project)
    import tomllib

    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["authors"] == [{"name": 'Zoë "Z" O\'Neil'}]
    assert "Ünïcödé" in (project / "README.md").read_text(encoding="utf-8")
    for source in project.rglob("*.py"):
        compile(source.read_text(encoding="utf-8"), str(source), "exec")


def test_choices_in_cookiecutter_json_are_lists():
    context = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    assert context["dataset"][0] == "digits" and context["logger"][0] == "wandb"


@pytest.mark.parametrize("context", [{}, {"project_name": AWKWARD, "logger": "csv"}], ids=["defaults", "awkward-csv"])
def test_baked_project_passes_its_own_tests(tmp_path, default_project, context):
    project = bake(tmp_path, **context) if context else default_project
    result = run_project_tests(project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
