"""The ``skuad`` command line.

``skuad demo``
    Every skuad detector and IsolationForest on data that ships with scikit-learn (digits as
    8x8 images, breast cancer as a table), one-class protocol: prints AUROC, average precision
    and fit time, and saves a figure of ROC curves (needs matplotlib).
``skuad bench``
    Chosen detectors and baselines on ADBench ``.npz`` files, several seeds, one-class and/or
    unsupervised protocol: writes a CSV and a Markdown table.
"""

import argparse
import sys
from pathlib import Path

from sklearn.metrics import roc_curve

from skuad import benchmark
from skuad.datasets import (
    load_adbench,
    load_breast_cancer_task,
    load_digits_task,
    one_class_split,
)

# ---------------------------------------------------------------------------- demo
# The demo shows every detector working within about a minute on a 2-core CPU, so it caps
# each training stage's epochs; the detectors' defaults train several times longer.
DEMO_EPOCHS = 10


def _demo_tasks():
    X, y = load_breast_cancer_task()
    yield "breast_cancer (table)", X, y, None
    X, y = load_digits_task(normal_digits=(0,))
    yield "digits: 0 normal (8x8 images)", X, y, (1, 8, 8)


def _demo_fit(name, params, seed, device, epochs, X_train, X_test, y_test):
    detector = benchmark.make_detector(name, params, seed=seed, device=device)
    if epochs is not None and name in benchmark.skuad_detectors():
        benchmark.cap_epochs(detector, epochs)
    return benchmark.evaluate(
        detector, X_train, X_test, y_test, name=name, seed=seed, return_scores=True
    )


def demo(seed=0, epochs=None, figure="skuad-demo.png", device="auto", out=None):
    """Fit every skuad detector and IsolationForest one-class on bundled data; print a table.

    Returns the list of :class:`skuad.benchmark.Result` rows.
    """
    out = sys.stdout if out is None else out
    names = list(benchmark.skuad_detectors()) + ["IsolationForest"]
    print(
        "One-class protocol: each detector is trained on 70 % of the normal rows and scores the "
        "other normal rows and every anomaly.",
        file=out,
    )
    if epochs is not None:
        print(
            f"Training capped at {epochs} epochs per stage for a quick look "
            "(skuad demo --epochs 0 trains with each detector's defaults).",
            file=out,
        )
    header = f"{'task':30s} {'detector':26s} {'AUROC':>6s} {'AP':>6s} {'fit s':>6s}"
    print(header, file=out)
    print("-" * len(header), file=out, flush=True)
    results, curves = [], []
    for task, X, y, image_shape in _demo_tasks():
        X_train, X_test, y_test = one_class_split(X, y, random_state=seed)
        for name in names:
            params = {}
            if name in benchmark.skuad_detectors() and image_shape is not None:
                params["image_shape"] = image_shape
            result, scores = _demo_fit(name, params, seed, device, epochs, X_train, X_test, y_test)
            if result.error and "image_shape" in params and "image_shape" in result.error:
                # A detector for feature vectors only (e.g. ResAD, which wants embeddings):
                # show it on the flattened pixels as a plain table instead.
                label = f"{name} (pixels as rows)"
                result, scores = _demo_fit(name, {}, seed, device, epochs, X_train, X_test, y_test)
            else:
                label = name
            result.dataset = task
            results.append(result)
            if result.error:
                print(f"{task:30s} {label:26s} failed: {result.error}", file=out, flush=True)
                continue
            curves.append((task, label, result.auroc, roc_curve(y_test, -scores)))
            print(
                f"{task:30s} {label:26s} {result.auroc:6.3f} {result.average_precision:6.3f} "
                f"{result.fit_seconds:6.1f}",
                file=out,
                flush=True,
            )
    if figure:
        path = _save_roc_figure(curves, figure)
        if path is None:
            print(
                "Figure not saved: matplotlib is not installed "
                '(pip install "skuad[plot]" or pip install matplotlib).',
                file=out,
            )
        else:
            print(f"ROC curves saved to {path}", file=out)
    return results


