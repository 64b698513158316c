"""Loss functions as pure tensor code, plus thin ``nn.Module`` criteria that skorch can hold.

Every per-sample function returns a tensor of shape ``(n_samples,)``; criteria average it.
A criterion is called as ``criterion(network_output, X_batch)`` (see ``skuad._training``).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


def squared_distance(z, center):
    """Squared Euclidean distance of each row of ``z`` to ``center``."""
    return ((z - center) ** 2).sum(dim=1)


def reconstruction_error_map(x, x_hat, metric="mse", image_shape=None):
    """Per-element reconstruction error, shape ``(n_samples, n_elements)``.

    ``'mse'``: squared residual; ``'l1'``: absolute residual; ``'ssim'``: the structural
    dissimilarity ``(1 - SSIM) / 2`` of each pixel's neighbourhood (needs ``image_shape``,
    data in [0, 1]). Each is in [0, 1] when ``x`` and ``x_hat`` are.
    """
    if metric == "ssim":
        if image_shape is None:
            raise ValueError("reconstruction metric 'ssim' needs image_shape=(C, H, W).")
        return ((1.0 - ssim_map(x, x_hat, image_shape)) / 2.0).flatten(1)
    residual = (x_hat - x).flatten(1)
    if metric == "mse":
        return residual**2
    if metric == "l1":
        return residual.abs()
    raise ValueError(f"unknown reconstruction metric {metric!r}")


def reconstruction_error(x, x_hat, metric="mse", image_shape=None):
    """Per-sample reconstruction error: the mean of :func:`reconstruction_error_map`."""
    return reconstruction_error_map(x, x_hat, metric, image_shape).mean(dim=1)


def _gaussian_window(size, sigma, dtype, device):
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel = kernel / kernel.sum()
    return kernel[:, None] * kernel[None, :]


def ssim_map(x, x_hat, image_shape, window_size=7, sigma=1.5, data_range=1.0):
    """Per-pixel SSIM (Wang et al. 2004) between image batches given as flattened rows.

    Local means, variances and covariance use a Gaussian window (``sigma`` 1.5, as the paper),
    whose size is clipped to the image so that 8x8 images work; borders are reflected so the
    map has one value per pixel. Returns shape ``(n_samples, C, H, W)``, values in [-1, 1].
    """
    channels, height, width = image_shape
    size = min(window_size, height, width)
    size -= 1 - size % 2  # odd, so the window is centred on its pixel
    window = _gaussian_window(size, sigma, x.dtype, x.device)
    window = window.expand(channels, 1, size, size)
    pad = size // 2

    def local_mean(images):
        if pad:
            images = F.pad(images, (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(images, window, groups=channels)

    a = x.reshape(-1, channels, height, width)
    b = x_hat.reshape(-1, channels, height, width)
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


def amplify_loss(loss, amplification, mode="log", delta=1e-3):
    """LAMP-style loss amplification of non-negative losses, element-wise.

    ``mode='log'`` (skuad's reading of LAMP): ``g(a * loss) / a`` with
    ``g(u) = -log(1 - u)`` for ``u <= 1 - delta``, continued linearly with the same slope
    ``1 / delta`` beyond (a clamp would zero the gradient of exactly the worst elements).
    ``a = 1`` is the LMSE transform ``-log(1 - loss)``; dividing by ``a`` keeps the slope at
    0 equal to 1 for every ``a``. ``mode='linear'``: ``(1 + a) * loss`` (a constant factor, a
    negative control). ``mode='power'``: ``(loss + delta) ** (1 / (1 + a))``. Every mode
    returns ``loss`` unchanged for ``a = 0``.
    """
    if amplification == 0:
        return loss
    if mode == "linear":
        return (1.0 + amplification) * loss
    if mode == "power":
        return (loss + delta) ** (1.0 / (1.0 + amplification))
    if mode != "log":
        raise ValueError(f"unknown amplification mode {mode!r}")
    u = amplification * loss
    u0 = 1.0 - delta
    inside = -torch.log1p(-torch.clamp(u, max=u0))
    extended = -math.log(delta) + (u - u0) / delta
    return torch.where(u <= u0, inside, extended) / amplification


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


class AmplifiedReconstructionLoss(nn.Module):
    """Mean of :func:`amplify_loss` over the per-element (or per-sample) reconstruction error.

    ``per='element'`` amplifies each entry of :func:`reconstruction_error_map`;
    ``per='sample'`` amplifies each sample's mean error. With ``amplification=0`` both equal
    :class:`ReconstructionLoss` (all rows have the same number of elements).
    """

    def __init__(
        self,
        metric="mse",
        amplification=1.0,
        mode="log",
        per="element",
        delta=1e-3,
        image_shape=None,
    ):
        super().__init__()
        self.metric = metric
        self.amplification = amplification
        self.mode = mode
        self.per = per
        self.delta = delta
        self.image_shape = image_shape

    def forward(self, x_hat, x):
        errors = reconstruction_error_map(x, x_hat, self.metric, self.image_shape)
        if self.per == "sample":
            errors = errors.mean(dim=1)
        elif self.per != "element":
            raise ValueError(f"unknown amplification level {self.per!r}")
        return amplify_loss(errors, self.amplification, self.mode, self.delta).mean()


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


def student_t_log_kernel(z, centers, alpha=1.0):
    """``log (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2)``, shape ``(n_samples, n_centers)``.

    The squared distances are summed in float64 and only their (small) logarithm is returned
    in ``z``'s dtype: for a code far from every centre, as an input far outside the training
    range gives, the squared distance overflows float32 although the kernel's log is finite.
    """
    difference = z[:, None, :].double() - centers[None, :, :].double()
    sq_dist = (difference**2).sum(dim=2)
    return (-(alpha + 1.0) / 2.0 * torch.log1p(sq_dist / alpha)).to(z.dtype)


def dec_soft_assignment(z, centers, alpha=1.0):
    """DEC soft assignment: Student-t kernel between codes and cluster centres, row-normalised.

    ``q_ij = (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2)``, divided by its row sum (Xie et
    al., ICML 2016, eq. 1). Computed as a softmax of the kernel's logarithm, so far-away points
    never produce ``0 / 0``. Returns shape ``(n_samples, n_clusters)``.
    """
    return torch.softmax(student_t_log_kernel(z, centers, alpha), dim=1)


def dec_target_distribution(q):
    """DEC's sharpened target ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')``.

    ``f_j = sum_i q_ij`` is the soft frequency of cluster ``j`` in the batch.

    Squaring favours confident assignments; dividing by the cluster frequency ``f_j`` keeps
    large clusters from absorbing the others (Xie et al. 2016, eq. 3).
    """
    # A cluster with no mass in the batch (f_j = 0, all q_ij = 0) gets weight 0, not 0 / 0.
    weight = q**2 / q.sum(dim=0).clamp_min(torch.finfo(q.dtype).tiny)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_divergence(p, q):
    """Per-sample ``KL(p_i || q_i) = sum_j p_ij log(p_ij / q_ij)``, with ``0 log 0 = 0``."""
    return (torch.xlogy(p, p) - p * torch.log(q.clamp_min(torch.finfo(q.dtype).tiny))).sum(dim=1)


class DECLoss(nn.Module):
    """DEC clustering loss ``KL(P || Q)`` averaged over the batch.

    The network output is the soft assignment ``Q``; the target ``P`` is computed from the
    same batch and detached, so only ``Q`` receives gradients.
    """

    def forward(self, q, x=None):
        return kl_divergence(dec_target_distribution(q).detach(), q).mean()


def residual_constraint_loss(constrained, residual, is_anomaly):
    """ResAD's abnormal-invariant one-class loss per sample (Yao et al. 2024, Eq. 2).

    Normal rows: ``sqrt(||x'|| + 1) - 1``, a pseudo-Huber pull of the constrained residual
    ``x'`` towards the origin (the norm is not squared, as typeset in the paper). Anomalous rows:
    ``||x' - x||``, which keeps their residual ``x`` where it was, so the constraintor cannot
    map everything into the hypersphere.
    """
    pull = torch.sqrt(constrained.norm(dim=1) + 1.0) - 1.0
    keep = (constrained - residual).norm(dim=1)
    return torch.where(is_anomaly, keep, pull)


def boundary_guided_loss(log_likelihood, is_anomaly, normal_boundary, margin):
    """Boundary-guided semi-push-pull loss per sample (BGAD, Yao et al. CVPR 2023; ResAD Eq. 5).

    Normal rows below the boundary ``b_n`` are pulled up to it, anomalous rows above
    ``b_n - margin`` are pushed down below it; rows already on the right side cost nothing.
    """
    normal_part = torch.clamp(normal_boundary - log_likelihood, min=0)
    anomalous_part = torch.clamp(log_likelihood - normal_boundary + margin, min=0)
    return torch.where(is_anomaly, anomalous_part, normal_part)
