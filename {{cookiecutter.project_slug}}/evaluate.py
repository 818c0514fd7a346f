"""Print the test metrics of a checkpoint from any way of training.

    python evaluate.py --ckpt_path runs/<run>/checkpoints/best.ckpt    # the Trainer's
    python evaluate.py --ckpt_path runs/<run>/checkpoints/best.pt      # the manual loop's

The run's config.yaml, beside checkpoints/, sets the model and the data; flags override it. The test
itself is Lightning's Trainer.test, on one device.
"""

import lightning as L

from {{ cookiecutter.package_name }}.errors import one_line_errors
from {{ cookiecutter.package_name }}.inference import load_trained


def main(args: list[str] | None = None) -> dict[str, float]:
    cli = load_trained(args)  # the run's config.yaml, the flags, then the checkpoint's weights
    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    trainer = L.Trainer(devices=1, precision=cli.config.trainer.precision, **quiet)
    metrics = trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    results = {"loss": metrics["test/loss"], "acc": metrics["test/acc"]}
    print(f"test/loss {results['loss']:.4f}  test/acc {results['acc']:.4f}  ({cli.config.ckpt_path})")
    return results


if __name__ == "__main__":
    with one_line_errors():
        main()
