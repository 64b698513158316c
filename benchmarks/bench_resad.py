"""Class generalization of ResADDetector on MVTec-AD ResNet-18 embeddings (ADBench files).

Protocol (one run = every method side by side on the same rows):

* split: the 15 MVTec-AD categories are shuffled (seeded by the split number); the first
  ``--n-unseen`` are unseen, the others are the training classes (``groups``);
* ResAD is fitted once per split on the seen categories: their normal rows (variant
  ``ResAD``) or their normal rows plus their labelled anomalies (variant ``ResAD+labels``,
  ``use_anomaly_labels=True``; ``ResAD+labels-constraintor-off`` without the constraintor);
* every unseen category's normal rows are split once (per split) into a reference pool (60 %)
  and test normals (40 %); its test set is the test normals plus all of its anomalies;
* for each K in ``--shots`` and each of ``--seeds`` draws, K references are drawn from the
  pool; ResAD scores the test set after ``set_reference`` (no retraining), and the K-shot
  baselines use the same K rows: distance to the nearest reference, IsolationForest and
  skuad DeepSVDD fitted on them;
* upper references: one-class models fitted on the whole reference pool (1-NN distance,
  IsolationForest, DeepSVDD, and the neighbour baselines of ``skuad bench``, LocalOutlierFactor
  and KNN -- the distance to the 5th nearest reference -- which need more rows than K-shot
  draws have), and ResAD given the whole pool two ways: ``ResAD, whole pool`` is a one-class
  ``ResADDetector`` (defaults) fitted on the pool, which scores against all of its rows;
  ``<variant>, whole pool as references`` is each seen-class model after ``set_reference``
  with the whole pool.

The table is the mean AUROC over unseen categories, draws and splits (± the standard
deviation of the per-split means), followed by the paired per-split difference of each ResAD
variant minus the nearest-reference distance.

``--validation`` chooses settings without touching the unseen categories: within each
split's seen categories, ``--n-pseudo-unseen`` of them (drawn with seed ``100 + split``) play
the unseen ones and ResAD trains on the rest. ``--l2-normalize`` L2-normalises every embedding
before all methods (the nearest distance in the raw space is then reported as well).
Run from the repository root:

    nice python benchmarks/bench_resad.py --threads 1 --out resad_results.csv
    nice python benchmarks/bench_resad.py --threads 1 --validation --baselines "nearest distance"
"""

import time
from pathlib import Path

import _common
import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import normalize

from skuad import DeepSVDD, ResADDetector
from skuad.datasets import load_adbench


def parse_args():
    parser = _common.parser(__doc__.split("\n")[0])
    _common.add_data_dir_argument(parser)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--splits", type=int, default=5, help="seen/unseen partitions")
    parser.add_argument("--n-unseen", type=int, default=5)
    parser.add_argument(
        "--validation",
        action="store_true",
        help="pseudo-unseen categories drawn from each split's seen ones (selection runs)",
    )
    parser.add_argument("--n-pseudo-unseen", type=int, default=3)
    parser.add_argument(
        "--l2-normalize", action="store_true", help="L2-normalise embeddings for every method"
    )
    parser.add_argument(
        "--baselines",
        nargs="+",
        default=list(BASELINES),
        help="K-shot and full-pool baselines: " + ", ".join(BASELINES),
    )
    parser.add_argument("--seeds", type=int, default=3, help="reference draws per K")
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-reference", type=int, default=4, help="ResAD's training K")
    parser.add_argument("--n-coupling-blocks", type=int, default=4)
    parser.add_argument("--hidden-ratio", type=float, default=1.0)
    parser.add_argument(
        "--clamp",
        type=float,
        default=0.1,
        help="ResAD's log-scale bound (the estimator's default, chosen with --validation)",
    )
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--lambda-boundary", type=float, default=1.0, help="labelled variants")
    parser.add_argument(
        "--constraintor-width", type=int, default=None, help="hidden width (None: Linear+BN)"
    )
    parser.add_argument("--svdd-epochs", type=int, default=30)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["ResAD", "ResAD+labels", "ResAD+labels-constraintor-off"],
        help="ResAD, ResAD+labels, ResAD+labels-constraintor-off",
    )
    parser.add_argument("--out", type=Path, default=None, help="CSV of every AUROC")
    return parser.parse_args()


