"""Every example in examples/ runs to completion as a script of its own, as a user runs it
(the docs build runs them too, in one process, for the gallery)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")  # the examples draw figures

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("plot_*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_has_a_gallery_title(path):
    # sphinx-gallery takes the page title from the module docstring's first section.
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{path.name} needs a module docstring with a title"
    title, underline = docstring.strip().splitlines()[:2]
    assert title.strip() and set(underline.strip()) == {"="} and len(underline) >= len(title)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(path, tmp_path):
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,  # anything an example writes stays out of the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
