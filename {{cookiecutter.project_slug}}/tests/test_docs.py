"""The docs cannot go stale: the code they quote, the files they name and the options they show must exist."""

import ast
import re
from pathlib import Path

import pytest

import train

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Options of other programs that the docs show: torchrun's, SLURM's, and LightningCLI's ones this project turns off.
FOREIGN = {"--nproc_per_node", "--nnodes", "--node_rank", "--master_addr", "--master_port", "--standalone"}
FOREIGN |= {"--rdzv_backend", "--rdzv_endpoint", "--nodes", "--ntasks-per-node", "--gres", "--optimizer"}
FOREIGN |= {"--signal", "--requeue"}  # SLURM's, for preemption
FOREIGN |= {"--lr_scheduler", "--help", "--no-input"}  # and cookiecutter's
OWN_OPTIONS = {"--json", "--plot", "--check", "--repeats", "--rungs", "--batches", "--output"}
OWN_OPTIONS |= {"--sweep", "--n_trials", "--storage", "--study_name", "--rung", "--metric", "--direction"}
OWN_OPTIONS |= {"--n_workers", "--heartbeat", "--output_dir", "--format", "--port", "--host", "--workers"}
OWN_OPTIONS |= {"--max_batch_size", "--batch_timeout", "--max_request_mb", "--max_concurrent_requests"}
# (compare's, trace_steps', predict's, sweep's, export's and serve's own)


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of ``text``: a list of rows, each a list of cells (header row first)."""
    found, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            found, rows = [*found, rows], []
    return found


def test_every_line_six_steps_quotes_from_the_loops_is_in_them():
    package = ROOT / train.TrainerCLI.__module__.partition(".")[0]
    quoted = 0
    for table in tables((ROOT / "docs" / "six_steps.md").read_text()):
        for column, header in enumerate(table[0]):
            # a column headed by the files it quotes, e.g. "manual (`train_manual.py`, `loops.py`)"
            files = [
                ROOT / name if (ROOT / name).exists() else package / name for name in re.findall(r"`(\w+\.py)`", header)
            ]
            source = "\n".join(path.read_text() for path in files)
            lines = [re.findall(r"`([^`]+)`", row[column])[0] for row in table[1:] if files]
            missing = [line for line in lines if line not in source]
            assert not missing, f"docs/six_steps.md quotes lines that {header} no longer has: {missing}"
            quoted += len(lines)
    assert quoted >= 20


def test_every_file_the_readme_names_exists():
    package = train.TrainerCLI.__module__.partition(".")[0]
    text = (ROOT / "README.md").read_text()
    folders = f"{package}|docs|configs|tests|ladder|sweeps|deploy|notebooks|scripts"
    named = set(re.findall(rf"`((?:{folders})/[\w./<>-]+)`", text.replace("<package>", package)))
    assert len(named) >= 8
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_every_option_the_docs_show_is_an_option(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    options = set(re.findall(r"--[a-z_][\w.-]*", capsys.readouterr().out))
    shown = {(doc.name, flag) for doc in DOCS for flag in re.findall(r"(?<![\w-])--[a-z_][\w.-]*\w", doc.read_text())}
    unknown = sorted((doc, flag) for doc, flag in shown if flag not in options | FOREIGN | OWN_OPTIONS)
    assert len(shown) >= 20 and not unknown, f"the docs show options that no entry has: {unknown}"


def imports_of(path: Path) -> set[str]:
    """The top-level names of the modules that a Python file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.partition(".")[0])
    return found


def test_the_root_holds_the_rungs_and_the_everyday_verbs_and_no_entry_imports_another():
    """The root shows the architecture: the three rungs and at most three verbs, each read on its own. The
    tools in their folders (ladder/, sweeps/, deploy/) call the rungs' main, as a user's code would."""
    scripts = {path.stem for path in ROOT.glob("*.py")}
    assert {"train", "train_manual", "train_fabric"} <= scripts and len(scripts) <= 6, scripts
    assert imports_of(ROOT / "ladder" / "compare.py") >= {"train", "train_manual", "train_fabric"}  # it sees imports
    crossed = {name: found for name in scripts if (found := imports_of(ROOT / f"{name}.py") & scripts)}
    assert not crossed, crossed


def test_the_readmes_tree_names_every_module_and_only_files_that_exist():
    text = (ROOT / "README.md").read_text()
    tree = re.search(r"## The code\n\n```text\n(.*?)```", text, re.DOTALL).group(1)
    named = set(re.findall(r"[\w.]+\.(?:py|ipynb|yaml|sbatch|md)\b", tree))
    every = {path.name for path in ROOT.rglob("*") if ".venv" not in path.parts and "runs" not in path.parts}
    assert named and not named - every, f"the tree names files that do not exist: {named - every}"
    package = train.TrainerCLI.__module__.partition(".")[0]
    folders = [ROOT, ROOT / package, ROOT / "ladder", ROOT / "sweeps", ROOT / "deploy"]
    modules = {path.name for folder in folders for path in folder.glob("*.py") if path.name != "__init__.py"}
    assert not modules - named, f"the tree leaves out: {modules - named}"
    tops = {path.name for path in ROOT.iterdir() if path.is_dir() and not path.name.startswith((".", "_"))}
    shown = set(re.findall(r"^(\w+)/", tree, re.MULTILINE))
    assert tops - {"runs", "data", "build"} <= shown, tops - shown
