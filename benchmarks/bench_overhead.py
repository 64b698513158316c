"""Training overhead and scaling of skuad's detectors (the tables of docs/performance.rst).

Two parts, each a sub-command:

``overhead``
    For every skuad detector, every training stage it runs (found by wrapping the spine's
    ``train_module``; it is what this part measures, so it is the one place a script wraps
    skuad's internals): the per-epoch time of skuad's skorch training against a hand-written
    torch loop that trains a copy of the *same initial network* with the same loss, optimizer,
    batch size and data, run right after it (so both see the same machine load). The skorch
    time per epoch is skorch's own ``history[:, 'dur']``; the plain loop is timed around its
    epoch. Medians over epochs and repeats. Then whole ``fit`` time per epoch against PyOD's
    DeepSVDD and AutoEncoder at equal epochs, batch size and layer widths.

``scaling``
    DeepSVDD (and, with ``--detectors``, others) on the ADBench ``11_donors`` and ``16_http``
    sets at 10k, 100k and all rows (a seeded random subset of the rows): fit time, scoring
    time and peak memory growth during fit and during scoring. Each configuration runs in a
    fresh Python process so that no memory pool from an earlier run is reused. Peak memory is
    the growth of the resident high-water mark (``PeakRSS`` of benchmarks/_common.py), above
    the level reached once the data are loaded. The sets are read from ``classical/`` of the data
    directory (``--data-dir``, else ``$SKUAD_DATA_DIR``, else ../shared/data/adbench).

``--output`` (and, for ``overhead``, ``--pyod-output``) write the fit figures as the CSV files
that docs/performance.rst renders; the full tables, scoring included, go to
benchmarks/results/overhead/. Examples::

    python benchmarks/bench_overhead.py overhead --threads 1 --rows 10000 --epochs 4 --repeats 5 \
        --output docs/benchmarks/performance/overhead.csv \
        --pyod-output docs/benchmarks/performance/pyod.csv
    python benchmarks/bench_overhead.py scaling --threads 1 --epochs 1 \
        --output docs/benchmarks/performance/rows_scaling.csv
"""

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common
import numpy as np
import torch
from sklearn.base import clone

import skuad.base
from skuad.benchmark import make_detector, pyod_available, skuad_detectors
from skuad.datasets import load_adbench

# skuad's optimizer names (the estimators' ``optimizer`` parameter) as torch classes.
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
RESULTS = Path("benchmarks") / "results" / "overhead"

# Small but typical settings for each detector in the overhead runs: the same widths as the
# PyOD comparison where a detector has them, and few epochs per stage.
OVERHEAD_PARAMS = {
    "DeepSVDD": {"hidden_layer_sizes": (64,), "representation_dim": 32},
    "LAMPAutoencoderDetector": {"hidden_layer_sizes": (64,), "latent_dim": 32},
}
# Detectors with more than one training stage take one epoch count per stage.
STAGE_EPOCHS = {"DeepSVDD": ["pretrain_epochs"], "CLADDetector": ["pretrain_epochs", "dec_epochs"]}


# ---------------------------------------------------------------------------- overhead
def plain_torch_epochs(module, criterion, X, y, options, n_epochs, seed, device):
    """Seconds per epoch of a hand-written loop: shuffle, slice a batch, step, log the loss."""
    module.to(device).train()
    parameters = list(module.parameters())
    if isinstance(criterion, torch.nn.Module):
        criterion.to(device).train()
        parameters += list(criterion.parameters())
    extra = {"momentum": options.momentum} if options.optimizer == "sgd" else {}
    optimizer = OPTIMIZERS[options.optimizer](
        parameters, lr=options.lr, weight_decay=options.weight_decay, **extra
    )
    X = torch.as_tensor(X, device=device)
    y = None if y is None else torch.as_tensor(y, device=device)
    n_rows = len(X)
    batch_size = min(options.batch_size, n_rows)
    # As skuad does: no trailing batch of one row (BatchNorm cannot train on it).
    stop = n_rows - 1 if n_rows > batch_size and n_rows % batch_size == 1 else n_rows
    generator = torch.Generator().manual_seed(seed)
    seconds = []
    for _ in range(n_epochs):
        start = time.perf_counter()
        order = torch.randperm(n_rows, generator=generator).to(device)
        total = 0.0
        for first in range(0, stop, batch_size):
            rows = order[first : first + batch_size]
            x = X[rows]
            optimizer.zero_grad()
            loss = criterion(module(x), x if y is None else y[rows])
            loss.backward()
            optimizer.step()
            total += loss.item()
        seconds.append(time.perf_counter() - start)
    return seconds


