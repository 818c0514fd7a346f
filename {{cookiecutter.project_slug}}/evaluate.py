"""Print the test metrics of a checkpoint from either path.

    python evaluate.py --ckpt_path runs/<run>/checkpoints/best.ckpt    # Lightning's
    python evaluate.py --ckpt_path runs/<run>/checkpoints/best.pt      # the manual loop's

The run's config.yaml, beside checkpoints/, sets the model and the data; flags override it.
"""

import torch

from {{ cookiecutter.package_name }}.checkpoints import CheckpointError, load_weights
from {{ cookiecutter.package_name }}.cli import ProjectCLI, clear_errors
from {{ cookiecutter.package_name }}.loop import evaluate
from {{ cookiecutter.package_name }}.recipe import Metrics


def main(args: list[str] | None = None) -> dict[str, float]:
    cli = ProjectCLI(path="evaluate", args=args)
    if not cli.config.ckpt_path:
        raise CheckpointError("pass --ckpt_path, the checkpoint to evaluate")
    net, data = cli.model.net, cli.datamodule
    load_weights(net, cli.config.ckpt_path, cli.config.trust_checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data.prepare_data()
    data.setup("test")
    metrics = evaluate(net.to(device), data.test_dataloader(), device, Metrics(data.num_classes).to(device))
    print(f"test/loss {metrics['loss']:.4f}  test/acc {metrics['acc']:.4f}  ({cli.config.ckpt_path})")
    return metrics


if __name__ == "__main__":
    with clear_errors():
        main()
