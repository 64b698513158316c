"""The spine's batch-at-a-time loader gives exactly the batches of torch's per-row DataLoader."""

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader, Subset

from skuad._training import RowDataset, TrainingOptions, batch_loader, train_module


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("with_targets", [False, True])
def test_same_batches_as_per_row_loader(shuffle, drop_last, with_targets):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(23, 3)).astype(np.float32)
    y = rng.randint(0, 3, size=23) if with_targets else None

    def options():  # the same for both loaders, each with its own generator seeded alike
        generator = torch.Generator().manual_seed(7)
        return dict(batch_size=5, shuffle=shuffle, drop_last=drop_last, generator=generator)

    per_row = DataLoader(Dataset(X, y), **options())
    batched = batch_loader(RowDataset(X, y), **options())
    for _ in range(2):  # two epochs: the generators must stay in step
        expected, got = _batches(per_row), _batches(batched)
        assert len(got) == len(expected) == (4 if drop_last else 5)
        for (x_exp, y_exp), (x_got, y_got) in zip(expected, got, strict=True):
            torch.testing.assert_close(x_got, x_exp, rtol=0, atol=0)
            if with_targets:
                torch.testing.assert_close(y_got, y_exp, rtol=0, atol=0)


def test_subset_of_row_dataset_is_indexed_by_batch():
    # skorch's ValidSplit (early stopping) wraps the dataset in a torch Subset.
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    subset = Subset(RowDataset(X), np.array([1, 3, 5, 7]))
    (x, _), (x2, _) = list(batch_loader(subset, batch_size=3))
    np.testing.assert_array_equal(x.numpy(), X[[1, 3, 5]])
    np.testing.assert_array_equal(x2.numpy(), X[[7]])


class _ModeRecorder(torch.nn.Module):
    """A linear layer behind a submodule; records (top, sub) training flags on every forward."""

    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.1))
        self.modes = []

    def forward(self, x):
        self.modes.append((self.training, self.inner[1].training))
        return self.inner(x)


class _SquaredOutput(torch.nn.Module):
    def forward(self, output, x):
        return (output**2).mean()


def test_training_and_validation_batches_see_the_right_modes():
    # The net sets a module's tree once per mode during fit instead of on every batch; a
    # validation pass (early stopping) must still switch the whole tree to eval and back.
    module = _ModeRecorder()
    X = np.random.RandomState(0).normal(size=(40, 3)).astype(np.float32)
    options = TrainingOptions(epochs=3, batch_size=8, lr=1e-3, early_stopping=True)
    train_module(module, _SquaredOutput(), X, options, seed=0, device="cpu")
    # 36 training rows (4.5 batches -> 5) and 4 validation rows (1 batch) per epoch.
    assert module.modes == ([(True, True)] * 5 + [(False, False)]) * 3


def test_submodule_switched_off_before_fit_trains_in_train_mode():
    # A module whose submodule was left in eval mode (for example by scoring it alone) is set
    # wholly to train mode at the first batch of the next fit.
    module = _ModeRecorder()
    module.inner.eval()
    X = np.random.RandomState(0).normal(size=(16, 3)).astype(np.float32)
    options = TrainingOptions(epochs=2, batch_size=8, lr=1e-3)
    net = train_module(module, _SquaredOutput(), X, options, seed=0, device="cpu")
    assert module.modes == [(True, True)] * 4
    # Outside fit the whole tree is set on every call again.
    module.inner.train()
    module.modes.clear()
    net.forward(X)
    assert module.modes == [(False, False)] * 2  # two batches of 8
