"""Bake the template and check what comes out: the files, the rendering, the linter and the project's own tests."""

import itertools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import TEMPLATE, bake, bake_cli, run_project_tests

CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
DATASETS, LOGGERS = CONTEXT["dataset"], CONTEXT["logger"]
PACKAGE = "digits_classifier"
COMMON = {
    ".gitignore", ".pre-commit-config.yaml", ".github/workflows/ci.yml", "Makefile", "README.md",
    "pyproject.toml", "configs/default.yaml", "train.py", "train_fabric.py", "train_manual.py", "configs/sweep.yaml", "scripts/slurm.sbatch", "evaluate.py",
    "ladder/__init__.py", "ladder/compare.py", "ladder/trace_steps.py", "ladder/history.py",
    "sweeps/__init__.py", "sweeps/sweep.py", "sweeps/space.py",
    "deploy/__init__.py", "deploy/export.py", "deploy/check_export.py", "deploy/serve.py", "deploy/bench_inference.py",
    "predict.py", "docs/design_decisions.md", "docs/six_steps.md", "docs/trainer_options.md", "docs/wandb.md", "docs/distributed.md", "docs/preemption.md",
    *(f"{PACKAGE}/{name}.py" for name in ("__init__", "model", "data", "module", "recipe", "evaluation", "cli", "runs",
                                          "checkpoints", "distributed", "trainer_options", "inference",
                                          "errors", "trainer", "loop_checkpoint", "images", "sampling", "preemption",
                                          "datasets/__init__")),
    *(f"tests/{name}.py" for name in ("conftest", "fake_data", "bounded", "test_data", "test_model", "test_module",
                                      "test_loop", "test_parity", "test_entries", "test_resume", "test_offline",
                                      "test_distributed", "test_docs", "test_logging", "test_trace", "test_sweep", "test_nodes",
                                      "test_trainer_options", "test_export", "test_serve", "test_readme",
                                      "test_notebook", "test_preemption")),
    "notebooks/ladder.ipynb",
}
AWKWARD = 'Ünïcödé "Quoted" Net\'s \\ Back'


def expected_files(dataset: str) -> set[str]:
    """What a bake holds: the common files, and the chosen data set's module, fake files and tests alone."""
    return COMMON | {f"{PACKAGE}/datasets/{dataset}.py", f"tests/fakes/{dataset}.py", f"tests/test_dataset_{dataset}.py"}


def files_of(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and ".git/" not in str(p)}


def assert_fully_rendered(project: Path) -> None:
    for path in project.rglob("*"):
        assert "{{" not in str(path) and "}}" not in str(path), path
        if path.is_file() and ".git/" not in str(path):
            text = path.read_text(encoding="utf-8")
            text = re.sub(r"\$\{\{ [^}]+ \}\}", "", text)  # GitHub Actions' own expressions
            for marker in ("{{", "}}", "{%", "%}"):
                assert marker not in text, f"{marker} left in {path}"


def assert_lint_clean(project: Path) -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=project, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


# The baked suites, longest first: xdist's loadgroup hands each worker the next test in this order as it
# runs low (worksteal split the list in halves up front and never took a running worker's next test, so
# both slow halves ran on one worker, one after the other). The default bake runs its whole
# suite, in three parts that the two workers share: the slow tier (real processes and long runs, which do
# the same for every data set) in two halves, DDP and nodes apart from the rest, and the quick tier. Every
# other data set runs its whole quick tier, each with another logger, so every value of every option is
# baked and tested; the last also has an awkward name, which reaches the package, the imports and the
# wandb project.
# Each suite's time limit is about 3 times its measured time beside another suite (the slow halves 8 min
# each, a quick tier 65 to 112 s), with room for the import; the baked tests each have a limit of their
# own, far below these.
PROCESSES = ["tests/test_distributed.py", "tests/test_nodes.py"]  # DDP launches, two nodes, SLURM
SUITES = {
    "slow-ddp": ({}, ["-m", "slow", *PROCESSES], 1500),
    "slow-rest": ({}, ["-m", "slow", *(f"--ignore={path}" for path in PROCESSES)], 1500),
}
others = [(dataset, LOGGERS[(i + 1) % len(LOGGERS)]) for i, dataset in enumerate(DATASETS[1:])]
for dataset, logger in reversed(others):  # image_folder's, with wandb and files to decode, is the longest
    SUITES[f"{dataset}-{logger}-quick"] = ({"dataset": dataset, "logger": logger}, ["-m", "not slow"], 300)
