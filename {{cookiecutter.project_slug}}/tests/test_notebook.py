"""notebooks/ladder.ipynb runs top to bottom, headless and offline, on this bake's data, and each claim holds."""

import json
from pathlib import Path

import pytest

from conftest import QUICK_DATA

nbformat = pytest.importorskip("nbformat")  # the dev extra: nbclient, nbformat, ipykernel
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "ladder.ipynb"


def with_flags(notebook, flags: list[str]) -> int:
    """Papermill's convention: a cell after the one tagged "parameters" sets them for this run; its index."""
    [index] = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    paths = [str(NOTEBOOK.parents[1]), str(NOTEBOOK.parents[1] / "tests")]  # the project, and its fake data
    setup = f"import sys\nsys.path[:0] = {paths!r}\nimport fake_data\n\nfake_data.accept_fake_files()\n"
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(setup + f"FLAGS = {flags!r}"))
    return index + 1


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 3x its 60 s beside another suite
def test_the_notebook_runs_top_to_bottom_and_every_claim_holds(data_dir):
    data_options = [f"--data.{name}={value}" for name, value in {**QUICK_DATA, "data_dir": data_dir}.items()]
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    injected = with_flags(notebook, data_options)
    where = dict(metadata=dict(path=str(NOTEBOOK.parent)))  # the kernel starts in notebooks/, as Jupyter's would
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3", resources=where)
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        failed = next(i for i, cell in enumerate(notebook.cells) if any(
            output.get("output_type") == "error" for output in cell.get("outputs", [])))  # fmt: skip
        own = failed - (failed > injected)  # the cell's number in the notebook as committed, counted from 0
        pytest.fail(f"cell {own} of {NOTEBOOK.name} failed:\n{error}", pytrace=False)
    text = json.dumps([cell.get("outputs", []) for cell in notebook.cells], ensure_ascii=False)
    assert "max |Δw| = 0.0" in text and "image/png" in text
    assert str(Path.home()) not in text and "/tmp" not in text  # no machine paths in what a learner reads


def test_the_committed_notebook_shows_no_machine_paths_and_no_errors():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert "/tmp" not in text and "/home/" not in text and "site-packages" not in text
