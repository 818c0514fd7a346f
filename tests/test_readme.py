"""The template's README is a user's guide that runs as written, and no file of the project speaks of how it
was made: no stretch of work by name, no commit by hash."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import TEMPLATE

README = TEMPLATE / "README.md"
CLONE = "ladder"  # the README's name for a clone of this repository


def cookiecutter_lines() -> list[tuple[int, str]]:
    """The README's `cookiecutter` commands, with their line numbers, comments cut."""
    lines = README.read_text(encoding="utf-8").splitlines()
    return [(n, line.split("  #")[0].strip()) for n, line in enumerate(lines, 1) if line.startswith("cookiecutter ")]


def test_the_readme_is_a_short_guide_that_bakes_first():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    assert cookiecutter_lines()[0][0] <= 40
    text = "\n".join(lines)
    assert "make demo" in text and "make test" in text and "dataset=image_folder logger=tensorboard" in text


def test_every_cookiecutter_line_of_the_readme_bakes_as_written(tmp_path):
    unattended = [line for _, line in cookiecutter_lines() if f"cookiecutter {CLONE} --no-input" in line]
    assert len(unattended) >= 3
    for n, line in enumerate(unattended):
        args = [str(TEMPLATE) if arg == CLONE else arg for arg in shlex.split(line)[1:]]
        out = tmp_path / str(n)
        result = subprocess.run([sys.executable, "-m", "cookiecutter", *args, "-o", str(out)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
        [project] = out.iterdir()
        options = dict(arg.split("=", 1) for arg in args if "=" in arg)
        dataset = options.get("dataset", "digits")
        assert list(project.glob(f"*/datasets/{dataset}.py")), f"{line}: no {dataset}.py in {project.name}"
        assert "Next steps" in result.stdout, line  # what the README says the bake prints


# A stretch of work named as such; "session" in its other senses (pytest's scope, a process session,
# ONNX Runtime's InferenceSession) is left alone
WORK = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|this|that|last|next|earlier|previous|later)\s+sessions?\b"
    r"|\bsessions?\s+of\s+work\b",
    re.IGNORECASE,
)
COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
TEXT = {".md", ".py", ".txt", ".toml", ".yaml", ".yml", ".sbatch", ".json", ".ini", ".cfg"}


def project_files() -> list[Path]:
    skip = {".git", ".venv", "build", "__pycache__"}
    return [path for path in sorted(TEMPLATE.rglob("*")) if path.is_file() and not skip & set(path.parts)
            and (path.suffix in TEXT or path.name in {"Makefile", "run"})]


def prose(path: Path) -> str:
    """What a reader reads as words: the whole of a Markdown or text file, the comments of code."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".md", ".txt"}:
        return text
    return "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)


def test_no_file_speaks_of_sessions_of_work_or_commits_by_hash():
    found = [f"{path.relative_to(TEMPLATE)}: {match.group(0)}" for path in project_files()
             for match in WORK.finditer(path.read_text(encoding="utf-8"))]
    found += [f"{path.relative_to(TEMPLATE)}: {match.group(0)}" for path in project_files()
              for match in COMMIT.finditer(prose(path))]
    assert not found, "history belongs in CHANGELOG.md, figures in benchmarks/RESULTS.md: " + "; ".join(found)


# One name per concept: the Trainer's rung is "trainer", a way of training is a "rung", never a "path".
RETIRED = {
    r'rung="lightning"|"lightning": |-lightning\b': "the Trainer's rung is named trainer",
    r"--path\b|\bpaths\[|\"paths\"|lightning_ms_per_step": "a way of training is a rung: --rung, rungs",
    r"\b(both|either|two|each|every)[ _]paths?\b|_(both|either|every|the)_paths?_": "the rungs are rungs, not paths",
    r"mark\.once|-m \"?once": "the once marker is retired: the template runs the slow tier on one bake",
    r"cli_class|loader_class|MemoryLogger|\bTimedCLI|\bTracedCLI|\bTrialCLI|\bBarebonesCLI|CLI\(rung=|test=False": (
        "the tools attach through loggers, torch's hooks and documented flags, not hooks of their own"
    ),
}


def test_no_retired_name_comes_back_into_the_template():
    project = TEMPLATE / "{{cookiecutter.project_slug}}"
    files = [path for path in project_files() if project in path.parents]
    found = [
        f"{path.relative_to(TEMPLATE)}:{number}: {why}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for pattern, why in RETIRED.items()
        if re.search(pattern, line, re.IGNORECASE if "paths?" in pattern else 0)
    ]
    assert len(files) >= 30 and not found, found