def load_categories(data_dir):
    data_dir = _common.data_dir(data_dir)
    files = sorted((Path(data_dir) / "cv_resnet18").glob("MVTec-AD_*.npz"))
    if not files:
        raise SystemExit(f"No MVTec-AD_*.npz under {Path(data_dir) / 'cv_resnet18'}.")
    return {f.stem.removeprefix("MVTec-AD_"): load_adbench(f) for f in files}


auroc = _common.auroc


def nearest_distance(X_ref, X_test):
    squared = (X_test**2).sum(1)[:, None] - 2 * X_test @ X_ref.T + (X_ref**2).sum(1)[None, :]
    return np.sqrt(np.maximum(squared.min(axis=1), 0))


BASELINES = ("nearest distance", "IsolationForest", "DeepSVDD", "LocalOutlierFactor", "KNN")
# LocalOutlierFactor's default neighbourhood: the neighbour baselines run on larger sets only.
MIN_NEIGHBOUR_ROWS = 20


def one_class_scores(X_fit, X_test, seed, svdd_epochs, baselines):
    """Scores (higher = more normal) of the one-class baselines fitted on ``X_fit``."""
    scores = {}
    if "nearest distance" in baselines:
        scores["nearest distance"] = -nearest_distance(X_fit, X_test)
    if "IsolationForest" in baselines:
        forest = IsolationForest(random_state=seed).fit(X_fit)
        scores["IsolationForest"] = forest.score_samples(X_test)
    if "DeepSVDD" in baselines:
        svdd = DeepSVDD(  # with pre-training, as in the tables of docs/benchmarks/resad.rst
            pretrain=True,
            epochs=svdd_epochs,
            pretrain_epochs=svdd_epochs,
            random_state=seed,
            device="cpu",
        ).fit(X_fit)
        scores["DeepSVDD"] = svdd.score_samples(X_test)
    for name in ("LocalOutlierFactor", "KNN"):
        if name in baselines and len(X_fit) > MIN_NEIGHBOUR_ROWS:
            scores[name] = _common.baseline(name, seed).fit(X_fit).score_samples(X_test)
    return scores


def split_categories(names, split, args):
    """(test categories, training categories) of one split."""
    order = np.random.RandomState(split).permutation(names)
    unseen, seen = sorted(order[: args.n_unseen]), sorted(order[args.n_unseen :])
    if not args.validation:
        return unseen, seen
    # Selection runs never look at the split's unseen categories.
    order = np.random.RandomState(100 + split).permutation(seen)
    return sorted(order[: args.n_pseudo_unseen]), sorted(order[args.n_pseudo_unseen :])


def paired_differences(results, variants):
    """Per split, mean AUROC of each ResAD variant minus that of each nearest distance."""
    per_split = results.groupby(["method", "shots", "split"]).auroc.mean()
    methods = set(per_split.index.get_level_values("method"))
    baselines = [m for m in ("nearest distance", "nearest distance (raw)") if m in methods]
    if not baselines:
        return None
    rows = {}
    for variant in variants:
        for baseline in baselines:
            difference = (per_split[variant] - per_split[baseline]).dropna()
            rows[(variant, f"minus {baseline}")] = difference.unstack("split")
    table = pd.concat(rows, names=["method", "baseline"])
    table.columns = [f"split {c}" for c in table.columns]
    table["mean"] = table.mean(axis=1)
    table["splits ahead"] = (table.filter(like="split ") > 0).sum(axis=1)
    return table


