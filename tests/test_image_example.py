"""examples/plot_image_embeddings.py runs, embeds the digits and detects the anomalies."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plot_image_embeddings.py"


def test_image_embedding_example_has_a_gallery_title():
    title, underline = ast.get_docstring(ast.parse(EXAMPLE.read_text())).splitlines()[:2]
    assert title and set(underline) == {"="} and len(underline) >= len(title)


def test_image_embedding_example_runs(tmp_path):
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    out = completed.stdout
    # 8x8 images through two 2x2 poolings: a 64 x 2 x 2 feature map, pooled to 64 numbers.
    assert "feature map per image: (64, 2, 2), embedding: 64 numbers" in out
    auroc = float(re.search(r"AUROC on the embeddings: ([0-9.]+)", out).group(1))
    assert 0.5 < auroc <= 1.0  # better than chance at telling 0 from the other digits
