"""Bad answers are refused by the pre-generation hook: one clear line, a non-zero exit, nothing left behind."""

import pytest
from conftest import bake_cli

BAD = [
    ({"package_name": "1digits"}, "is not a Python identifier"),
    ({"package_name": "my-package"}, "is not a Python identifier"),
    ({"package_name": "my package"}, "is not a Python identifier"),
    ({"package_name": ""}, "is not a Python identifier"),
    ({"package_name": "class"}, "is a Python keyword"),
    ({"package_name": "torch"}, "would shadow"),
    ({"package_name": "lightning"}, "would shadow"),
    ({"package_name": "wandb"}, "would shadow"),
    ({"package_name": "json"}, "would shadow"),
    ({"project_slug": "bad slug!"}, "is not a safe directory name"),
    ({"project_slug": ".hidden"}, "is not a safe directory name"),
    ({"project_slug": "-x"}, "is not a safe directory name"),
]


@pytest.mark.parametrize(("context", "message"), BAD, ids=[str(c) for c, _ in BAD])
def test_bad_input_fails_with_one_clear_line(tmp_path, context, message):
    result = bake_cli(tmp_path, **context)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert list(tmp_path.iterdir()) == [], "a half-made project was left behind"


def test_slug_with_a_slash_leaves_no_files(tmp_path):
    # cookiecutter makes the project directory before the hook runs, and on failure removes that
    # directory only: the empty parent "bad/" stays. Nothing else may.
    result = bake_cli(tmp_path, project_slug="bad/slug")
    assert result.returncode != 0 and "is not a safe directory name" in result.stderr
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_unknown_choice_is_refused(tmp_path):
    # cookiecutter refuses it itself, before any hook can run: with a traceback whose last line says it all.
    result = bake_cli(tmp_path, dataset="imagenet")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "imagenet" in last and "digits" in last and "image_folder" in last, result.stderr
    assert list(tmp_path.iterdir()) == []