class StageRecorder:
    """Wraps the spine's ``train_module``: times each stage and replays it as a plain loop."""

    def __init__(self):
        self.stages = []
        self.original = skuad.base.train_module

    def __call__(self, module, criterion, X, options, *, seed, device, y=None, **kwargs):
        initial_module = copy.deepcopy(module)
        initial_criterion = copy.deepcopy(criterion)
        net = self.original(module, criterion, X, options, seed=seed, device=device, y=y, **kwargs)
        skorch_seconds = list(net.history[:, "dur"])
        plain_seconds = plain_torch_epochs(
            initial_module, initial_criterion, X, y, options, len(skorch_seconds), seed, device
        )
        self.stages.append(
            {
                "module": type(module).__name__,
                "rows": len(X),
                "batch_size": min(options.batch_size, len(X)),
                "epochs": len(skorch_seconds),
                "skorch": skorch_seconds,
                "plain": plain_seconds,
            }
        )
        return net

    def __enter__(self):
        skuad.base.train_module = self
        return self

    def __exit__(self, *exc):
        skuad.base.train_module = self.original
        return False


def _median_epoch(seconds):
    # The first epoch pays one-off costs (allocator warm-up) in both loops; leave it out.
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def overhead(args):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(args.rows, args.features))
    rows = []
    for name in args.detectors or list(skuad_detectors()):
        params = {"epochs": args.epochs, **OVERHEAD_PARAMS.get(name, {})}
        params.update(dict.fromkeys(STAGE_EPOCHS.get(name, []), args.epochs))
        per_stage = {}
        for repeat in range(args.repeats):
            with StageRecorder() as recorder:
                make_detector(name, params, seed=repeat, device=args.device).fit(X)
            for index, stage in enumerate(recorder.stages):
                entry = per_stage.setdefault(index, {**stage, "skorch": [], "plain": []})
                entry["skorch"].append(_median_epoch(stage["skorch"]))
                entry["plain"].append(_median_epoch(stage["plain"]))
        for index, stage in per_stage.items():
            skorch_s = statistics.median(stage["skorch"])
            plain_s = statistics.median(stage["plain"])
            rows.append(
                {
                    "detector": name,
                    "stage": f"{index + 1}: {stage['module']}",
                    "epochs": stage["epochs"],
                    "skuad_ms_per_epoch": round(1e3 * skorch_s, 1),
                    "plain_ms_per_epoch": round(1e3 * plain_s, 1),
                    "ratio": round(skorch_s / plain_s, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    pyod_rows = pyod_comparison(args, X) if pyod_available() and not args.no_pyod else []
    return rows, pyod_rows


def pyod_comparison(args, X):
    """Whole-fit seconds per epoch, skuad vs PyOD, equal epochs, batch size and widths."""
    pairs = [
        (
            "DeepSVDD",
            {"pretrain": False, "hidden_layer_sizes": (64,), "representation_dim": 32},
            "PyODDeepSVDD",
            {"hidden_neurons": [64, 32], "epochs": args.epochs, "batch_size": 128},
        ),
        (
            "LAMPAutoencoderDetector",
            {"amplification": 0.0, "hidden_layer_sizes": (64,), "latent_dim": 32},
            "PyODAutoEncoder",
            {"hidden_neuron_list": [64, 32], "epoch_num": args.epochs, "batch_size": 128},
        ),
    ]
    rows = []
    for skuad_name, skuad_params, pyod_name, pyod_params in pairs:
        if skuad_name not in skuad_detectors():
            continue
        times = {skuad_name: [], pyod_name: []}
        scoring = {skuad_name: [], pyod_name: []}
        for repeat in range(args.repeats):
            # Alternate the two so both see the same machine load.
            for name, params in (
                (skuad_name, {"epochs": args.epochs, "batch_size": 128, **skuad_params}),
                (pyod_name, pyod_params),
            ):
                detector = make_detector(name, params, seed=repeat, device=args.device)
                start = time.perf_counter()
                detector.fit(X)
                times[name].append((time.perf_counter() - start) / args.epochs)
                start = time.perf_counter()
                detector.score_samples(X)
                scoring[name].append(len(X) / (time.perf_counter() - start))
        skuad_s, pyod_s = (statistics.median(times[n]) for n in (skuad_name, pyod_name))
        rows.append(
            {
                "skuad": skuad_name,
                "pyod": pyod_name,
                "epochs": args.epochs,
                "skuad_fit_ms_per_epoch": round(1e3 * skuad_s),
                "pyod_fit_ms_per_epoch": round(1e3 * pyod_s),
                "ratio": round(skuad_s / pyod_s, 2),
                "skuad_score_rows_per_s": round(statistics.median(scoring[skuad_name])),
                "pyod_score_rows_per_s": round(statistics.median(scoring[pyod_name])),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


# ---------------------------------------------------------------------------- scaling
def scaling_one(args):
    """One (detector, dataset, rows) configuration, in this fresh process; prints JSON."""
    torch.set_num_threads(args.threads)
    X, _ = load_adbench(classical_path(args.data_dir, args.dataset))
    X = np.ascontiguousarray(X)
    if args.n_rows < len(X):
        X = X[np.sort(np.random.RandomState(0).choice(len(X), args.n_rows, replace=False))]
    params = {"epochs": args.epochs}
    params.update(dict.fromkeys(STAGE_EPOCHS.get(args.detector, []), args.epochs))
    detector = make_detector(args.detector, params, seed=0, device=args.device)
    # An untimed fit on a few rows first: imports, allocator and kernel warm-up are one-off
    # costs of the process, not of the number of rows.
    clone(detector).set_params(epochs=1).fit(X[:512])
    with _common.PeakRSS() as fit_memory:
        start = time.perf_counter()
        detector.fit(X)
        fit_s = time.perf_counter() - start
    with _common.PeakRSS() as score_memory:
        start = time.perf_counter()
        scores = detector.score_samples(X)
        score_s = time.perf_counter() - start
    assert np.all(np.isfinite(scores))
    print(
        json.dumps(
            {
                "detector": args.detector,
                "device": args.device,
                "dataset": args.dataset,
                "rows": len(X),
                "features": X.shape[1],
                "epochs": args.epochs,
                "data_mib": round(X.nbytes / 2**20, 1),
                "fit_s": round(fit_s, 1),
                "fit_us_per_row": round(1e6 * fit_s / len(X), 1),
                # NaN (no /proc) cannot be rounded to an int.
                "fit_peak_mib": round(fit_memory.peak_mib)
                if fit_memory.peak_mib >= 0
                else math.nan,
                "score_s": round(score_s, 2),
                "score_us_per_row": round(1e6 * score_s / len(X), 2),
                "score_peak_mib": round(score_memory.peak_mib, 1),
            }
        ),
        flush=True,
    )


def classical_path(data_dir, name):
    return _common.data_dir(data_dir) / "classical" / f"{name}.npz"


def scaling(args):
    rows = []
    for detector in args.detectors or ["DeepSVDD"]:
        for dataset in args.datasets:
            n_total = len(load_adbench(classical_path(args.data_dir, dataset))[1])
            sizes = sorted({min(n, n_total) for n in args.sizes} | {n_total})
            sizes = [n for n in sizes if n <= args.max_rows]
            for n_rows in sizes:
                command = [
                    sys.executable,
                    __file__,
                    "scaling-one",
                    "--detector",
                    detector,
                    "--dataset",
                    dataset,
                    "--n-rows",
                    str(n_rows),
                    "--epochs",
                    str(args.epochs),
                    "--threads",
                    str(args.threads),
                    "--data-dir",
                    str(_common.data_dir(args.data_dir)),
                    "--device",
                    args.device,
                ]
                output = subprocess.run(command, capture_output=True, text=True, check=True)
                rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    return rows


# ---------------------------------------------------------------------------- tables
# The columns of the CSV files that docs/performance.rst renders: the fit figures only.
# Scoring throughput and memory are measured by benchmarks/bench_speed.py
# (docs/benchmarks/scoring.csv). The printed tables show every column.
OVERHEAD_CSV = ("detector", "stage", "skuad_ms_per_epoch", "plain_ms_per_epoch", "ratio")
PYOD_CSV = ("skuad", "pyod", "skuad_fit_ms_per_epoch", "pyod_fit_ms_per_epoch", "ratio")
SCALING_CSV = tuple(
    "detector device dataset rows data_mib fit_s fit_us_per_row fit_peak_mib".split()
)


def rst_table(rows):
    """A reStructuredText table of ``rows`` (dicts with the same keys), one column per key."""
    return _common.rst_table(list(rows[0]), [list(row.values()) for row in rows])


def write(name, text):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(text + "\n")
    print(text)


def write_csv(path, rows, columns):
    """The ``columns`` of ``rows`` (dicts) as a CSV file, for a csv-table."""
    if rows:
        _common.write_csv([{key: row[key] for key in columns} for row in rows], path)


def main(argv=None):
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("part", choices=["overhead", "scaling", "scaling-one"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto'")
    parser.add_argument(
        "--detectors", nargs="*", help="skuad detector class names (default: every one)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs per stage (default: 5 overhead, 2 scaling)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="fits per detector (overhead)")
    parser.add_argument("--rows", type=int, default=20_000, help="overhead: synthetic rows")
    parser.add_argument("--features", type=int, default=10, help="overhead: synthetic columns")
    parser.add_argument("--no-pyod", action="store_true", help="leave out the PyOD comparison")
    _common.add_data_dir_argument(parser)
    parser.add_argument(
        "--datasets", nargs="*", default=["11_donors", "16_http"], help="scaling: ADBench sets"
    )
    parser.add_argument(
        "--sizes", nargs="*", type=int, default=[10_000, 100_000], help="scaling: row counts"
    )
    parser.add_argument("--max-rows", type=int, default=math.inf, help="scaling: row cap")
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--detector", help=argparse.SUPPRESS)
    parser.add_argument("--n-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help="CSV file for the overhead or scaling table")
    parser.add_argument("--pyod-output", help="overhead: CSV file for the PyOD comparison")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part == "scaling-one":
        return scaling_one(args)
    command = _common.command_line()
    if args.part == "overhead":
        args.epochs = args.epochs or 5
        rows, pyod_rows = overhead(args)
        text = f"Command: ``{command}``\n\n" + rst_table(rows)
        if pyod_rows:
            text += "\n\n" + rst_table(pyod_rows)
        write("overhead.rst", text)
        (RESULTS / "overhead.json").write_text(json.dumps(rows + pyod_rows, indent=1))
        write_csv(args.output, rows, OVERHEAD_CSV)
        write_csv(args.pyod_output, pyod_rows, PYOD_CSV)
    else:
        args.epochs = args.epochs or 2
        rows = scaling(args)
        write("scaling.rst", f"Command: ``{command}``\n\n" + rst_table(rows))
        (RESULTS / "scaling.json").write_text(json.dumps(rows, indent=1))
        write_csv(args.output, rows, SCALING_CSV)


if __name__ == "__main__":
    main()
