"""Every standard client bakes the template: pytest-cookies and cruft here, cookiecutter's CLI and API in test_bake.

cruft also keeps a baked project up to date: a template change made after the bake arrives through
`cruft update` as a three-way merge, and the user's own edits stay.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cruft
import pytest
from conftest import TEMPLATE

PROJECT_TESTS_TIMEOUT = 300  # seconds for the few baked tests run after the update


USER_TEST = """
def test_bake(cookies):
    result = cookies.bake(extra_context={"dataset": "mnist", "project_name": "My App"}, template=TEMPLATE)
    assert result.exit_code == 0, result.exception
    assert result.project_path.name == "my-app"
    assert (result.project_path / "my_app" / "datasets" / "mnist.py").is_file()
"""


@pytest.mark.parametrize("where", ["outside", "root"])
def test_pytest_cookies_bakes_it_with_no_setup(template_copy, tmp_path, where):
    # A template author's own test, run with the `pytest` command: from a suite in a directory of its own
    # that passes the template's path, and from the template's root
    suite = tmp_path / "elsewhere" if where == "outside" else template_copy / "tests"
    suite.mkdir(exist_ok=True)
    (suite / "test_user_cookies.py").write_text(f"TEMPLATE = {str(template_copy)!r}\n" + USER_TEST)
    pytest_command = Path(sys.executable).parent / "pytest"
    command = [str(pytest_command), "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(suite / "test_user_cookies.py")]
    result = subprocess.run(command, cwd=suite.parent, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 passed" in result.stdout


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def template_copy(tmp_path) -> Path:
    """The template's files, without what its Makefile and tests write."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache")
    return Path(shutil.copytree(TEMPLATE, tmp_path / "template", ignore=ignore))


@pytest.fixture
def template_repo(template_copy, monkeypatch) -> Path:
    """The template as a git repository of its own, at commit A (cruft clones a template from git)."""
    for key, value in {"NAME": "Template Tests", "EMAIL": "tests@example.com"}.items():
        monkeypatch.setenv(f"GIT_AUTHOR_{key}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{key}", value)
    repo = template_copy
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A")
    return repo


@pytest.mark.skipif(shutil.which("git") is None, reason="cruft needs git")
def test_cruft_update_brings_the_template_change_and_keeps_the_users_edits(template_repo, tmp_path):
    project = cruft.create(str(template_repo), output_dir=tmp_path / "out", no_input=True)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == git(template_repo, "rev-parse", "HEAD").strip()
    assert not (project / ".git").exists()  # the hook leaves git to the user under cruft
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Baked")

    # The user's edits: a config value and a line of the network
    config, model = project / "configs" / "default.yaml", project / "digits_classifier" / "model.py"
    config.write_text(config.read_text().replace("max_epochs: 15", "max_epochs: 7"))
    model.write_text(model.read_text().replace("width: PositiveInt = 32,", "width: PositiveInt = 24,"))
    git(project, "commit", "-q", "-am", "My edits")

    # The template's change, at commit B: a README section and a config comment
    readme = template_repo / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\n## Changes\n\nCommit B of the template.\n")
    template_config = template_repo / "{{cookiecutter.project_slug}}" / "configs" / "default.yaml"
    template_config.write_text(template_config.read_text() + "# commit B of the template\n")
    git(template_repo, "commit", "-q", "-am", "B")

    assert cruft.check(project) is False  # behind the template
    assert cruft.update(project, skip_apply_ask=True) is True
    assert "Commit B of the template." in (project / "README.md").read_text()  # the template's change arrived
    assert "# commit B of the template" in config.read_text()
    assert "max_epochs: 7" in config.read_text() and "width: PositiveInt = 24," in model.read_text()  # the user's stayed
    assert not git(project, "diff", "--name-only", "--diff-filter=U")  # no conflicts
    assert cruft.check(project) is True

    tests = ["tests/test_model.py", "tests/test_docs.py"]  # the updated project still passes its own tests
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=project,
                            env=env, capture_output=True, text=True, timeout=PROJECT_TESTS_TIMEOUT)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
