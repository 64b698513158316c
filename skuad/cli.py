"""The ``skuad`` command line: ``skuad demo``."""

import argparse
import time

from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from skuad import DeepSVDD
from skuad.datasets import load_breast_cancer_task, load_digits_task, one_class_split


def _demo_tasks():
    X, y = load_breast_cancer_task()
    yield "breast_cancer (table)", X, y, {}
    X, y = load_digits_task(normal_digits=(0,))
    yield "digits, 0 normal (8x8 images)", X, y, {"image_shape": (1, 8, 8)}


def demo(seed=0):
    """Fit DeepSVDD and IsolationForest one-class on bundled data and print test AUROC."""
    rows = []
    for task, X, y, image_kwargs in _demo_tasks():
        X_train, X_test, y_test = one_class_split(X, y, random_state=seed)
        detectors = {
            "DeepSVDD": DeepSVDD(random_state=seed, **image_kwargs),
            "IsolationForest": IsolationForest(random_state=seed),
        }
        for name, detector in detectors.items():
            start = time.perf_counter()
            detector.fit(X_train)
            seconds = time.perf_counter() - start
            # Anomaly = positive class; scikit-learn's scores are higher for normal rows.
            auroc = roc_auc_score(y_test, -detector.score_samples(X_test))
            rows.append((task, name, auroc, seconds))
            print(f"{task:32s} {name:16s} AUROC {auroc:.3f}  fit {seconds:5.1f} s", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skuad", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="run the detectors on bundled data")
    demo_parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
