"""The ``skuad`` command line: ``skuad demo`` and ``skuad bench``.

Only the standard library is imported here at start-up: torch, skorch and scikit-learn are
imported when a subcommand runs, so ``skuad --help`` and argument errors answer at once.
"""

import argparse
import sys
import time
from pathlib import Path

DESCRIPTION = """\
skuad demo
    Every skuad detector and IsolationForest on data that ships with scikit-learn (digits as
    8x8 images, breast cancer as a table), one-class protocol: prints AUROC, average precision
    and fit time, and saves a figure of ROC curves (needs matplotlib).
skuad bench
    Chosen detectors and baselines on ADBench .npz files, several seeds, one-class and/or
    unsupervised protocol: writes CSV and Markdown tables.

Run "skuad demo --help" or "skuad bench --help" for their options.
"""

# The demo shows every detector working within about a minute on a 2-core CPU, so it caps
# each training stage's epochs; the detectors' defaults train several times longer.
DEMO_EPOCHS = 10
# Like the estimators' own default: CUDA when available, else the CPU.
DEFAULT_DEVICE = "auto"
PROTOCOLS = ("one-class", "unsupervised")  # skuad.benchmark.PROTOCOLS, without importing it
BASELINE_NAMES = (
    "IsolationForest, OneClassSVM, LocalOutlierFactor, KNN (distance to the 5th nearest "
    "training row), and PyODAutoEncoder, PyODDeepSVDD when PyOD is installed"
)
CLAD_ON_TABLES = (
    "CLADDetector is meant for images whose normal class is made of hidden sub-classes; on "
    "tables like ADBench's it trails IsolationForest"
)


# ---------------------------------------------------------------------------- demo
def _demo_tasks():
    from skuad.datasets import load_breast_cancer_task, load_digits_task

    X, y = load_breast_cancer_task()
    yield "breast_cancer (table)", X, y, None
    X, y = load_digits_task(normal_digits=(0,))
    yield "digits: 0 normal (8x8 images)", X, y, (1, 8, 8)


def _demo_fit(name, params, seed, device, epochs, X_train, X_test, y_test):
    from skuad import benchmark

    detector = benchmark.make_detector(name, params, seed=seed, device=device)
    if epochs is not None and name in benchmark.skuad_detectors():
        benchmark.cap_epochs(detector, epochs)
    return benchmark.evaluate(
        detector, X_train, X_test, y_test, name=name, seed=seed, return_scores=True
    )


def demo(seed=0, epochs=None, figure="skuad-demo.png", device=DEFAULT_DEVICE, out=None):
    """Fit every skuad detector and IsolationForest one-class on bundled data; print a table.

    Returns the list of :class:`skuad.benchmark.Result` rows.
    """
    from sklearn.metrics import roc_curve

    from skuad import benchmark
    from skuad.datasets import one_class_split

    out = sys.stdout if out is None else out
    names = list(benchmark.skuad_detectors()) + ["IsolationForest"]
    print(
        "One-class protocol: each detector is trained on the normal rows of a stratified 70 % "
        "split and scores the other 30 % (normal rows and anomalies).",
        file=out,
    )
    if epochs is not None:
        print(
            f"Training capped at {epochs} epochs per stage for a quick look "
            "(skuad demo --epochs 0 trains with each detector's defaults).",
            file=out,
        )
    # CPU seconds: on a machine shared with other work, wall time says more about the load.
    header = f"{'task':30s} {'detector':32s} {'AUROC':>6s} {'AP':>6s} {'fit CPU s':>9s}"
    print(header, file=out)
    print("-" * len(header), file=out, flush=True)
    results, curves = [], []
    wall, cpu = time.perf_counter(), time.process_time()
    for task, X, y, image_shape in _demo_tasks():
        X_train, X_test, y_test = one_class_split(X, y, random_state=seed)
        detectors = benchmark.skuad_detectors()
        for name in names:
            params, label = {}, name
            if name in detectors and image_shape is not None:
                if detectors[name].takes_images:
                    params["image_shape"] = image_shape
                else:  # a detector for feature vectors (ResAD): the pixels as a plain table
                    label = f"{name} (pixels as rows)"
            result, scores = _demo_fit(name, params, seed, device, epochs, X_train, X_test, y_test)
            result.dataset = task
            results.append(result)
            if result.error:
                print(f"{task:30s} {label:32s} failed: {result.error}", file=out, flush=True)
                continue
            curves.append((task, label, result.auroc, roc_curve(y_test, -scores)))
            print(
                f"{task:30s} {label:32s} {result.auroc:6.3f} {result.average_precision:6.3f} "
                f"{result.fit_cpu_seconds:9.1f}",
                file=out,
                flush=True,
            )
    print(
        f"All fits and scores: {time.process_time() - cpu:.1f} s of CPU, "
        f"{time.perf_counter() - wall:.1f} s wall.",
        file=out,
    )
    if figure:
        path = _save_roc_figure(curves, figure)
        if path is None:
            print(
                "Figure not saved: matplotlib is not installed (pip install matplotlib, or "
                'install skuad with its "plot" extra).',
                file=out,
            )
        else:
            print(f"ROC curves saved to {path}", file=out)
    return results


