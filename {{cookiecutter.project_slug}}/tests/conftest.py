import os

import pytest

# No test may reach the network or prompt: wandb runs, if any, are disabled.
os.environ["WANDB_MODE"] = "disabled"

# Fast, quiet options for any run a test starts; a test adds its own after these.
QUICK = ["--logger", "none", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture
def quick_args(tmp_path) -> list[str]:
    return [*QUICK, "--run_root", str(tmp_path / "runs")]
