"""The README's results are the committed benchmark tables' (docs/benchmarks), not retyped."""

import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# README column title -> column of docs/benchmarks/classical_all_auroc_one-class.csv
README_COLUMNS = {
    "CLAD": "CLADDetector",
    "DeepSVDD": "DeepSVDD",
    "LAMP": "LAMPAutoencoderDetector",
    "ResAD": "ResADDetector",
    "IsolationForest": "IsolationForest",
    "OneClassSVM": "OneClassSVM",
    "LOF": "LocalOutlierFactor",
    "KNN": "KNN",
    "PyOD AE": "PyODAutoEncoder",
    "PyOD DeepSVDD": "PyODDeepSVDD",
}


def markdown_table_after(text, marker):
    """The first Markdown table after ``marker``: its header cells and its rows' cells."""
    lines = text[text.index(marker) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    header, separator, *body = rows
    assert all(re.fullmatch(r"-+", cell) for cell in separator)
    return header, body


def test_readme_mean_auroc_is_the_committed_tables_mean_row():
    readme = (ROOT / "README.md").read_text()
    source = "docs/benchmarks/classical_all_auroc_one-class.csv"
    header, body = markdown_table_after(readme, f"(from `{source}`)")
    with open(ROOT / source, newline="") as handle:
        mean = next(row for row in csv.DictReader(handle) if row["dataset"] == "mean")
    assert len(body) == 1
    assert header == list(README_COLUMNS)
    assert body[0] == [mean[README_COLUMNS[title]] for title in header]