def _save_roc_figure(curves, path):
    """One panel of ROC curves per task; returns the absolute path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tasks = list(dict.fromkeys(task for task, *_ in curves))
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(5 * max(len(tasks), 1), 4.5))
    axes = [axes] if len(tasks) <= 1 else list(axes)
    for ax, task in zip(axes, tasks, strict=False):
        for curve_task, name, auroc, (fpr, tpr, _) in curves:
            if curve_task == task:
                ax.plot(fpr, tpr, label=f"{name} ({auroc:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(title=task, xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(loc="lower right", fontsize="small", title="AUROC")
    fig.suptitle("skuad demo: ROC curves on the test split (anomaly = positive)")
    fig.tight_layout()
    path = Path(path).resolve()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- bench
def _default_data_dir():
    """``../shared/data/adbench/classical`` next to the working directory or the source tree."""
    candidates = [
        Path.cwd() / benchmark.DEFAULT_DATA_DIR,
        Path(__file__).resolve().parents[1] / benchmark.DEFAULT_DATA_DIR,
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def bench(args, out=None):
    """``skuad bench``: validate everything first, then run and write the tables."""
    out = sys.stdout if out is None else out
    import torch
    from threadpoolctl import threadpool_limits

    data_dir = args.data_dir if args.data_dir is not None else _default_data_dir()
    if data_dir is None and not args.datasets:
        raise ValueError(
            f"no --data-dir given and the default {benchmark.DEFAULT_DATA_DIR} does not exist."
        )
    detectors = args.detectors or benchmark.available_detectors()
    known = benchmark.available_detectors()
    unknown = [name for name in detectors if name not in known]
    if unknown:
        raise ValueError(
            f"unknown detector(s) {', '.join(unknown)}; choose from {', '.join(known)}."
        )
    params = {}
    for text in args.param:
        detector, param, value = benchmark.parse_param(text)
        if detector not in detectors:
            raise ValueError(f"--param {text!r}: {detector} is not among the chosen detectors.")
        params.setdefault(detector, {})[param] = value
    for name in detectors:  # a misspelt parameter fails now, not after an hour of running
        try:
            benchmark.make_detector(name, params.get(name), seed=0, device=args.device)
        except TypeError as exc:
            raise ValueError(f"--param for {name}: {exc}") from exc
    paths = benchmark.find_datasets(data_dir, args.datasets)
    datasets = {path.stem: load_adbench(path) for path in paths}

    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        results = benchmark.run_benchmark(
            datasets,
            detectors,
            params=params,
            protocols=tuple(args.protocol),
            seeds=tuple(args.seeds),
            device=args.device,
            max_rows=args.max_rows,
            progress=not args.no_progress,
        )
    command = " ".join(["skuad bench", *args.argv])
    paths = benchmark.write_tables(results, args.output_dir, args.name, command)
    print(benchmark.markdown_tables(results), file=out)
    print("Wrote " + ", ".join(str(path.resolve()) for path in paths), file=out)
    return results


# ---------------------------------------------------------------------------- parser
def _parser():
    parser = argparse.ArgumentParser(
        prog="skuad", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo_parser = commands.add_parser(
        "demo", help="run every skuad detector and IsolationForest on bundled data"
    )
    demo_parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    demo_parser.add_argument(
        "--epochs",
        type=int,
        default=DEMO_EPOCHS,
        help=f"cap every epochs parameter of the skuad detectors (default {DEMO_EPOCHS}, "
        "to finish in about a minute; 0 trains with each detector's own defaults)",
    )
    demo_parser.add_argument(
        "--figure",
        default="skuad-demo.png",
        help="where to save the ROC figure (default: ./skuad-demo.png; '' for none)",
    )
    demo_parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")

    bench_parser = commands.add_parser(
        "bench", help="compare detectors and baselines on ADBench .npz files"
    )
    bench_parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"folder of ADBench .npz files (default: {benchmark.DEFAULT_DATA_DIR} when present)",
    )
    bench_parser.add_argument(
        "--datasets", nargs="+", help="file stems or paths to run (default: every .npz in DIR)"
    )
    bench_parser.add_argument(
        "--detectors",
        nargs="+",
        help="detectors to run (default: all); skuad's, IsolationForest, OneClassSVM, "
        "LocalOutlierFactor, PyODAutoEncoder, PyODDeepSVDD",
    )
    bench_parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="DETECTOR.PARAM=VALUE",
        help="constructor parameter, repeatable (e.g. --param DeepSVDD.epochs=20)",
    )
    bench_parser.add_argument(
        "--protocol",
        nargs="+",
        choices=benchmark.PROTOCOLS,
        default=["one-class"],
        help="'one-class' (fit on normal training rows), 'unsupervised' (fit on the "
        "contaminated training split), or both",
    )
    bench_parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    bench_parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto'")
    bench_parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    bench_parser.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="stratified subsample of each dataset to at most this many rows",
    )
    bench_parser.add_argument("--output-dir", default="skuad-bench-results")
    bench_parser.add_argument("--name", default="bench", help="file name stem of the tables")
    bench_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv=None):
    """Entry point of the ``skuad`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            epochs = args.epochs if args.epochs > 0 else None
            demo(seed=args.seed, epochs=epochs, figure=args.figure, device=args.device)
        elif args.command == "bench":
            args.argv = argv[1:]
            bench(args)
    except ValueError as exc:
        print(f"skuad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
