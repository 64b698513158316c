"""What ``skuad bench`` runs: detectors, the ADBench protocol, evaluation and its tables.

The pieces, each usable on its own:

* :func:`skuad_detectors` / :func:`available_detectors` / :func:`make_detector` -- every skuad
  detector exported by :mod:`skuad` (found in ``skuad.__all__``, so new detectors join
  automatically) and the baselines: scikit-learn's IsolationForest, OneClassSVM and
  LocalOutlierFactor, the k-th nearest neighbour distance (:class:`KNNDistance`, "KNN"), and
  PyOD's AutoEncoder and DeepSVDD when PyOD is installed. All are built with the same
  ``(params, seed, device)`` and all score "higher = more normal".
* :func:`split` -- the ADBench protocols on :func:`skuad.datasets.one_class_split`'s stratified
  70/30 train/test split, with MinMax scaling fitted on the rows the detector is trained on:
  ``'one-class'`` fits on the normal rows of the training split, ``'unsupervised'`` on the
  whole (contaminated) training split.
* :func:`adbench_dir` / :func:`find_datasets` -- where the ADBench ``.npz`` files are.
* :func:`evaluate` -- fit and score one detector: AUROC and average precision (through
  :mod:`skuad.metrics`, anomaly = positive class), fit time and scoring throughput.
* :func:`run_benchmark`, :func:`summarize`, :func:`markdown_tables`, :func:`write_tables` -- the
  loop over datasets x protocols x detectors x seeds and the tables it produces.

Labels follow ADBench: ``y = 1`` is an anomaly.
"""

import ast
import csv
import inspect
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import OneClassSVM
from sklearn.utils.validation import check_is_fitted, validate_data

import skuad
from skuad._doc_link import DocLinkMixin
from skuad._training import resolve_device
from skuad.base import BaseDeepDetector
from skuad.datasets import one_class_split, resolve_adbench
from skuad.metrics import outlier_average_precision_score, outlier_roc_auc_score

__all__ = [
    "DATA_DIR_ENV",
    "KNNDistance",
    "PROTOCOLS",
    "PyODAdapter",
    "Result",
    "adbench_dir",
    "auroc_table",
    "available_detectors",
    "cap_epochs",
    "evaluate",
    "find_datasets",
    "make_detector",
    "markdown_tables",
    "metrics_table",
    "parse_param",
    "run_benchmark",
    "skuad_detectors",
    "split",
    "subsample",
    "summarize",
    "warm_up",
    "write_csv",
    "write_tables",
]

PROTOCOLS = ("one-class", "unsupervised")

# The data-directory rule, used by `skuad bench` and every script in benchmarks/: an explicit
# directory, else this environment variable, else ../shared/data/adbench beside the source
# checkout when it exists.
DATA_DIR_ENV = "SKUAD_DATA_DIR"
_CHECKOUT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "adbench"


def adbench_dir(data_dir=None):
    """The ADBench data directory: ``data_dir``, else ``$SKUAD_DATA_DIR``, else
    ``../shared/data/adbench`` beside the source checkout when it exists, else None.

    The directory holds ``classical/*.npz`` (or is itself a folder of ``.npz`` files) and, for
    the embedding benchmarks, ``cv_resnet18/``.
    """
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    return _CHECKOUT_DATA_DIR if _CHECKOUT_DATA_DIR.is_dir() else None


# ---------------------------------------------------------------------------- detectors
def skuad_detectors():
    """The skuad detector classes exported in ``skuad.__all__``, by class name."""
    found = {}
    for name in skuad.__all__:
        obj = getattr(skuad, name, None)
        if (
            inspect.isclass(obj)
            and issubclass(obj, BaseDeepDetector)
            and obj is not BaseDeepDetector
        ):
            found[name] = obj
    return found


