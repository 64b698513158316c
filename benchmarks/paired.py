"""Paired comparison of detectors across data sets, from ``skuad bench`` per-run CSV files.

For each pair ``A vs B`` given: both means over the sets (each set's AUROC averaged over its
seeds), the sets where A is higher, the sets where the difference exceeds the larger of the
two seed-to-seed standard deviations (either way), and the two-sided Wilcoxon signed-rank
p-value over the sets::

    D=docs/benchmarks/classical17
    python benchmarks/paired.py $D/base.csv $D/deepsvdd_no_pretraining.csv \
        --rename $D/deepsvdd_no_pretraining.csv:DeepSVDD=DeepSVDD-no-pretraining \
        --pairs DeepSVDD-no-pretraining:DeepSVDD DeepSVDD-no-pretraining:PyODDeepSVDD \
        LAMPAutoencoderDetector:PyODAutoEncoder LAMPAutoencoderDetector:KNN \
        DeepSVDD-no-pretraining:KNN --output $D/paired.csv
"""

import argparse

import _common
import numpy as np
import pandas as pd
from scipy.stats import wilcoxon


def load(paths, renames):
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        for old, new in renames.get(path, {}).items():
            frame.loc[frame["detector"] == old, "detector"] = new
        frames.append(frame)
    runs = pd.concat(frames)
    if runs["protocol"].nunique() > 1:
        raise ValueError("the runs mix protocols; compare one protocol at a time.")
    # pivot, not pivot_table: a detector run twice on a set and seed is an error, not averaged.
    return runs.pivot(index=["dataset", "seed"], columns="detector", values="auroc")


def compare(runs, a, b):
    # Population standard deviation over the seeds, as skuad bench's tables give it.
    means, spreads = runs.groupby(level=0).mean(), runs.groupby(level=0).std(ddof=0)
    difference = means[a] - means[b]
    spread = np.maximum(spreads[a], spreads[b])
    return {
        "comparison": f"{a} vs {b}",
        "mean_auroc_a": round(float(means[a].mean()), 4),
        "mean_auroc_b": round(float(means[b].mean()), 4),
        "sets": len(difference),
        "sets_a_higher": int((difference > 0).sum()),
        "a_ahead_beyond_seed_spread": int((difference > spread).sum()),
        "a_behind_beyond_seed_spread": int((difference < -spread).sum()),
        "wilcoxon_p": round(float(wilcoxon(means[a], means[b]).pvalue), 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="skuad bench per-run CSV files")
    parser.add_argument(
        "--rename",
        action="append",
        default=[],
        help="FILE:OLD=NEW, a detector renamed in one file (to tell two runs of it apart)",
    )
    parser.add_argument("--pairs", nargs="+", required=True, help="A:B, compare A with B")
    parser.add_argument("--output", help="CSV file to write")
    args = parser.parse_args(argv)
    renames = {}
    for text in args.rename:
        path, _, change = text.rpartition(":")
        old, _, new = change.partition("=")
        renames.setdefault(path, {})[old] = new
    runs = load(args.runs, renames)
    rows = [compare(runs, *pair.split(":")) for pair in args.pairs]
    for row in rows:
        print(", ".join(f"{key}={value}" for key, value in row.items()))
    _common.write_csv(rows, args.output)


if __name__ == "__main__":
    main()
