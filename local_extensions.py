"""A Jinja extension for this template: answers are text, never templates.

cookiecutter renders every value of the context as a Jinja template, including the answers given with
``--no-input key=value`` or ``extra_context``. A project name such as ``My {{ app }}`` would then fail
(``app`` is undefined) or change (``{{ 7 * 7 }}`` becomes ``49``). Typed answers are not rendered, so the
two ways of baking would disagree. This extension makes them agree: a string that cookiecutter renders
on its own (a context value, a file or directory name) and that refers to no ``cookiecutter.`` variable
is taken literally. File contents, which are rendered by name, are untouched.
"""

import json

from jinja2.ext import Extension


class LiteralAnswers(Extension):
    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is not None or "cookiecutter." in source:
            return source  # a template file, or a value derived from other answers
        return "{{ " + json.dumps(source, ensure_ascii=False) + " }}"  # a Jinja string literal of the text