class KNNDistance(DocLinkMixin, BaseEstimator):
    """Baseline: distance to the k-th nearest training row (PyOD's KNN, ``method='largest'``).

    ``score_samples`` is minus that distance (higher = more normal), Euclidean, as scikit-learn's
    detectors score.

    Parameters
    ----------
    n_neighbors : int, default=5
        Which neighbour's distance is the score (PyOD's default).

    Attributes
    ----------
    neighbors_ : sklearn.neighbors.NearestNeighbors
        The index of the training rows.
    n_features_in_ : int
        Number of features seen during ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from skuad.benchmark import KNNDistance
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    >>> KNNDistance(n_neighbors=2).fit(X).score_samples([[0.0], [10.0]])
    array([-1., -6.])
    """

    def __init__(self, n_neighbors=5):
        self.n_neighbors = n_neighbors

    def fit(self, X, y=None):
        X = validate_data(self, X)
        if not 1 <= self.n_neighbors <= len(X):
            raise ValueError(
                f"n_neighbors={self.n_neighbors} needs at least as many training rows; got "
                f"n_samples = {len(X)}."
            )
        self.neighbors_ = NearestNeighbors(n_neighbors=self.n_neighbors).fit(X)
        return self

    def score_samples(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        distances, _ = self.neighbors_.kneighbors(X)
        return -distances[:, -1]


def pyod_available():
    """True when PyOD (with its PyTorch models) can be imported."""
    try:
        import pyod.models.auto_encoder  # noqa: F401
        import pyod.models.deep_svdd  # noqa: F401
    except ImportError:
        return False
    return True


class PyODAdapter:
    """Give a PyOD detector scikit-learn's sign convention (``score_samples``, higher = normal).

    PyOD's ``decision_function`` is an anomaly score (higher = more abnormal), so
    ``score_samples`` is its negation. ``build(n_features)`` creates the PyOD model at fit time
    because PyOD's DeepSVDD needs the number of features in its constructor.
    """

    def __init__(self, build):
        self.build = build

    def fit(self, X, y=None):
        self.model_ = self.build(X.shape[1])
        self.model_.fit(X)
        return self

    def score_samples(self, X):
        return -np.asarray(self.model_.decision_function(X), dtype=np.float64)


def _pyod_autoencoder(params, seed, device):
    from pyod.models.auto_encoder import AutoEncoder

    options = {"verbose": 0, "random_state": seed, "device": str(resolve_device(device)), **params}
    return PyODAdapter(lambda n_features: AutoEncoder(**options))


def _pyod_deep_svdd(params, seed, device):
    from pyod.models.deep_svdd import DeepSVDD

    options = {"verbose": 0, "random_state": seed, **params}
    return PyODAdapter(lambda n_features: DeepSVDD(n_features=n_features, **options))


BASELINES = {
    "IsolationForest": lambda params, seed, device: IsolationForest(random_state=seed, **params),
    "OneClassSVM": lambda params, seed, device: OneClassSVM(**params),
    "LocalOutlierFactor": lambda params, seed, device: LocalOutlierFactor(
        **{"novelty": True, **params}
    ),
    "KNN": lambda params, seed, device: KNNDistance(**params),
}
PYOD_BASELINES = {
    "PyODAutoEncoder": _pyod_autoencoder,
    "PyODDeepSVDD": _pyod_deep_svdd,
}


def available_detectors():
    """Names of every detector :func:`make_detector` can build here (skuad ones first)."""
    names = list(skuad_detectors()) + list(BASELINES)
    if pyod_available():
        names += list(PYOD_BASELINES)
    return names


def make_detector(name, params=None, seed=0, device="cpu"):
    """Build the detector called ``name`` with extra constructor ``params``.

    skuad detectors get ``random_state=seed`` and ``device``; baselines get a seed where they
    take one, and PyOD's AutoEncoder the device.
    """
    params = dict(params or {})
    detectors = skuad_detectors()
    if name in detectors:
        return detectors[name](**{"random_state": seed, "device": device, **params})
    if name in BASELINES:
        return BASELINES[name](params, seed, device)
    if name in PYOD_BASELINES:
        if not pyod_available():
            raise ValueError(f"{name} needs PyOD: pip install pyod")
        return PYOD_BASELINES[name](params, seed, device)
    raise ValueError(f"Unknown detector {name!r}; choose from {', '.join(available_detectors())}.")


def parse_param(text):
    """Parse ``'Detector.param=value'`` into ``(detector, param, value)``.

    The value is read as a Python literal when it is one (``20``, ``1e-3``, ``(64, 32)``,
    ``True``, ``None``), otherwise kept as a string (``adam``).
    """
    target, sep, raw = text.partition("=")
    detector, dot, param = target.strip().partition(".")
    if not sep or not dot or not detector or not param:
        raise ValueError(
            f"--param {text!r}: expected DETECTOR.PARAM=VALUE, e.g. DeepSVDD.epochs=20"
        )
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return detector, param.strip(), value


def cap_epochs(detector, max_epochs):
    """Lower every integer ``epochs`` / ``*_epochs`` parameter of ``detector`` to ``max_epochs``."""
    capped = {
        key: min(value, max_epochs)
        for key, value in detector.get_params().items()
        if (key == "epochs" or key.endswith("_epochs")) and isinstance(value, int)
    }
    return detector.set_params(**capped)


# ---------------------------------------------------------------------------- protocols
def split(X, y, protocol="one-class", seed=0, test_size=0.3, scale=True):
    """ADBench split for one seed: returns ``X_fit, X_test, y_test``.

    The stratified ``1 - test_size`` / ``test_size`` split of
    :func:`skuad.datasets.one_class_split`. ``'one-class'`` fits on the normal rows of the
    training part, ``'unsupervised'`` on the whole (contaminated) training part. With
    ``scale=True`` a MinMaxScaler fitted on the rows the detector is trained on is applied to
    both parts (ADBench does so for tables; pass ``False`` for images).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if protocol == "one-class":
        X_fit, X_test, y_test = one_class_split(X, y, test_size=test_size, random_state=seed)
    else:
        X_fit, X_test, _, y_test = train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=seed
        )
    if not scale:
        return X_fit, X_test, y_test
    scaler = MinMaxScaler().fit(X_fit)
    return scaler.transform(X_fit), scaler.transform(X_test), y_test


def subsample(X, y, max_rows, seed=0):
    """At most ``max_rows`` rows, stratified by ``y`` (all rows when ``max_rows`` is None)."""
    if max_rows is None or len(y) <= max_rows:
        return X, y
    X_keep, _, y_keep, _ = train_test_split(
        X, y, train_size=max_rows, stratify=y, random_state=seed
    )
    return X_keep, y_keep


# ---------------------------------------------------------------------------- measuring
@dataclass
class Result:
    """One fitted and scored detector: a row of the benchmark CSV.

    ``fit_seconds`` is wall time, ``fit_cpu_seconds`` this process's CPU time (the fairer
    measure on a shared machine).
    """

    dataset: str
    protocol: str
    detector: str
    seed: int
    n_train: int
    n_test: int
    n_features: int
    auroc: float = math.nan
    average_precision: float = math.nan
    fit_seconds: float = math.nan
    fit_cpu_seconds: float = math.nan
    score_rows_per_second: float = math.nan
    error: str = ""


def evaluate(
    detector,
    X_fit,
    X_test,
    y_test,
    *,
    dataset="",
    protocol="",
    name=None,
    seed=0,
    return_scores=False,
):
    """Fit ``detector`` on ``X_fit``, score ``X_test`` and measure; returns a :class:`Result`.

    ``y_test`` holds 1 for anomalies and 0 for normal rows. A detector that raises is recorded
    with its error message instead of stopping the run. With ``return_scores=True`` returns
    ``(result, scores)``, the test scores (higher = more normal; None when the detector failed).
    """
    result = Result(
        dataset=dataset,
        protocol=protocol,
        detector=name or type(detector).__name__,
        seed=seed,
        n_train=len(X_fit),
        n_test=len(X_test),
        n_features=X_fit.shape[1],
    )
    scores = None
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        detector.fit(X_fit)
        result.fit_seconds = time.perf_counter() - wall
        result.fit_cpu_seconds = time.process_time() - cpu
        start = time.perf_counter()
        scores = np.asarray(detector.score_samples(X_test), dtype=np.float64)
        score_seconds = time.perf_counter() - start
        result.score_rows_per_second = len(X_test) / max(score_seconds, 1e-9)
        if not np.all(np.isfinite(scores)):
            raise ValueError("non-finite scores")
        result.auroc = outlier_roc_auc_score(y_test, scores, y_convention="anomaly")
        result.average_precision = outlier_average_precision_score(
            y_test, scores, y_convention="anomaly"
        )
    except Exception as exc:  # a failing detector is a result, not the end of the run
        result.error = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        scores = None
    return (result, scores) if return_scores else result


def warm_up(detectors, params=None, device="cpu"):
    """Fit each detector once on a tiny random table, untimed.

    The first fit in a process pays one-off costs (torch's lazy initialisation, imports, the
    allocator growing its pools) that would otherwise be charged to whichever detector runs
    first.
    """
    params = params or {}
    X = np.random.RandomState(0).uniform(size=(64, 4))
    for name in detectors:
        try:
            detector = make_detector(name, params.get(name), seed=0, device=device)
            if hasattr(detector, "get_params"):
                cap_epochs(detector, 1)
            detector.fit(X)
        except Exception:  # a detector that cannot fit this toy table fails later, recorded
            pass


# ---------------------------------------------------------------------------- datasets
def find_datasets(data_dir=None, names=None):
    """Paths of the ADBench ``.npz`` files to run: every one in ``data_dir``, or ``names``.

    ``data_dir`` is a folder of ``.npz`` files or an ADBench directory holding ``classical/``.
    ``names`` may be file stems (``6_cardio``), file names or paths; a name not found there is
    taken from skuad's download cache, and downloaded into it the first time
    (:func:`skuad.datasets.resolve_adbench`). Anything else raises ``ValueError`` naming it.
    """
    data_dir = Path(data_dir) if data_dir is not None else None
    if data_dir is not None and not data_dir.is_dir():
        raise ValueError(f"--data-dir {data_dir}: not a directory.")
    if data_dir is not None and (data_dir / "classical").is_dir():
        data_dir = data_dir / "classical"
    if names:
        return [resolve_adbench(name, data_dir) for name in names]
    if data_dir is None:
        raise ValueError("Give --data-dir or --datasets.")
    paths = sorted(data_dir.glob("*.npz"), key=_natural_key)
    if not paths:
        raise ValueError(f"{data_dir}: no ADBench .npz files (arrays X and y) found.")
    return paths


def _natural_key(path):
    """Sort ``2_annthyroid`` before ``10_cover``: ADBench files start with their number."""
    head, _, rest = path.stem.partition("_")
    return (int(head), rest) if head.isdigit() else (math.inf, path.stem)


# ---------------------------------------------------------------------------- the loop
def run_benchmark(
    datasets,
    detectors,
    *,
    params=None,
    protocols=("one-class",),
    seeds=(0, 1, 2),
    device="cpu",
    max_rows=None,
    progress=True,
):
    """Run every detector on every dataset, protocol and seed; returns a list of :class:`Result`.

    Parameters
    ----------
    datasets : dict of str -> (X, y)
        Datasets by name, ``y = 1`` for anomalies.
    detectors : list of str
        Detector names (see :func:`available_detectors`).
    params : dict of str -> dict, default=None
        Extra constructor parameters per detector name.
    protocols : tuple of {'one-class', 'unsupervised'}
    seeds : tuple of int
        Each seed draws its own train/test split and seeds the detectors.
    device : str, default='cpu'
        Device of the skuad (and PyOD AutoEncoder) detectors.
    max_rows : int or None
        Stratified subsample of each dataset to at most this many rows before splitting.
    progress : bool
        Show a tqdm progress bar on stderr.
    """
    from tqdm.auto import tqdm

    params = params or {}
    warm_up(detectors, params, device)
    results = []
    n_fits = len(datasets) * len(protocols) * len(seeds) * len(detectors)
    bar = tqdm(total=n_fits, disable=not progress, unit="fit")
    for dataset_name, (X, y) in datasets.items():
        for protocol in protocols:
            for seed in seeds:
                X_run, y_run = subsample(X, y, max_rows, seed)
                X_fit, X_test, y_test = split(X_run, y_run, protocol, seed)
                for detector_name in detectors:
                    bar.set_description(f"{dataset_name} {protocol} {detector_name} seed {seed}")
                    detector = make_detector(detector_name, params.get(detector_name), seed, device)
                    results.append(
                        evaluate(
                            detector,
                            X_fit,
                            X_test,
                            y_test,
                            dataset=dataset_name,
                            protocol=protocol,
                            name=detector_name,
                            seed=seed,
                        )
                    )
                    bar.update()
    bar.close()
    return results


# ---------------------------------------------------------------------------- tables
_METRICS = (
    "auroc",
    "average_precision",
    "fit_seconds",
    "fit_cpu_seconds",
    "score_rows_per_second",
)


def write_csv(results, path):
    """One row per fitted detector (every seed), columns as :class:`Result`."""
    names = [f.name for f in fields(Result)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for result in results:
            writer.writerow(asdict(result))


def summarize(results):
    """Aggregate over seeds: one dict per (dataset, protocol, detector), in run order.

    Each metric of :class:`Result` gets its mean over the seeds that did not fail and, as
    ``<metric>_std``, their population standard deviation.
    """
    groups = {}
    for r in results:
        groups.setdefault((r.dataset, r.protocol, r.detector), []).append(r)
    summary = []
    for (dataset, protocol, detector), runs in groups.items():
        ok = [r for r in runs if not r.error]
        row = {
            "dataset": dataset,
            "protocol": protocol,
            "detector": detector,
            "runs": len(runs),
            "failed": len(runs) - len(ok),
            "errors": sorted({r.error for r in runs if r.error}),
        }
        for metric in _METRICS:
            values = [getattr(r, metric) for r in ok if not math.isnan(getattr(r, metric))]
            row[metric] = statistics.fmean(values) if values else math.nan
            row[metric + "_std"] = statistics.pstdev(values) if len(values) > 1 else 0.0
        summary.append(row)
    return summary


def auroc_table(summary, protocol):
    """Mean AUROC in % (over seeds) per dataset (rows) and detector (columns) for one protocol,
    with a last row of means over datasets; returns ``(header, rows)`` of numbers.

    A failed cell is NaN; a detector's mean is NaN unless it has a value on every dataset (a
    mean over fewer datasets would not be comparable). ``write_tables`` rounds it to 0.1.
    """
    detectors = list(dict.fromkeys(row["detector"] for row in summary))
    rows = [row for row in summary if row["protocol"] == protocol]
    by_key = {(row["dataset"], row["detector"]): row for row in rows}
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    table = []
    for dataset in datasets:
        cells = [dataset]
        for detector in detectors:
            row = by_key.get((dataset, detector))
            cells.append(math.nan if row is None else 100 * row["auroc"])
        table.append(cells)
    means = ["mean"]
    for column in range(1, len(detectors) + 1):
        values = [cells[column] for cells in table]
        means.append(math.nan if any(map(math.isnan, values)) else statistics.fmean(values))
    table.append(means)
    return ["dataset", *detectors], table


METRICS_COLUMNS = {
    # column: (summary key, scale, decimals kept in the CSV)
    "auroc_pct": ("auroc", 100, 2),
    "auroc_pct_std": ("auroc_std", 100, 2),
    "average_precision_pct": ("average_precision", 100, 2),
    "average_precision_pct_std": ("average_precision_std", 100, 2),
    "fit_seconds": ("fit_seconds", 1, 4),
    "fit_cpu_seconds": ("fit_cpu_seconds", 1, 4),
    "score_rows_per_second": ("score_rows_per_second", 1, 0),
}


def metrics_table(summary):
    """Every metric per (dataset, protocol, detector), means and standard deviations over
    seeds, AUROC and average precision in % (2 decimals), seconds (4 decimals), rows per second
    (whole); returns ``(header, rows)`` of numbers (NaN as an empty string)."""
    header = ["dataset", "protocol", "detector", "runs", "failed", *METRICS_COLUMNS]
    table = [
        [
            row["dataset"],
            row["protocol"],
            row["detector"],
            row["runs"],
            row["failed"],
            *(
                _rounded(scale * row[key], digits)
                for key, scale, digits in METRICS_COLUMNS.values()
            ),
        ]
        for row in summary
    ]
    return header, table


METRICS_NOTE = (
    "Mean over seeds: AUROC and average precision (AP) in %, fit time in seconds (wall and "
    "CPU), scoring throughput in test rows per second."
)


def _pct(mean, std):
    return "failed" if math.isnan(mean) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _num(value, digits=1):
    if math.isnan(value):
        return "–"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.{digits}f}"


def _markdown(header, table, bold_last=False):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, cells in enumerate(table):
        if bold_last and i == len(table) - 1:
            cells = [f"**{cell}**" if cell else "" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _auroc_markdown(summary, protocol):
    """The AUROC table with each cell as 'mean ± std' over seeds, means row last."""
    header, table = auroc_table(summary, protocol)
    by_key = {(r["dataset"], r["detector"]): r for r in summary if r["protocol"] == protocol}
    cells = []
    for row in table[:-1]:
        cells.append(
            [row[0]]
            + [
                ""
                if (row[0], d) not in by_key
                else _pct(by_key[row[0], d]["auroc"], by_key[row[0], d]["auroc_std"])
                for d in header[1:]
            ]
        )
    cells.append(["mean"] + ["" if math.isnan(v) else f"{v:.1f}" for v in table[-1][1:]])
    return header, cells


def markdown_tables(results):
    """Markdown: an AUROC table (datasets x detectors) per protocol, then every metric."""
    summary = summarize(results)
    lines = []
    for protocol in dict.fromkeys(row["protocol"] for row in summary):
        lines += [f"AUROC % ({protocol} protocol), mean ± std over seeds:", ""]
        lines += _markdown(*_auroc_markdown(summary, protocol), bold_last=True)
        lines.append("")
    lines += [METRICS_NOTE, ""]
    header = ["dataset", "protocol", "detector", "AUROC %", "AP %", "fit s", "fit CPU s"]
    header.append("score rows/s")
    lines += _markdown(
        header,
        [
            [
                row["dataset"],
                row["protocol"],
                row["detector"],
                _pct(row["auroc"], row["auroc_std"]),
                _pct(row["average_precision"], row["average_precision_std"]),
                _num(row["fit_seconds"], 2),
                _num(row["fit_cpu_seconds"], 2),
                _num(row["score_rows_per_second"]),
            ]
            for row in summary
        ],
    )
    failures = [row for row in summary if row["failed"]]
    if failures:
        lines += ["", "Failed runs:", ""]
        lines += [
            f"- {row['dataset']} / {row['protocol']} / {row['detector']}: {row['failed']} of "
            f"{row['runs']} ({'; '.join(row['errors'])})"
            for row in failures
        ]
    return "\n".join(lines) + "\n"


def _rounded(value, digits):
    """A number for a CSV cell: ``digits`` decimals (an int for 0), NaN as an empty cell."""
    if math.isnan(value):
        return ""
    return round(value) if digits == 0 else round(value, digits)


def write_tables(results, output_dir, name="bench", command=""):
    """Write every table of a run; returns the paths written.

    ``{name}.csv`` (one row per fit), ``{name}.md`` (the Markdown tables, headed by
    ``command``), and for documentation pages ``{name}_auroc_{protocol}.csv`` (mean AUROC %,
    datasets x detectors) and ``{name}_metrics.csv`` (every metric per dataset and detector),
    both holding numbers only.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    paths = [output_dir / f"{name}.csv", output_dir / f"{name}.md"]
    write_csv(results, paths[0])
    heading = f"Command: `{command}`\n\n" if command else ""
    paths[1].write_text(heading + markdown_tables(results))
    tables = {}
    for protocol in dict.fromkeys(row["protocol"] for row in summary):
        header, table = auroc_table(summary, protocol)
        rounded = [[row[0], *(_rounded(value, 1) for value in row[1:])] for row in table]
        tables[f"{name}_auroc_{protocol}.csv"] = header, rounded
    tables[f"{name}_metrics.csv"] = metrics_table(summary)
    for filename, (header, table) in tables.items():
        path = output_dir / filename
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(table)
        paths.append(path)
    return paths
