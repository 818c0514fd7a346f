"""Remove what the chosen options do not need, then print the next steps."""

import shutil
from pathlib import Path

LOGGER = {{ cookiecutter.logger | tojson }}
SLUG = {{ cookiecutter.project_slug | tojson }}

# Files that only one choice of an option needs: (option value chosen, files to drop otherwise).
ONLY_FOR = [
    (LOGGER == "wandb", ["docs/wandb.md"]),
]


def main() -> None:
    for needed, paths in ONLY_FOR:
        for path in paths if not needed else []:
            target = Path(path)
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    print(
        f"\nBaked {SLUG}/. Next steps:\n"
        f"  cd {SLUG}\n"
        "  pip install torch==2.14.1 torchvision==0.29.1   # or the build for your CUDA\n"
        "  pip install -e '.[dev]'\n"
        "  python train.py            # Lightning\n"
        "  python train_manual.py     # the same model, by hand\n"
        "  python compare.py          # both, side by side\n"
        "  pytest\n"
    )


if __name__ == "__main__":
    main()
