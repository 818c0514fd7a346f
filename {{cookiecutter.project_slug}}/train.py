"""Train with Lightning, then test the best checkpoint.

python train.py                                   # the defaults in configs/default.yaml
python train.py --model.lr 0.003 --trainer.max_epochs 5 --data.batch_size 128
python train.py --config my.yaml                  # a config of your own
python train.py --help                            # every option
"""

from {{ cookiecutter.package_name }}.cli import ProjectCLI, clear_errors
from {{ cookiecutter.package_name }}.distributed import finish
from {{ cookiecutter.package_name }}.paths import run_lightning
from {{ cookiecutter.package_name }}.runs import say


def main(args: list[str] | None = None) -> dict:
    results = run_lightning(ProjectCLI(path="lightning", args=args))
    if results["test"] is not None:
        say(f"test accuracy: {results['test']['acc']:.4f}")
    say(f"outputs: {results['run_dir']}")
    finish()  # under DDP: every rank leaves the process group together
    return results


if __name__ == "__main__":
    with clear_errors():
        main()
