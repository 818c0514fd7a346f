"""Reject bad answers before anything is written: one clear line and a non-zero exit."""

import keyword
import re
import sys

# tojson keeps quotes, backslashes and unicode in a value from breaking this file.
PACKAGE = {{ cookiecutter.package_name | tojson }}
SLUG = {{ cookiecutter.project_slug | tojson }}

# Names the baked project imports: a package called like one of them would shadow it.
DEPENDENCIES = {
    "torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning", "lightning_fabric",
    "wandb", "sklearn", "numpy", "matplotlib", "tqdm", "jsonargparse", "yaml", "test", "tests",
}
SLUG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def problem() -> str | None:
    if not SLUG_PATTERN.match(SLUG):
        return f"project_slug {SLUG!r} is not a safe directory name: use letters, digits, '.', '_' and '-', starting with a letter or digit"
    if not PACKAGE.isidentifier() or not PACKAGE.isascii():
        return f"package_name {PACKAGE!r} is not a Python identifier: use letters, digits and _, not starting with a digit"
    if keyword.iskeyword(PACKAGE):
        return f"package_name {PACKAGE!r} is a Python keyword"
    if PACKAGE in DEPENDENCIES or PACKAGE in sys.stdlib_module_names:
        return f"package_name {PACKAGE!r} would shadow the module of the same name: pick another"
    return None


if __name__ == "__main__":
    message = problem()
    if message:
        print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(1)
