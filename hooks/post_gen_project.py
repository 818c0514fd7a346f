"""Remove what the chosen options do not need, optionally start a git repository, print the next steps."""

import json
import shutil
import subprocess
from pathlib import Path

LOGGER = {{ cookiecutter.logger | tojson }}
DATASET = {{ cookiecutter.dataset | tojson }}
PACKAGE = {{ cookiecutter.package_name | tojson }}
SLUG = {{ cookiecutter.project_slug | tojson }}
INIT_GIT = {{ "True" if cookiecutter.init_git in [True, "yes", "y", "true", "True", "1"] else "False" }}
# cruft records the template's commit as _commit. It bakes the project again, in temporary directories, to
# compute each update: a repository made there would become part of the update's diff.
UNDER_CRUFT = {{ "True" if cookiecutter._commit is defined else "False" }}

# Files that only one choice of an option needs: (is that choice taken, the files).
ONLY_FOR = [
    (LOGGER == "wandb", ["docs/wandb.md"]),
]


# One module per data set in each of these folders, named after it: only the chosen data set's stays.
PER_DATASET = [PACKAGE + "/datasets/{name}.py", "tests/fakes/{name}.py", "tests/test_dataset_{name}.py"]


def remove_unneeded() -> None:
    for needed, paths in ONLY_FOR:
        for path in [] if needed else map(Path, paths):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for pattern in PER_DATASET:
        for path in Path().glob(pattern.format(name="*")):
            if path.name != pattern.format(name=DATASET).rpartition("/")[2] and path.name != "__init__.py":
                path.unlink()


def clear_notebook_outputs() -> None:
    """notebooks/ladder.ipynb carries the outputs of the default bake (the digits, digits_classifier); in any
    other bake they would show another project, so it starts without them until `make notebook` runs it."""
    path = Path("notebooks/ladder.ipynb")
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def init_git() -> None:
    """git init and a first commit; a missing git or identity is reported, never fatal."""
    commands = [["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "Bake from the template"]]
    for command in commands:
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"note: `{' '.join(command)}` failed ({getattr(error, 'stderr', '') or error}); skipped git")
            return


def main() -> None:
    remove_unneeded()
    if (DATASET, PACKAGE) != ("digits", "digits_classifier"):
        clear_notebook_outputs()
    if INIT_GIT and UNDER_CRUFT:
        print("note: under cruft the project is not made a git repository; run `git init` yourself")
    elif INIT_GIT:
        init_git()
    print(
        f"\nBaked {SLUG}/. Next steps:\n"
        f"  cd {SLUG}\n"
        "  pip install torch torchvision     # the build for your CUDA, from pytorch.org\n"
        "  pip install -e '.[dev]'\n"
        "  python train.py            # Lightning's Trainer\n"
        "  python train_manual.py     # the same model, by hand\n"
        "  python train_fabric.py     # the same loop, with Lightning Fabric\n"
        "  python -m ladder.compare   # every rung, side by side\n"
        "  pytest\n"
    )


if __name__ == "__main__":
    main()
