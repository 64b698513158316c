"""CPU time per training step: skorch's per-row loading against skuad's batch loader.

skorch's default ``Dataset`` + torch ``DataLoader`` fetch a mini-batch row by row and collate
the rows; ``skuad._training`` hands skorch ``RowDataset`` + ``batch_loader`` instead (one
gather per batch, same batches). This trains the same bias-free MLP both ways through
``train_module`` and prints the best-of-3 CPU microseconds per step.

    nice python benchmarks/bench_batch_loader.py --threads 1
"""

import argparse
import time

import numpy as np
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

import skuad._training as training
from skuad.losses import SVDDLoss
from skuad.nn import MLP

LOADERS = {
    "per-row (skorch Dataset + DataLoader)": (Dataset, DataLoader),
    "RowDataset + batch_loader": (training.RowDataset, training.batch_loader),
}


def fit_cpu_seconds(X, batch_size, epochs):
    options = training.TrainingOptions(epochs=epochs, batch_size=batch_size, lr=1e-4)
    module = MLP(X.shape[1], (64,), 32, bias=False)
    start = time.process_time()
    training.train_module(
        module, SVDDLoss(np.ones(32)), X, options, seed=0, device=torch.device("cpu")
    )
    return time.process_time() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--features", type=int, default=21)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X = np.random.RandomState(0).normal(size=(args.rows, args.features)).astype(np.float32)
    fit_cpu_seconds(X, 32, 1)  # warm-up: torch imports its optimiser machinery lazily
    original = training.RowDataset, training.batch_loader
    try:
        for batch_size in args.batch_sizes:
            steps = args.epochs * (args.rows // batch_size)
            for name, (dataset, loader) in LOADERS.items():
                # train_module looks both names up at call time.
                training.RowDataset, training.batch_loader = dataset, loader
                best = min(fit_cpu_seconds(X, batch_size, args.epochs) for _ in range(3))
                print(f"batch {batch_size:4d}  {name:38s} {1e6 * best / steps:7.1f} us CPU/step")
    finally:
        training.RowDataset, training.batch_loader = original


if __name__ == "__main__":
    main()