def whole_pool_differences(results):
    """Per split, mean AUROC of each whole-pool ResAD minus the full-pool nearest distance."""
    full = results[results.shots == 0].groupby(["method", "split"]).auroc.mean().unstack("split")
    if "nearest distance (full)" not in full.index:
        return None
    table = full.filter(like="whole pool", axis=0) - full.loc["nearest distance (full)"]
    table.columns = [f"split {c}" for c in table.columns]
    table["mean"] = table.mean(axis=1)
    table["splits ahead"] = (table.filter(like="split ") > 0).sum(axis=1)
    return table


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    categories = load_categories(args.data_dir)
    raw = dict(categories)
    if args.l2_normalize:
        categories = {name: (normalize(X), y) for name, (X, y) in categories.items()}
    names = sorted(categories)
    # The command-line options named as ResADDetector's parameters, passed on as they are.
    resad_options = {
        name: getattr(args, name)
        for name in (
            "n_reference",
            "n_coupling_blocks",
            "hidden_ratio",
            "clamp",
            "epochs",
            "weight_decay",
            "lambda_boundary",
            "constraintor_width",
        )
    }
    records = []
    started = time.perf_counter()
    for split in range(args.splits):
        unseen, seen = split_categories(names, split, args)
        kind = "pseudo-unseen" if args.validation else "unseen"
        print(f"split {split}: {kind} {', '.join(unseen)}", flush=True)

        detectors = {}
        for variant in args.variants:
            with_labels = variant.startswith("ResAD+labels")
            X_parts, y_parts, g_parts = [], [], []
            for name in seen:
                X, y = categories[name]
                keep = np.ones(len(y), bool) if with_labels else y == 0
                X_parts.append(X[keep])
                y_parts.append(y[keep])
                g_parts.append(np.full(keep.sum(), name))
            tic = time.perf_counter()
            detectors[variant] = ResADDetector(
                **resad_options,
                use_anomaly_labels=with_labels,
                constraintor="off" if variant.endswith("constraintor-off") else "auto",
                random_state=split,
                device="cpu",
            ).fit(np.vstack(X_parts), np.concatenate(y_parts), groups=np.concatenate(g_parts))
            print(f"  fit {variant}: {time.perf_counter() - tic:.1f} s", flush=True)

        for name in unseen:
            X, y = categories[name]
            rng = np.random.RandomState(1000 * split + names.index(name))
            normal = rng.permutation(np.flatnonzero(y == 0))
            n_pool = int(round(0.6 * len(normal)))
            pool, test = normal[:n_pool], np.r_[normal[n_pool:], np.flatnonzero(y == 1)]
            X_test, y_test = X[test], y[test]
            full_pool = one_class_scores(X[pool], X_test, split, args.svdd_epochs, args.baselines)
            for method, score in full_pool.items():
                records.append((split, name, 0, 0, f"{method} (full)", auroc(y_test, score)))
            whole_pool = ResADDetector(random_state=split, device="cpu").fit(X[pool])
            score = whole_pool.score_samples(X_test)
            records.append((split, name, 0, 0, "ResAD, whole pool", auroc(y_test, score)))
            for variant, detector in detectors.items():
                score = detector.set_reference(X[pool]).score_samples(X_test)
                method = f"{variant}, whole pool as references"
                records.append((split, name, 0, 0, method, auroc(y_test, score)))
            for shots in args.shots:
                for seed in range(args.seeds):
                    drawn = rng.choice(pool, size=shots, replace=False)
                    references = X[drawn]
                    for variant, detector in detectors.items():
                        score = detector.set_reference(references).score_samples(X_test)
                        records.append((split, name, shots, seed, variant, auroc(y_test, score)))
                    baselines = one_class_scores(
                        references, X_test, seed, args.svdd_epochs, args.baselines
                    )
                    if args.l2_normalize:
                        X_raw = raw[name][0]
                        baselines["nearest distance (raw)"] = -nearest_distance(
                            X_raw[drawn], X_raw[test]
                        )
                    for method, score in baselines.items():
                        records.append((split, name, shots, seed, method, auroc(y_test, score)))
        print(f"  done at {time.perf_counter() - started:.0f} s", flush=True)

    results = pd.DataFrame(
        records, columns=["split", "category", "shots", "seed", "method", "auroc"]
    )
    if args.out is not None:
        results.to_csv(args.out, index=False)
    per_split = results.groupby(["method", "shots", "split"]).auroc.mean()
    summary = per_split.groupby(["method", "shots"]).agg(["mean", "std"])
    table = summary.apply(lambda row: f"{row['mean']:.3f} ± {row['std']:.3f}", axis=1)
    table = table.unstack("shots")
    table.columns = [f"K={c}" if c else "full pool" for c in table.columns]
    print()
    print(table.fillna("").to_string())
    differences = paired_differences(results, args.variants)
    whole_pool = whole_pool_differences(results)
    if whole_pool is not None:
        print()
        print("Whole pool, paired per-split differences of mean AUROC (minus 1-NN distance):")
        print(whole_pool.round(3).to_string())
    if differences is not None:
        print()
        print("Paired per-split differences of mean AUROC (ResAD variant minus baseline):")
        print(differences.round(3).to_string())
    per_category = results[results.shots == 4].groupby(["category", "method"]).auroc.mean()
    print()
    print("K=4, mean AUROC per unseen category:")
    print(per_category.unstack("method").round(3).to_string())
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
