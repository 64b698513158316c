"""Ablation of LAMP loss amplification: plain autoencoder vs amplified vs searched factor.

The one-class protocol of ``skuad bench`` (benchmarks/_common.py): for each dataset and seed, a
stratified 70/30 split, training on the normal rows of the 70 % (at most ``--max-train`` of them,
drawn at random); min-max scaling fitted on the training rows. Arms, all on the same split:

* ``plain``: ``LAMPAutoencoderDetector(amplification=0)``, the ordinary autoencoder;
* ``a=<f>``: the same network and training, amplification ``f``;
* ``searched``: the factor chosen by ``GridSearchCV`` over the grid on the *training rows
  only*: training inliers plus generated reference outliers
  (:func:`skuad.model_selection.with_synthetic_outliers`), folds from
  :class:`skuad.model_selection.InlierKFold`, scored by ``make_outlier_scorer('roc_auc')``.
  The refit on all training rows is the ``a=<chosen>`` arm (same data and seed, so identical);
* ``PyOD AE``: ``pyod.models.auto_encoder.AutoEncoder`` with its defaults (CPU, seeded);
* ``IsolationForest``, ``LocalOutlierFactor``, ``KNN``: the baselines of ``skuad bench``
  (defaults; KNN is the distance to the 5th nearest training row).

Digits: ``sklearn.datasets.load_digits``, one digit normal at a time, the LAMP arms use the
convolutional autoencoder (``image_shape=(1, 8, 8)``).

Run (about 1,000 LAMP fits of ~250 Adam steps each; 56 minutes of wall time with one thread
on a 2-core machine shared with other jobs, expect well under half that on an idle core)::

    nice python benchmarks/bench_lamp.py --threads 1 --output lamp.csv > lamp_bench.log

Other candidates: ``--per sample``, ``--mode power --grid 0 0.5 1 3``, ``--mode linear
--grid 0 9`` (a constant factor, the negative control); ``--digits`` with no value skips the
digit tasks. Results and conclusion: docs/detectors/lamp.rst.

Prints one line per fit and a summary table (AUROC %, mean over seeds) in reStructuredText.
"""

import math
import time
from pathlib import Path

import _common
import numpy as np
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import MinMaxScaler

from skuad import LAMPAutoencoderDetector
from skuad.datasets import load_digits_task
from skuad.metrics import make_outlier_scorer
from skuad.model_selection import InlierKFold, with_synthetic_outliers

# The ADBench subset of methods/benchmarks.md section 6.4 without its three largest sets
# (24_mnist, 28_pendigits, 32_shuttle), to keep the run near 20 minutes on one thread.
DATASETS = [
    "4_breastw",
    "6_cardio",
    "18_Ionosphere",
    "23_mammography",
    "26_optdigits",
    "2_annthyroid",
    "30_satellite",
    "31_satimage-2",
    "38_thyroid",
    "40_vowels",
    "42_WBC",
    "43_WDBC",
]


