"""Bake the template with cookiecutter's own API into temporary directories."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]


def bake(output_dir: Path, **context: str) -> Path:
    """Bake with the defaults overridden by ``context``; return the project directory."""
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=context))


def bake_cli(output_dir: Path, **context: str) -> subprocess.CompletedProcess:
    """Bake through the `cookiecutter` command, as a user would, to see its exit code and messages."""
    args = [f"{key}={value}" for key, value in context.items()]
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(output_dir), str(TEMPLATE), *args],
        capture_output=True, text=True, timeout=60,
    )


def run_project_tests(project: Path, *pytest_args: str) -> subprocess.CompletedProcess:
    """Run a baked project's own test suite in a subprocess, offline."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def default_project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("default"))