SUITES[f"{others[-1][0]}-{others[-1][1]}-quick"][0]["project_name"] = AWKWARD
SUITES["quick"] = ({}, ["-m", "not slow"], 300)
# The notebook reads its data through the DataModule: the default bake runs it in its slow tier, an RGB one here
SUITES["cifar10-notebook"] = ({"dataset": "cifar10", "logger": "none"}, ["tests/test_notebook.py"], 300)


@pytest.mark.parametrize(("context", "selection", "limit"), [
    pytest.param(*suite, marks=pytest.mark.timeout(suite[2] + 120), id=name) for name, suite in SUITES.items()
])  # fmt: skip
def test_baked_suite_passes(tmp_path, context, selection, limit):
    result = run_project_tests(bake(tmp_path, **context), *selection, timeout=limit)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


def test_defaults_bake_the_expected_files(default_project):
    assert default_project.name == "digits-classifier"
    assert files_of(default_project) == expected_files("digits")
    assert_fully_rendered(default_project)
    assert "wandb" in (default_project / "pyproject.toml").read_text()
    assert not (default_project / ".git").exists()


def test_awkward_name_bakes_into_valid_names(tmp_path):
    project = bake(tmp_path, project_name=AWKWARD, author_name='Zoë "Z" O\'Neil')
    assert project.name == "unicode-quoted-net-s-back"
    assert (project / "unicode_quoted_net_s_back/model.py").exists()
    assert_fully_rendered(project)
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["authors"] == [{"name": 'Zoë "Z" O\'Neil'}]
    assert "Ünïcödé" in (project / "README.md").read_text(encoding="utf-8")
    for source in project.rglob("*.py"):
        compile(source.read_text(encoding="utf-8"), str(source), "exec")


def test_jinja_braces_in_the_name_fail_in_one_named_error_unless_raw(tmp_path):
    # cookiecutter renders every answer as Jinja. The template names no extension of its own (one that kept
    # answers as text could not be imported by pytest-cookies from another directory), so an undefined name
    # is cookiecutter's own error, naming the answer; {% raw %} keeps braces as text.
    failed = bake_cli(tmp_path, project_name="My {{ app }} Net")
    assert failed.returncode != 0 and not list(tmp_path.iterdir())
    assert "Unable to render variable 'project_name'" in failed.stdout + failed.stderr
    assert "'app' is undefined" in failed.stdout + failed.stderr
    braced = "My {{ app }} Net"
    assert bake_cli(tmp_path, project_name="{% raw %}" + braced + "{% endraw %}").returncode == 0
    project = tmp_path / "my-app-net"
    assert (project / "README.md").read_text(encoding="utf-8").startswith(f"# {braced}\n")
    assert tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"] == project.name
    for source in project.rglob("*.py"):
        compile(source.read_text(encoding="utf-8"), str(source), "exec")


def test_init_git_makes_a_first_commit(tmp_path):
    project = bake(tmp_path, init_git="yes")
    log = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True)
    assert log.returncode == 0 and len(log.stdout.splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True)
    assert status.stdout == ""  # everything baked is committed, nothing ignored by mistake


@pytest.mark.parametrize(("dataset", "logger"), list(itertools.product(DATASETS, LOGGERS)))
def test_every_combination_renders_and_lints(tmp_path, dataset, logger):
    project = bake(tmp_path, dataset=dataset, logger=logger)
    dropped = set() if logger == "wandb" else {"docs/wandb.md"}
    assert files_of(project) == expected_files(dataset) - dropped
    assert_fully_rendered(project)
    assert_lint_clean(project)
    dependencies = " ".join(tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"])
    assert ("wandb" in dependencies) == (logger == "wandb")
    assert ("tensorboard" in dependencies) == (logger == "tensorboard")
    assert ("scikit-learn" in dependencies) == (dataset == "digits")


def test_no_python_file_of_the_template_holds_jinja_control_lines():
    # A .py template only substitutes names; choices are whole files, which the post-gen hook keeps or removes.
    sources = list((TEMPLATE / "{{cookiecutter.project_slug}}").rglob("*.py"))
    assert len(sources) > 20
    for source in sources:
        assert "{%" not in source.read_text(encoding="utf-8"), source


def test_the_template_package_passes_ruff_before_baking():
    # Inside the package, imports are relative and names are substituted in strings only: it is Python as it stands.
    src = TEMPLATE / "{{cookiecutter.project_slug}}" / "{{cookiecutter.package_name}}"
    for command in (["check", "--select", "E,F,I,UP,B"], ["format", "--check"]):
        result = subprocess.run([sys.executable, "-m", "ruff", *command, "--isolated", "--line-length", "120",
                                 "--target-version", "py310", str(src)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
