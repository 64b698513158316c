"""The documentation builds with warnings as errors (the command documented in docs/conf.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")
pytest.importorskip("sphinx_gallery")

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_without_warnings(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-6000:]
    html = tmp_path / "html"
    api = (html / "api.html").read_text()
    assert 'id="skuad.DeepSVDD"' in api  # autodoc found the public detectors
    assert (html / "auto_examples" / "plot_pipeline.html").exists()  # the gallery is there
