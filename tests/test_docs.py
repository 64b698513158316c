"""The documentation builds with warnings as errors (the command documented in docs/conf.py),
runs the gallery's examples, and renders math without a network.

The build runs once per test session; the tests below read its output."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")
pytest.importorskip("sphinx_gallery")
pytest.importorskip("sphinx-mathjax-offline")
pytest.importorskip("matplotlib")  # the gallery's examples draw figures

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
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
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-6000:]
    return out / "html"


def test_api_reference_documents_the_detectors(html):
    api = (html / "api.html").read_text()
    assert 'id="skuad.DeepSVDD"' in api  # autodoc found the public detectors


def test_every_html_repr_link_lands_on_an_entry_of_the_api_page(html):
    from tests.test_doc_link import ANCHORS

    api = (html / "api.html").read_text()
    missing = [anchor for anchor in ANCHORS.values() if f'id="{anchor}"' not in api]
    assert not missing, f"api.html has no entry for {missing}"


def test_gallery_shows_executed_output_and_figures(html):
    page = (html / "auto_examples" / "plot_pipeline.html").read_text()
    assert "sphx-glr-script-out" in page  # the printed output of the run
    figures = re.findall(r'src="(\.\./_images/sphx_glr_plot_pipeline_\d+\.png)"', page)
    assert figures, "plot_pipeline.py draws a figure; the page shows none"
    assert all((html / "auto_examples" / src).resolve().is_file() for src in figures)


def test_math_renders_from_a_local_mathjax(html):
    page = (html / "detectors" / "deepsvdd.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, flags=re.IGNORECASE)
    assert scripts == ["../_static/mathjax/tex-chtml.js"]
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_pages_load_nothing_from_the_network(html):
    for page in html.rglob("*.html"):
        remote = re.findall(
            r'<(?:script|link)[^>]*(?:src|href)="(https?://[^"]*)"', page.read_text()
        )
        assert not remote, f"{page.relative_to(html)} loads {remote}"


def test_every_results_table_comes_from_a_committed_csv():
    # Results are rendered from CSV files under docs/benchmarks/ (csv-table :file:), never
    # typed into the pages: no page under docs/benchmarks/ or docs/detectors/, nor the
    # performance and scaling pages, holds an inline list-table, and every file a csv-table
    # names exists and has rows of one width.
    pages = [*(DOCS / "benchmarks").glob("*.rst"), *(DOCS / "detectors").glob("*.rst")]
    pages += [DOCS / "benchmarks.rst", DOCS / "performance.rst", DOCS / "scaling.rst"]
    files = []
    for page in pages:
        text = page.read_text()
        assert ".. list-table::" not in text, page.name
        for name in re.findall(r"\.\. csv-table::.*\n\s+:file: (\S+)", text):
            files.append((page.parent / name).resolve())
    assert files
    for path in files:
        assert path.is_relative_to(DOCS / "benchmarks") and path.is_file(), path
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) >= 2 and len({len(row) for row in rows}) == 1, path
