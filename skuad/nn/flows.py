"""Normalizing flows for feature vectors: RealNVP-style affine coupling blocks.

A :class:`CouplingFlow` maps ``x`` to ``z`` through blocks of

1. an affine coupling layer (Dinh et al., "Density estimation using Real NVP", ICLR 2017):
   the first half of the features passes unchanged and sets a soft-clamped log-scale and a
   shift for the second half;
2. a learnable global affine map (ActNorm-like, Kingma & Dhariwal 2018);
3. a fixed random orthogonal mixing of the features, so that every feature is transformed by
   some later coupling layer (log-determinant 0).

Each module returns ``(output, log_det)`` with ``log_det`` of shape ``(n_samples,)`` and has an
exact ``inverse``.
"""

import math

import torch
from torch import nn


class AffineCoupling(nn.Module):
    """``y1 = x1``, ``y2 = x2 * exp(s(x1)) + t(x1)`` with ``s`` soft-clamped to ``(-clamp, clamp)``.

    Parameters
    ----------
    n_features : int
        Width of the input.
    hidden_ratio : float
        Width of the subnet's hidden layer as a multiple of its input width (the first half).
    clamp : float
        Bound on the log-scale: ``s = clamp * tanh(raw / clamp)``, which keeps ``exp(s)``
        finite however large the subnet output gets.

    Notes
    -----
    The subnet is a two-layer MLP whose last layer starts at zero, so a new block is the
    identity and training starts from the standard normal density. With one feature there
    is nothing to condition on; the scale and shift are then free parameters.
    """

    def __init__(self, n_features, hidden_ratio=2.0, clamp=1.9):
        super().__init__()
        self.n_passive = n_features // 2
        self.n_active = n_features - self.n_passive
        self.clamp = float(clamp)
        if self.n_passive == 0:
            self.subnet = None
            self.free_scale_shift = nn.Parameter(torch.zeros(2 * self.n_active))
        else:
            hidden = max(1, round(hidden_ratio * self.n_passive))
            self.subnet = nn.Sequential(
                nn.Linear(self.n_passive, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 2 * self.n_active),
            )
            nn.init.zeros_(self.subnet[-1].weight)
            nn.init.zeros_(self.subnet[-1].bias)

    def _scale_shift(self, passive):
        if self.subnet is None:
            raw = self.free_scale_shift.expand(len(passive), -1)
        else:
            raw = self.subnet(passive)
        raw_scale, shift = raw.chunk(2, dim=1)
        log_scale = self.clamp * torch.tanh(raw_scale / self.clamp)
        return log_scale, shift

    def forward(self, x):
        passive, active = x[:, : self.n_passive], x[:, self.n_passive :]
        log_scale, shift = self._scale_shift(passive)
        active = active * torch.exp(log_scale) + shift
        return torch.cat([passive, active], dim=1), log_scale.sum(dim=1)

    def inverse(self, y):
        passive, active = y[:, : self.n_passive], y[:, self.n_passive :]
        log_scale, shift = self._scale_shift(passive)
        active = (active - shift) * torch.exp(-log_scale)
        return torch.cat([passive, active], dim=1)


class GlobalAffine(nn.Module):
    """Learnable per-feature ``y = x * exp(log_scale) + shift``, starting at the identity."""

    def __init__(self, n_features):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(n_features))
        self.shift = nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        log_det = self.log_scale.sum().expand(len(x))
        return x * torch.exp(self.log_scale) + self.shift, log_det

    def inverse(self, y):
        return (y - self.shift) * torch.exp(-self.log_scale)


class FixedOrthogonal(nn.Module):
    """Multiplication by a fixed random orthogonal matrix (``|det| = 1``, no parameters).

    Parameters
    ----------
    n_features : int
        Width of the input.
    generator : torch.Generator
        Source of the Gaussian matrix whose QR factor is used (seeded for reproducibility).
    """

    def __init__(self, n_features, generator):
        super().__init__()
        gaussian = torch.randn(n_features, n_features, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)
        # Sign fix makes Q Haar-distributed and independent of the QR implementation.
        q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
        self.register_buffer("matrix", q.to(torch.float32))

    def forward(self, x):
        return x @ self.matrix.T, x.new_zeros(len(x))

    def inverse(self, y):
        # Solve rather than multiply by the transpose: once stored in float32 the matrix is
        # orthogonal only to about 1e-7.
        return torch.linalg.solve(self.matrix, y.T).T


class CouplingFlow(nn.Module):
    """A RealNVP-style normalizing flow onto a standard normal latent space.

    Parameters
    ----------
    n_features : int
        Dimension of the data (and of the latent space).
    n_blocks : int, default=8
        Number of coupling blocks (coupling + global affine + orthogonal mixing).
    hidden_ratio : float, default=2.0
        Subnet hidden width as a multiple of its input width.
    clamp : float, default=1.9
        Soft bound of each coupling layer's log-scale.
    seed : int, default=0
        Seeds the fixed orthogonal mixing matrices.

    Examples
    --------
    >>> import torch
    >>> from skuad.nn.flows import CouplingFlow
    >>> flow = CouplingFlow(4, n_blocks=2)
    >>> x = torch.randn(3, 4)
    >>> z, log_det = flow(x)
    >>> torch.allclose(flow.inverse(z), x, atol=1e-5)
    True
    """

    def __init__(self, n_features, n_blocks=8, hidden_ratio=2.0, clamp=1.9, seed=0):
        super().__init__()
        self.n_features = n_features
        generator = torch.Generator().manual_seed(seed)
        layers = []
        for _ in range(n_blocks):
            layers += [
                AffineCoupling(n_features, hidden_ratio, clamp),
                GlobalAffine(n_features),
                FixedOrthogonal(n_features, generator),
            ]
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        """``(z, log|det dz/dx|)`` for rows ``x``."""
        log_det = x.new_zeros(len(x))
        for layer in self.layers:
            x, layer_log_det = layer(x)
            log_det = log_det + layer_log_det
        return x, log_det

    def inverse(self, z):
        """The rows ``x`` that map to ``z``."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, x):
        """Log-density of each row under the flow: ``log N(z; 0, I) + log|det J|``."""
        z, log_det = self(x)
        return standard_normal_log_density(z) + log_det


def standard_normal_log_density(z):
    """``log N(z; 0, I)`` of each row: ``-d/2 log(2 pi) - |z|^2 / 2``."""
    return -0.5 * z.shape[1] * math.log(2 * math.pi) - 0.5 * (z**2).sum(dim=1)
