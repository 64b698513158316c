"""Loss functions as pure tensor code, plus thin ``nn.Module`` criteria that skorch can hold.

Every per-sample function returns a tensor of shape ``(n_samples,)``; criteria average it.
A criterion is called as ``criterion(network_output, X_batch)`` (see ``skuad._training``).
"""

import torch
from torch import nn


def squared_distance(z, center):
    """Squared Euclidean distance of each row of ``z`` to ``center``."""
    return ((z - center) ** 2).sum(dim=1)


def reconstruction_error(x, x_hat, metric="mse"):
    """Per-sample reconstruction error: mean squared (``'mse'``) or absolute (``'l1'``) error."""
    residual = (x_hat - x).flatten(1)
    if metric == "mse":
        return (residual**2).mean(dim=1)
    if metric == "l1":
        return residual.abs().mean(dim=1)
    raise ValueError(f"unknown reconstruction metric {metric!r}")


def one_class_svdd_loss(dist):
    """One-class Deep SVDD: mean squared distance to the centre (Ruff et al. 2018, eq. 4)."""
    return dist.mean()


def soft_boundary_svdd_loss(dist, radius, nu):
    """Soft-boundary Deep SVDD: ``R^2 + mean(max(0, d - R^2)) / nu`` (Ruff et al. 2018, eq. 3).

    ``radius`` is held fixed during gradient steps and solved for separately.
    """
    r2 = radius**2
    return r2 + torch.clamp(dist - r2, min=0).mean() / nu


def svdd_radius(dist, nu):
    """Radius solving the soft-boundary objective for fixed weights: (1-nu)-quantile of sqrt(d)."""
    return torch.quantile(torch.sqrt(dist.double()), 1.0 - nu).to(dist.dtype)


class ReconstructionLoss(nn.Module):
    """Batch mean of :func:`reconstruction_error` between the network output and its input."""

    def __init__(self, metric="mse"):
        super().__init__()
        self.metric = metric

    def forward(self, x_hat, x):
        return reconstruction_error(x, x_hat, self.metric).mean()


class SVDDLoss(nn.Module):
    """Deep SVDD objective around a fixed centre; the radius is a buffer updated from outside."""

    def __init__(self, center, objective="one-class", nu=0.1):
        super().__init__()
        self.objective = objective
        self.nu = nu
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))
        self.register_buffer("radius", torch.zeros((), dtype=torch.float32))

    def forward(self, z, x=None):
        dist = squared_distance(z, self.center)
        if self.objective == "soft-boundary":
            return soft_boundary_svdd_loss(dist, self.radius, self.nu)
        return one_class_svdd_loss(dist)
