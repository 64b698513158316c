"""One-class ResADDetector against the k-nearest-neighbour distance on the ADBench tables.

Protocol: ``skuad bench``'s one-class protocol through ``benchmarks/_common.py``
(``subsample`` to at most ``--max-rows`` rows, stratified; ``split``: a stratified 70/30 split,
the detector fitted on the normal rows of the 70 %, MinMax scaling fitted on them), the same
rows for every method. Methods:

* ``KNN``: minus the distance to the ``--k``-th nearest training row (``skuad bench``'s KNN
  baseline, :class:`skuad.benchmark.KNNDistance`); ``1-NN``: minus the distance
  to the nearest training row (ranks rows as ResAD with an untrained flow would);
* ``ResAD`` variants, each a ``ResADDetector`` with its defaults plus the settings named in
  ``VARIANTS`` (``ResAD``: the defaults, i.e. a one-class fit scores against all normal
  training rows; ``ResAD few-shot``: ``reference_pool='few-shot'``, the previous default;
  ``ResAD 1000 refs``: a greedy k-centre coreset of at most 1000 training rows; not run by
  default: ``ResAD 5 epochs`` and ``ResAD 10 epochs``, shorter training).

Prints mean AUROC per method, per-dataset means, the datasets where each ResAD variant is
ahead of each baseline, and a paired Wilcoxon signed-rank test on the per-dataset means
(ResAD variant minus baseline). CPU seconds are ``time.process_time`` of fit + scoring (one
thread). Run from the repository root:

    OMP_NUM_THREADS=1 nice python benchmarks/bench_resad_pool.py --threads 1 \\
        --out docs/benchmarks/resad/pool_classical_runs.csv \\
        --summary docs/benchmarks/resad/pool_classical.csv
    OMP_NUM_THREADS=1 nice python benchmarks/bench_resad_pool.py --threads 1 \\
        --variants ResAD "ResAD 5 epochs" "ResAD 10 epochs" \\
        --out docs/benchmarks/resad/pool_epochs_runs.csv \\
        --summary docs/benchmarks/resad/pool_epochs.csv
"""

import time
from pathlib import Path

import _common
import numpy as np
import pandas as pd
import torch
from scipy.stats import wilcoxon

from skuad import ResADDetector
from skuad.benchmark import KNNDistance

VARIANTS = {
    "ResAD": {},
    "ResAD few-shot": {"reference_pool": "few-shot"},
    "ResAD 1000 refs": {"max_references": 1000},
    "ResAD 5 epochs": {"epochs": 5},
    "ResAD 10 epochs": {"epochs": 10},
}
DEFAULT_VARIANTS = ["ResAD", "ResAD few-shot", "ResAD 1000 refs"]


def parse_args():
    parser = _common.parser(__doc__.split("\n")[0])
    _common.add_data_dir_argument(parser)
    parser.add_argument("--datasets", nargs="+", default=None, help="file stems; default all")
    parser.add_argument("--max-rows", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--k", type=int, default=5, help="KNN's neighbour")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, help=", ".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="CSV of every AUROC")
    parser.add_argument(
        "--summary", type=Path, default=None, help="CSV of mean AUROC per dataset and method"
    )
    parser.add_argument(
        "--from-csv", type=Path, default=None, help="report on an --out CSV instead of running"
    )
    return parser.parse_args()


BASELINES = ("KNN", "1-NN")


def method_scores(method, X_fit, X_test, seed, k):
    """Test scores (higher = more normal) of ``method`` fitted on ``X_fit``."""
    if method in BASELINES:
        neighbour = k if method == "KNN" else 1
        return KNNDistance(n_neighbors=neighbour).fit(X_fit).score_samples(X_test)
    params = {"random_state": seed, "device": "cpu", **VARIANTS[method]}
    return ResADDetector(**params).fit(X_fit).score_samples(X_test)


def main():
    args = parse_args()
    if args.from_csv is not None:
        report(pd.read_csv(args.from_csv), args.summary)
        return
    torch.set_num_threads(args.threads)
    records = []
    for name, X, y in _common.classical_sets(_common.data_dir(args.data_dir), args.datasets):
        for seed in args.seeds:
            X_run, y_run = _common.subsample(X, y, args.max_rows, seed)
            X_fit, X_test, y_test = _common.split(X_run, y_run, "one-class", seed)
            for method in [*BASELINES, *args.variants]:
                start = time.process_time()
                scores = method_scores(method, X_fit, X_test, seed, args.k)
                seconds = time.process_time() - start
                auroc = _common.auroc(y_test, scores)
                records.append((name, seed, len(X_fit), method, auroc, seconds))
                print(f"{name:16s} seed {seed} {method:16s} {auroc:.4f} {seconds:7.1f} s")
            if args.out is not None:
                pd.DataFrame(records, columns=COLUMNS).to_csv(args.out, index=False)
    report(pd.DataFrame(records, columns=COLUMNS), args.summary)


COLUMNS = ["dataset", "seed", "n_train", "method", "auroc", "cpu_seconds"]


def _adbench_number(name):
    """ADBench files start with their number: ``2_annthyroid`` sorts before ``11_donors``."""
    head = name.partition("_")[0]
    return int(head) if head.isdigit() else float("inf")


def report(results, summary_path=None):
    per_set = results.groupby(["dataset", "method"]).auroc.mean().unstack("method")
    per_set = per_set.sort_index(key=lambda names: names.map(_adbench_number))
    order = [m for m in (*BASELINES, *VARIANTS) if m in per_set.columns]
    per_set = per_set[order + [m for m in per_set.columns if m not in order]]
    if summary_path is not None:
        summary = per_set.copy()
        summary.loc["mean"] = per_set.mean()
        summary.round(4).to_csv(summary_path)
    spread = results.groupby(["dataset", "method"]).auroc.std().unstack("method")
    spread = spread.reindex(index=per_set.index, columns=per_set.columns)
    print("\nMean AUROC per dataset (over seeds):")
    print(per_set.round(3).to_string())
    print("\nMean over datasets:")
    print(per_set.mean().round(4).to_string())
    print(f"mean seed-to-seed std: {spread.mean().round(4).to_dict()}")
    print("CPU seconds, total:", results.groupby("method").cpu_seconds.sum().round(0).to_dict())
    baselines = [m for m in BASELINES if m in per_set.columns]
    for baseline in baselines:
        for method in per_set.columns.drop(baselines):
            difference = per_set[method] - per_set[baseline]
            ahead = difference[difference > 0].index.tolist()
            line = f"\n{method} minus {baseline}: mean {difference.mean():+.4f}, ahead on "
            line += f"{len(ahead)} of {len(difference)} ({', '.join(ahead)})"
            if len(difference) > 1 and np.any(difference != 0):
                line += f"; Wilcoxon signed-rank p = {wilcoxon(difference).pvalue:.3f}"
            # Differences within the seed-to-seed spread of either method are not counted.
            noise = spread[[method, baseline]].max(axis=1)
            clearly = (difference > noise).sum(), (difference < -noise).sum()
            line += f"; beyond the seed std: ahead on {clearly[0]}, behind on {clearly[1]}"
            print(line)


if __name__ == "__main__":
    main()
