"""What every script in benchmarks/ shares: data directory, protocol, baselines, evaluation
and tables.

The protocol, the detectors and the evaluation are those of ``skuad bench``
(:mod:`skuad.benchmark`), so a script's figures and ``skuad bench``'s are measured the same way:

* data: :func:`data_dir` -- ``--data-dir``, else ``$SKUAD_DATA_DIR``, else
  ``../shared/data/adbench`` beside the repository when it exists;
  :func:`classical_sets` loads ``classical/<name>.npz`` files from it;
* protocol: :func:`split` -- ADBench's stratified 70/30 split, one-class (fit on the normal
  training rows) or unsupervised, MinMax scaling fitted on the rows the detector is trained on
  (tables; ``scale=False`` for images);
* baselines: :data:`BASELINES` (IsolationForest, LocalOutlierFactor and KNN, the distance to the
  5th nearest training row), built by :func:`baseline`;
* measuring: :func:`auroc` (anomaly = positive class, on scores higher = more normal, through
  :mod:`skuad.metrics`), :func:`timed_fit` (wall and CPU seconds), :class:`PeakRSS` (resident
  memory growth);
* tables: :func:`markdown_table`, :func:`rst_table`, :func:`write_csv`, :func:`command_line`.

Scripts import it as ``import _common`` (Python puts the script's folder on ``sys.path``).
"""

import argparse
import csv
import math
import sys
import time
import warnings
from pathlib import Path

from skuad.benchmark import (
    DATA_DIR_ENV,
    adbench_dir,
    evaluate,
    find_datasets,
    make_detector,
    split,
    subsample,
)
from skuad.cli import HelpFormatter
from skuad.datasets import load_adbench
from skuad.metrics import outlier_roc_auc_score

__all__ = [
    "BASELINES",
    "PeakRSS",
    "add_data_dir_argument",
    "auroc",
    "baseline",
    "classical_sets",
    "command_line",
    "data_dir",
    "evaluate",
    "find_datasets",
    "make_detector",
    "markdown_table",
    "parser",
    "rst_table",
    "split",
    "subsample",
    "timed_fit",
    "write_csv",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

# The classical baselines every script reports next to skuad's detectors.
BASELINES = ("IsolationForest", "LocalOutlierFactor", "KNN")


# ---------------------------------------------------------------------------- data
def add_data_dir_argument(parser):
    """The ``--data-dir`` option of every script (the rule is :func:`data_dir`'s)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"ADBench folder holding classical/ and cv_resnet18/ (default: ${DATA_DIR_ENV}, "
        "else ../shared/data/adbench beside the repository when it exists)",
    )


def data_dir(explicit=None):
    """The ADBench directory (see :func:`skuad.benchmark.adbench_dir`); exits naming the fix
    when there is none."""
    found = adbench_dir(explicit)
    if found is None or not Path(found).is_dir():
        raise SystemExit(
            f"No ADBench data directory{f' at {found}' if found else ''}: pass --data-dir or "
            f"set ${DATA_DIR_ENV}."
        )
    return Path(found)


def classical_sets(directory, names=None, exclude=()):
    """Yield ``(name, X, y)`` for the ADBench classical sets ``names`` (default: every file in
    ``directory/classical`` but ``exclude``), in ADBench's numeric order."""
    paths = find_datasets(directory, names)
    for path in paths:
        if path.stem not in exclude:
            X, y = load_adbench(path)
            yield path.stem, X, y


# ---------------------------------------------------------------------------- detectors
def baseline(name, seed=0):
    """The baseline ``name`` of :data:`BASELINES` with its defaults (seeded where it takes a
    seed), as ``skuad bench`` builds it."""
    return make_detector(name, seed=seed)


# ---------------------------------------------------------------------------- measuring
def auroc(y_test, normality_scores):
    """AUROC with the anomaly (``y = 1``) as the positive class, from scores higher = normal."""
    return outlier_roc_auc_score(y_test, normality_scores, y_convention="anomaly")


def timed_fit(model, X, *args, **kwargs):
    """Fit ``model`` (warnings silenced); returns ``(wall seconds, CPU seconds)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, *args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


class PeakRSS:
    """Peak resident memory growth (MiB) of this process while the block runs.

    Linux keeps the process's resident high-water mark (``VmHWM`` in ``/proc/self/status``);
    entering the block resets it to the current resident size (``/proc/self/clear_refs``), so
    on exit it is the block's exact peak, with no sampling gaps. It sees everything the
    process holds -- NumPy, torch, C libraries -- unlike ``tracemalloc``, which sees Python
    allocations only. ``peak_mib`` is the growth above the level at entry (NaN where the
    files are missing). Freed memory is handed back to the OS first (glibc's
    ``malloc_trim``) so that little of what earlier runs freed is silently reused, but pools
    that libraries keep (torch's, BLAS buffers) are not counted again: read it as a lower
    bound on the run's own footprint.
    """

    _STATUS = Path("/proc/self/status")
    _CLEAR_REFS = Path("/proc/self/clear_refs")

    def __init__(self):
        self.peak_mib = math.nan

    def _kib(self, field):
        for line in self._STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def __enter__(self):
        self._available = self._STATUS.exists() and self._CLEAR_REFS.exists()
        if self._available:
            _release_free_memory()
            self._CLEAR_REFS.write_text("5")  # VmHWM := VmRSS
            self._start = self._kib("VmRSS")
        return self

    def __exit__(self, *exc):
        if self._available:
            self.peak_mib = max(self._kib("VmHWM") - self._start, 0) / 1024
        return False


def _release_free_memory():
    """Hand memory that earlier runs freed back to the OS (glibc only), so it is not reused
    unseen by the next measurement."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------------------- tables
def command_line():
    """The command that is running, as written from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO_ROOT)
    except ValueError:
        pass
    return " ".join(["python", script.as_posix(), *sys.argv[1:]])


def write_csv(rows, path):
    """Write a list of dicts (one per row, same keys) as a CSV file, creating its folder."""
    if path is None or not rows:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


def markdown_table(header, rows):
    """A Markdown table (a string) of ``rows`` of cells under ``header``."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]
    return "\n".join(lines)


def rst_table(header, rows):
    """A simple reStructuredText table (a string) of ``rows`` of cells under ``header``."""
    cells = [list(map(str, header)), *(list(map(str, row)) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join([rule, body[0], rule, *body[1:], rule])


def parser(description):
    """An argument parser that shows every option's default, as the ``skuad`` command does."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