def _save_roc_figure(curves, path):
    """One panel of ROC curves per task; returns the path, or None without matplotlib."""
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
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- bench
def bench(args, out=None):
    """``skuad bench``: validate everything first, then run and write the tables."""
    out = sys.stdout if out is None else out
    if not args.datasets and not args.all:
        raise ValueError(
            "name the datasets to run (--datasets 6_cardio 38_thyroid ...), or pass --all to "
            "run every .npz file of the data directory."
        )
    import torch
    from threadpoolctl import threadpool_limits

    from skuad import benchmark
    from skuad.datasets import load_adbench

    data_dir = benchmark.adbench_dir(args.data_dir)
    if data_dir is None and not args.datasets:
        raise ValueError(
            f"no data directory: pass --data-dir or set ${benchmark.DATA_DIR_ENV} "
            "(a folder of ADBench .npz files)."
        )
    known = benchmark.available_detectors()
    detectors = args.detectors or known
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
    paths = benchmark.find_datasets(data_dir, None if args.all else args.datasets)
    datasets = {path.stem: load_adbench(path) for path in paths}
    n_fits = len(datasets) * len(args.protocol) * len(args.seeds) * len(detectors)
    if "CLADDetector" in detectors:
        print(
            f"Note: {CLAD_ON_TABLES}.",
            file=out,
        )
    print(
        f"Running {n_fits} fits: {len(datasets)} datasets x {len(args.protocol)} protocol(s) x "
        f"{len(args.seeds)} seed(s) x {len(detectors)} detectors.",
        file=out,
        flush=True,
    )

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
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; options without a plain default say theirs in their help."""

    def _get_help_string(self, action):
        no_default = (
            action.default is None or isinstance(action.default, bool) or action.default == []
        )
        if no_default or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _version():
    from skuad import __version__

    return __version__


def _parser():
    parser = argparse.ArgumentParser(
        prog="skuad",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skuad {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,bench}")

    demo_parser = commands.add_parser(
        "demo",
        help="run every skuad detector and IsolationForest on bundled data",
        description="Every skuad detector and IsolationForest, one-class, on scikit-learn's "
        "breast cancer table and digits images: prints AUROC, average precision and fit time, "
        "and saves a figure of ROC curves.",
        formatter_class=HelpFormatter,
    )
    demo_parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    demo_parser.add_argument(
        "--epochs",
        type=int,
        default=DEMO_EPOCHS,
        help="cap every epochs parameter of the skuad detectors, to finish in about a minute "
        "(0 trains with each detector's own defaults)",
    )
    demo_parser.add_argument(
        "--figure", default="skuad-demo.png", help="where to save the ROC figure ('' for none)"
    )
    demo_parser.add_argument(
        "--device", default=DEFAULT_DEVICE, help="'auto' (CUDA when available), 'cpu' or 'cuda'"
    )

    bench_parser = commands.add_parser(
        "bench",
        help="compare detectors and baselines on ADBench .npz files",
        description="Compare detectors and baselines on ADBench .npz files (arrays X and y, "
        "y = 1 for anomalies): stratified 70/30 split per seed, MinMax scaling fitted on the "
        "training rows. Name the datasets with --datasets, or run every file of the data "
        "directory with --all; the command says how many fits it will run before starting.",
        formatter_class=HelpFormatter,
    )
    bench_parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder of ADBench .npz files, or an ADBench folder holding classical/ (default: "
        "$SKUAD_DATA_DIR, else ../shared/data/adbench beside a source checkout when it exists)",
    )
    selection = bench_parser.add_mutually_exclusive_group()
    selection.add_argument(
        "--datasets",
        nargs="+",
        help="file stems (6_cardio) or paths of .npz files to run (default: none; --datasets or "
        "--all is required)",
    )
    selection.add_argument(
        "--all",
        action="store_true",
        help="run every .npz file of the data directory (default: off; --datasets or --all is "
        "required)",
    )
    bench_parser.add_argument(
        "--detectors",
        nargs="+",
        help=f"detectors to run: skuad's, {BASELINE_NAMES} (default: all of them). "
        f"{CLAD_ON_TABLES}",
    )
    bench_parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="DETECTOR.PARAM=VALUE",
        help="constructor parameter, repeatable, e.g. --param DeepSVDD.epochs=20 (default: each "
        "detector's own defaults)",
    )
    bench_parser.add_argument(
        "--protocol",
        nargs="+",
        choices=PROTOCOLS,
        default=["one-class"],
        help="'one-class' (fit on the normal training rows), 'unsupervised' (fit on the "
        "contaminated training split), or both",
    )
    bench_parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="one split and fit per seed"
    )
    bench_parser.add_argument(
        "--device", default=DEFAULT_DEVICE, help="'auto' (CUDA when available), 'cpu' or 'cuda'"
    )
    bench_parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    bench_parser.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="stratified subsample of each dataset to at most this many rows (default: all)",
    )
    bench_parser.add_argument(
        "--output-dir", default="skuad-bench-results", help="folder the tables are written to"
    )
    bench_parser.add_argument("--name", default="bench", help="file name stem of the tables")
    bench_parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (default: shown)"
    )
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
    except (ValueError, OSError) as exc:  # bad input, or a download that failed
        print(f"skuad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