def parse_args(argv=None):
    parser = _common.parser(__doc__.split("\n\n")[0])
    _common.add_data_dir_argument(parser)
    parser.add_argument("--datasets", nargs="*", default=DATASETS, help="ADBench classical sets")
    parser.add_argument(
        "--digits", nargs="*", type=int, default=list(range(10)), help="normal digits, one a task"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. SEEDS-1")
    parser.add_argument(
        "--grid",
        nargs="+",
        type=float,
        default=[0.0, 1.0, 10.0, 100.0],
        help="amplification factors",
    )
    parser.add_argument(
        "--mode", default="log", choices=["log", "linear", "power"], help="amplification_mode"
    )
    parser.add_argument(
        "--per", default="element", choices=["element", "sample"], help="amplify_per"
    )
    parser.add_argument("--cv", type=int, default=2, help="InlierKFold folds of the search")
    parser.add_argument("--max-train", type=int, default=1000, help="cap on training rows")
    parser.add_argument("--steps", type=int, default=250, help="about this many Adam steps per fit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--output", type=Path, default=None, help="CSV of every run")
    return parser.parse_args(argv)


def lamp_params(n_train, batch_size, steps, image_shape, mode="log", per="element"):
    """Shared settings of every LAMP arm: epochs give about ``steps`` Adam steps (20-100)."""
    batches = math.ceil(n_train / batch_size)
    epochs = int(min(100, max(20, math.ceil(steps / batches))))
    params = dict(
        epochs=epochs,
        batch_size=batch_size,
        amplification_mode=mode,
        amplify_per=per,
        device="cpu",
    )
    if image_shape is not None:
        params.update(image_shape=image_shape, hidden_layer_sizes=(8, 16))
    return params


def tasks(args):
    if args.datasets:
        for name, X, y in _common.classical_sets(_common.data_dir(args.data_dir), args.datasets):
            yield name, X, y, None
    for digit in args.digits:
        X, y = load_digits_task(normal_digits=(digit,))
        yield f"digits-{digit}", X, y, (1, 8, 8)


def run_task(name, X, y, image_shape, seed, args):
    """Every arm on one split; returns {arm: AUROC} and the chosen factor."""
    X_train, X_test, y_test = _common.split(X, y, "one-class", seed, scale=False)
    if len(X_train) > args.max_train:
        keep = np.random.RandomState(seed).choice(len(X_train), args.max_train, replace=False)
        X_train = X_train[np.sort(keep)]
    if image_shape is None:
        scaler = MinMaxScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    else:
        X_train, X_test = X_train / 16.0, X_test / 16.0
    params = lamp_params(len(X_train), 64, args.steps, image_shape, args.mode, args.per)
    results, seconds = {}, {}

    def record(arm, detector):
        start = time.perf_counter()
        detector.fit(X_train)
        seconds[arm] = time.perf_counter() - start
        results[arm] = _common.auroc(y_test, detector.score_samples(X_test))
        return detector

    for factor in args.grid:
        arm = "plain" if factor == 0 else f"a={factor:g}"
        record(arm, LAMPAutoencoderDetector(amplification=factor, random_state=seed, **params))

    # Model selection on the training rows only: held-out training inliers vs generated
    # reference outliers; the test split and its labels are never seen.
    X_select, y_select = with_synthetic_outliers(X_train, random_state=seed)
    search = GridSearchCV(
        LAMPAutoencoderDetector(random_state=seed, **params),
        {"amplification": args.grid},
        scoring=make_outlier_scorer("roc_auc"),
        cv=InlierKFold(args.cv, shuffle=True, random_state=seed),
        refit=False,
    )
    start = time.perf_counter()
    search.fit(X_select, y_select)
    seconds["searched"] = time.perf_counter() - start
    chosen = search.best_params_["amplification"]
    results["searched"] = results["plain" if chosen == 0 else f"a={chosen:g}"]

    from pyod.models.auto_encoder import AutoEncoder

    start = time.perf_counter()
    pyod_ae = AutoEncoder(random_state=seed, device="cpu", verbose=0).fit(X_train)
    seconds["PyOD AE"] = time.perf_counter() - start
    # PyOD scores are higher = more abnormal.
    results["PyOD AE"] = _common.auroc(y_test, -pyod_ae.decision_function(X_test))
    for name in _common.BASELINES:
        record(name, _common.baseline(name, seed))
    return results, seconds, chosen, params["epochs"]


def summary_table(rows, arms):
    """reStructuredText grid of AUROC % (mean over seeds) per task and arm, plus mean and rank."""
    names = list(dict.fromkeys(r["task"] for r in rows))
    means = {
        name: {arm: np.mean([r[arm] for r in rows if r["task"] == name]) for arm in arms}
        for name in names
    }
    chosen = {
        name: "/".join(f"{r['chosen']:g}" for r in rows if r["task"] == name) for name in names
    }
    header = ["dataset", *arms, "chosen a"]
    body = [
        [name, *(f"{100 * means[name][arm]:.1f}" for arm in arms), chosen[name]] for name in names
    ]
    for label, subset in (
        ("mean ADBench", [n for n in names if not n.startswith("digits")]),
        ("mean digits", [n for n in names if n.startswith("digits")]),
        ("mean all", names),
    ):
        if subset:
            body.append(
                [label, *(f"{100 * np.mean([means[n][a] for n in subset]):.1f}" for a in arms), ""]
            )
    ranks = np.mean(
        [
            np.argsort(np.argsort([-means[n][a] for a in arms])) + 1  # rank 1 = best
            for n in names
        ],
        axis=0,
    )
    body.append(["mean rank", *(f"{r:.2f}" for r in ranks), ""])
    return _common.rst_table(header, body)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    arms = ["plain", *(f"a={f:g}" for f in args.grid if f != 0), "searched", "PyOD AE"]
    arms += _common.BASELINES
    rows = []
    start = time.perf_counter()
    for name, X, y, image_shape in tasks(args):
        for seed in range(args.seeds):
            results, seconds, chosen, epochs = run_task(name, X, y, image_shape, seed, args)
            rows.append({"task": name, "seed": seed, "chosen": chosen, **results})
            cells = "  ".join(f"{arm} {100 * results[arm]:.1f}" for arm in arms)
            print(
                f"{name:16s} seed {seed} epochs {epochs:3d} chosen a={chosen:g}  {cells}  "
                f"[{sum(seconds.values()):.0f} s]",
                flush=True,
            )
    print(f"\ntotal {time.perf_counter() - start:.0f} s\n")
    print(summary_table(rows, arms))
    if args.output is not None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.output, index=False)


if __name__ == "__main__":
    main()
