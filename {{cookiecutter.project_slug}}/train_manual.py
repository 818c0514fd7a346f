"""Train the same network on the same data with the hand-written loop in src/.../loop.py.

It takes the same options and the same config file as train.py:

    python train_manual.py --model.lr 0.003 --trainer.max_epochs 5

Of the trainer options it reads max_epochs; the others belong to Lightning's Trainer.
"""

from {{ cookiecutter.package_name }}.cli import ProjectCLI, clear_errors
from {{ cookiecutter.package_name }}.distributed import finish
from {{ cookiecutter.package_name }}.paths import run_manual
from {{ cookiecutter.package_name }}.runs import say


def main(args: list[str] | None = None) -> dict:
    results = run_manual(ProjectCLI(path="manual", args=args))
    say(f"test accuracy: {results['test']['acc']:.4f}")
    say(f"outputs: {results['run_dir']}")
    finish()  # under DDP: every rank leaves the process group together
    return results


if __name__ == "__main__":
    with clear_errors():
        main()
