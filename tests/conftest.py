"""Bake the template with cookiecutter's own API into temporary directories."""

import os
import signal
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


# Seconds for one baked suite unless the test gives its own; every test of the suite has a limit of its own
# far below this. benchmarks/coverage.py raises every suite's limit to TEMPLATE_SUITE_TIMEOUT: under
# coverage.py every line costs more.
SUITE_TIMEOUT = 900
RAISED_TIMEOUT = int(os.environ.get("TEMPLATE_SUITE_TIMEOUT", 0))


def run_project_tests(project: Path, *pytest_args: str, timeout: int = SUITE_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a baked project's own test suite in a subprocess, offline and bounded in time.

    One torch thread per process: the template's tests run two baked suites side by side (xdist) on two
    cores. Past ``timeout`` seconds, every process of the suite prints its threads' stacks (SIGABRT with
    PYTHONFAULTHANDLER) before it is killed, and the test fails with the suite's output.
    """
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    proc = subprocess.Popen(command, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(timeout, RAISED_TIMEOUT))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"{project.name}: pytest {' '.join(pytest_args)} ran past {timeout} s\n"
                    f"--- stdout ---\n{out[-20_000:]}\n--- stderr ---\n{err[-20_000:]}", pytrace=False)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything the suite left running
        except ProcessLookupError:
            pass
    # Kept beside the bake (pytest keeps the last few base temp directories): durations, warnings, skips.
    (project.parent / "pytest-output.txt").write_text(f"$ {' '.join(command)}\n{out}\n{err}", encoding="utf-8")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.fixture(scope="session")
def default_project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("default"))
