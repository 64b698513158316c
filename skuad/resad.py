"""ResAD: class-generalizable anomaly detection from residual features (Yao et al. 2024)."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback
from torch import nn

from skuad._docstrings import FIT_PARAMS_AND_RETURNS, fill_doc
from skuad.base import _MAX_SCORING_ROWS, BaseDeepDetector, ScaledRows, shared_parameter_docs
from skuad.losses import boundary_guided_loss, residual_constraint_loss
from skuad.nn.flows import CouplingFlow, standard_normal_log_density

# Rows x references x features held at once when drawing training residuals (bounds memory).
_RESIDUAL_CHUNK_VALUES = 1 << 22
# Up to this pool size, draws without replacement use one random key per pool member.
_SMALL_POOL = 64
# Row-reference distances held at once by the nearest-reference search (bounds memory).
_DISTANCE_CHUNK_VALUES = 1 << 20


def sample_without_replacement(n_rows, n_pool, k, rng):
    """``k`` distinct indices in ``[0, n_pool)`` for each of ``n_rows`` rows, shape (n_rows, k)."""
    if k >= n_pool:
        return np.tile(np.arange(n_pool), (n_rows, 1))
    if n_pool <= _SMALL_POOL:
        return np.argsort(rng.random((n_rows, n_pool)), axis=1)[:, :k]
    draws = rng.integers(0, n_pool, size=(n_rows, k))
    while True:
        ordered = np.sort(draws, axis=1)
        repeated = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if not len(repeated):
            return draws
        draws[repeated] = rng.integers(0, n_pool, size=(len(repeated), k))


def nearest_candidate(x, candidates):
    """``j*``, per row i, the Euclidean-nearest of row i's candidates ``candidates[i]``.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features)
    candidates : ndarray of shape (n_rows, n_candidates, n_features)

    Returns
    -------
    nearest : ndarray of shape (n_rows,), dtype int
    """
    squared = ((x[:, None, :] - candidates) ** 2).sum(axis=2)
    return squared.argmin(axis=1)


def draw_training_references(X, groups, is_candidate, n_reference, rng):
    """For every row, the nearest of ``n_reference`` fresh references of its group.

    References are normal rows (``is_candidate``) of the row's own group, drawn without
    replacement and never the row itself: a row matched with itself has a zero residual,
    which no test row ever gets. Groups with fewer candidates use all of them.

    Rows are read a chunk at a time (at most 1,024 rows with their references), so ``X`` may
    be a :class:`~skuad.base.ScaledRows`.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or ScaledRows
    groups : ndarray of shape (n_samples,)
        Integer group code of each row.
    is_candidate : ndarray of shape (n_samples,), dtype bool
        Rows that may serve as references (the normal rows).
    n_reference : int
    rng : numpy.random.Generator

    Returns
    -------
    references : ndarray of shape (n_samples,), dtype int
        The row number of each row's reference; its residual is ``X[i] - X[references[i]]``.
    """
    references = np.empty(len(X), dtype=np.intp)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        in_pool = is_candidate[rows]
        pool = rows[in_pool]
        position = np.cumsum(in_pool) - 1  # a pool member's index in ``pool``
        for members, n_available in ((in_pool, len(pool) - 1), (~in_pool, len(pool))):
            chosen = rows[members]
            if not len(chosen):
                continue
            k = min(n_reference, n_available)
            draws = sample_without_replacement(len(chosen), n_available, k, rng)
            if n_available < len(pool):
                # Skip the row's own slot: indices at or after it move up by one.
                draws = draws + (draws >= position[members][:, None])
            step = max(1, min(_RESIDUAL_CHUNK_VALUES // (k * X.shape[1]), _MAX_SCORING_ROWS // k))
            for start in range(0, len(chosen), step):
                part = chosen[start : start + step]
                candidates = pool[draws[start : start + step]]
                nearest = nearest_candidate(X[part], X[candidates])
                references[part] = candidates[np.arange(len(part)), nearest]
    return references


def nearest_reference_indices(x, references, coincidence_radius=None):
    """Index of each row's Euclidean-nearest reference (torch), in bounded memory.

    A row that coincides with a reference (distance at most that reference's
    ``coincidence_radius``; exactly 0 when None) is matched with the nearest *other*
    reference: a training row that is itself a reference then gets the residual a new row
    would get (leave-one-out), not the residual 0. Only the first coinciding reference is
    skipped, so a row with several copies among the references still has residual 0. With a
    single reference there is nothing else to match: that one is used.

    Distances are computed pair by pair (``torch.cdist`` without its matrix-product
    shortcut), so a row's result never depends on the other rows it is computed with: the
    product form ``|x|^2 - 2 x.r + |r|^2`` goes through BLAS, whose kernels, and hence
    rounding, change with the batch's size and a row's position in it. Ties go to the lowest
    index. Rows and references are processed in chunks of at most ``_DISTANCE_CHUNK_VALUES``
    distances.

    Parameters
    ----------
    x : Tensor of shape (n_rows, n_features)
    references : Tensor of shape (n_references, n_features)
    coincidence_radius : Tensor of shape (n_references,) or None

    Returns
    -------
    indices : Tensor of shape (n_rows,), dtype int64
    """
    n_rows, n_references = len(x), len(references)
    indices = torch.zeros(n_rows, dtype=torch.long, device=x.device)
    if n_references == 1:
        return indices
    reference_step = min(n_references, _DISTANCE_CHUNK_VALUES)
    row_step = max(1, _DISTANCE_CHUNK_VALUES // reference_step)
    for row_start in range(0, n_rows, row_step):
        rows = x[row_start : row_start + row_step]
        best = torch.full((len(rows),), float("inf"), dtype=x.dtype, device=x.device)
        best_index = torch.zeros(len(rows), dtype=torch.long, device=x.device)
        skipped = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
        for start in range(0, n_references, reference_step):
            distances = torch.cdist(
                rows,
                references[start : start + reference_step],
                compute_mode="donot_use_mm_for_euclid_dist",
            )
            if coincidence_radius is None:
                coincide = distances == 0
            else:
                radius = coincidence_radius[start : start + reference_step]
                coincide = distances <= radius[None, :]
            # Skip the first coinciding reference of each row, once over all chunks: one
            # distance per row is rewritten (infinite where skipped), with no boolean indexing
            # and so no host synchronisation per chunk on a GPU.
            to_skip = coincide.any(dim=1) & ~skipped
            first = coincide.to(torch.int8).argmax(dim=1, keepdim=True)
            at_first = distances.gather(1, first)
            distances.scatter_(1, first, at_first.masked_fill(to_skip[:, None], float("inf")))
            skipped |= to_skip
            chunk_best, chunk_index = distances.min(dim=1)
            closer = chunk_best < best  # strict: ties keep the earlier chunk's lower index
            best = torch.where(closer, chunk_best, best)
            best_index = torch.where(closer, chunk_index + start, best_index)
        indices[row_start : row_start + row_step] = best_index
    return indices


def nearest_reference_residuals(x, references, coincidence_radius=None):
    """``x - x*`` with ``x*`` the Euclidean-nearest row of ``references`` (torch).

    See :func:`nearest_reference_indices`: a row that is itself a reference is matched with
    the nearest other one, and each row's result is independent of the other rows.

    Parameters
    ----------
    x : Tensor of shape (n_rows, n_features)
    references : Tensor of shape (n_references, n_features)
    coincidence_radius : Tensor of shape (n_references,) or None
    """
    return x - references[nearest_reference_indices(x, references, coincidence_radius)]


def greedy_k_centre(X, size, chunk_rows=None):
    """Indices of ``size`` rows of ``X`` chosen by greedy k-centre (farthest-point) selection.

    The first centre is the row nearest to the mean; each further one is the row farthest
    from all centres chosen so far (ties: the lowest index). The result covers ``X``: every
    row lies within the final covering radius of a chosen row, at most twice the best
    possible radius for ``size`` centres (Gonzalez 1985); PatchCore (Roth et al., CVPR 2022)
    uses it to thin a memory bank of normal features. Deterministic.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features) or ScaledRows
    size : int
        Number of rows to keep; all rows (in order) when ``size >= n_rows``.
    chunk_rows : int or None, default=None
        Read ``X`` this many rows at a time, once per chosen row (for rows computed on demand,
        such as sparse rows densified by a :class:`~skuad.base.ScaledRows`), instead of
        converting it whole to float64 once. The result is the same.

    Returns
    -------
    indices : ndarray of shape (min(size, n_rows),), in order of selection
    """
    n_rows = len(X)
    if size >= n_rows:
        return np.arange(n_rows)
    # One column is read whole: it is no larger than the distances kept for every row.
    if chunk_rows is None or n_rows <= chunk_rows or X.shape[1] == 1:
        X = np.asarray(X[:], dtype=np.float64)
        mean = X.mean(axis=0)
        chunks = [slice(0, n_rows)]
    else:
        chunks = [slice(start, start + chunk_rows) for start in range(0, n_rows, chunk_rows)]
        # numpy sums the rows of a 2-D array of two or more columns one after another;
        # continuing that sum chunk by chunk gives the mean of the whole bit for bit.
        total = np.zeros((1, X.shape[1]))
        for chunk in chunks:
            rows = np.concatenate([total, np.asarray(X[chunk], dtype=np.float64)])
            total = np.add.reduce(rows, axis=0, keepdims=True)
        mean = total[0] / n_rows

    def read(rows):
        return np.asarray(X[rows], dtype=np.float64)  # no copy for a float64 array

    def squared_distances(centre):
        return np.concatenate([((read(chunk) - centre) ** 2).sum(axis=1) for chunk in chunks])

    chosen = np.empty(size, dtype=np.intp)
    chosen[0] = np.argmin(squared_distances(mean))
    nearest_squared = squared_distances(read(chosen[0]))
    for step in range(1, size):
        chosen[step] = np.argmax(nearest_squared)
        np.minimum(nearest_squared, squared_distances(read(chosen[step])), out=nearest_squared)
    return chosen


class _ResADNetwork(nn.Module):
    """Training network: rows ``[residual | anomaly flag]`` -> residual, constrained, z, log|det|.

    The flow sees the constrained residual detached (paper, Appendix E): constraintor and
    flow are separate gradient graphs.
    """

    def __init__(self, n_features, constraintor, flow):
        super().__init__()
        self.n_features = n_features
        self.constraintor = constraintor
        self.flow = flow

    def forward(self, rows):
        residual = rows[:, : self.n_features]
        constrained = self.constraintor(residual)
        z, log_det = self.flow(constrained.detach())
        return residual, constrained, z, log_det


class _ReferenceScorer(nn.Module):
    """Scoring network: rows -> the flow's ``(z, log|det|)`` for their constrained residual.

    Each row's residual is taken against its own nearest reference, computed independently of
    the other rows of the batch (see :func:`nearest_reference_indices`).
    """

    def __init__(self, constraintor, flow, references, coincidence_radius):
        super().__init__()
        self.constraintor = constraintor
        self.flow = flow
        self.register_buffer("references", references)
        self.register_buffer("coincidence_radius", coincidence_radius)

    def forward(self, x):
        # A short last batch arrives padded with copies of its first row (forward_in_batches).
        # A row's residual depends on that row alone, so the trailing copies get the first
        # row's residual without searching the references again: scoring a few rows then
        # costs a few rows' search, not a whole batch's.
        n_searched = _rows_before_trailing_copies(x)
        residual = nearest_reference_residuals(
            x[:n_searched], self.references, self.coincidence_radius
        )
        if n_searched < len(x):
            residual = torch.cat([residual, residual[:1].expand(len(x) - n_searched, -1)])
        return self.flow(self.constraintor(residual))


def _rows_before_trailing_copies(x):
    """Number of rows of ``x`` before its trailing run of copies of the first row (at least 1)."""
    if not torch.equal(x[-1], x[0]):  # a full batch: nothing to scan
        return len(x)
    differs = (x != x[:1]).any(dim=1)
    if not bool(differs.any()):
        return min(len(x), 1)
    return int(torch.nonzero(differs)[-1]) + 1


class _ResADLoss(nn.Module):
    """Maximum likelihood of normal residuals, plus (with labelled anomalies) the constraintor's
    abnormal-invariant loss and the boundary-guided loss (paper Eq. 6, lambda-weighted).

    The normal boundary ``b_n`` is an exponential moving average of a low quantile of the
    normal rows' per-dimension log-likelihoods, updated on training batches only.
    """

    def __init__(self, use_constraint, use_boundary, lambda_boundary, margin, quantile, momentum):
        super().__init__()
        self.use_constraint = use_constraint
        self.use_boundary = use_boundary
        self.lambda_boundary = lambda_boundary
        self.margin = margin
        self.quantile = quantile
        self.momentum = momentum
        self.register_buffer("normal_boundary", torch.tensor(float("nan")))
        self.register_buffer("boundary_active", torch.tensor(False))

    def forward(self, output, rows):
        residual, constrained, z, log_det = output
        is_anomaly = rows[:, -1] > 0.5
        normal = ~is_anomaly
        log_likelihood = (standard_normal_log_density(z) + log_det) / z.shape[1]
        loss = -log_likelihood[normal].sum() / max(int(normal.sum()), 1)
        if self.use_constraint:
            loss = loss + residual_constraint_loss(constrained, residual, is_anomaly).mean()
        if self.use_boundary and bool(self.boundary_active):
            if self.training and normal.sum() > 1:
                batch_boundary = torch.quantile(log_likelihood[normal].detach(), self.quantile)
                if torch.isnan(self.normal_boundary):
                    self.normal_boundary.copy_(batch_boundary)
                else:
                    self.normal_boundary.mul_(self.momentum).add_(
                        (1 - self.momentum) * batch_boundary
                    )
            if not torch.isnan(self.normal_boundary):
                boundary = boundary_guided_loss(
                    log_likelihood, is_anomaly, self.normal_boundary, self.margin
                )
                loss = loss + self.lambda_boundary * boundary.mean()
        return loss


class _ResidualRows:
    """The rows ``[residual | anomaly flag]`` that the flow trains on, computed on demand.

    Row i's residual is ``X[i] - X[reference_index[i]]`` (float32), so ``X`` may be a
    :class:`~skuad.base.ScaledRows` and a batch densifies only its rows and their
    references. Indexed as an array of shape ``(n_samples, n_features + 1)``, by a slice or
    row numbers.
    """

    def __init__(self, X, is_anomaly):
        self.X = X
        self.is_anomaly = np.asarray(is_anomaly, dtype=np.float32)
        self.reference_index = None
        self.shape = (X.shape[0], X.shape[1] + 1)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index)
        flat = index.ravel()
        rows = np.empty((len(flat), self.shape[1]), dtype=np.float32)
        np.subtract(self.X[flat], self.X[self.reference_index[flat]], out=rows[:, :-1])
        rows[:, -1] = self.is_anomaly[flat]
        return rows.reshape(*index.shape, self.shape[1])

    def fill(self, out):
        """Write every row into the float32 array ``out``, a chunk at a time."""
        for start in range(0, len(self), _MAX_SCORING_ROWS):
            out[start : start + _MAX_SCORING_ROWS] = self[start : start + _MAX_SCORING_ROWS]


class _ReferenceRedraw(Callback):
    """Before every epoch, switch the boundary term on once the warm-up epochs are over, and
    (few-shot references, ``redraw``) give each training row a fresh reference draw, and so a
    new residual: in ``residual_rows``, and written in place into ``dense_rows``, the array
    skorch trains on for dense input (None for sparse input, trained on ``residual_rows``).

    With a reference pool the residuals are fixed and set before training.
    """

    def __init__(
        self, residual_rows, dense_rows, redraw, groups, is_normal, n_reference, rng, warmup_epochs
    ):
        self.residual_rows = residual_rows
        self.dense_rows = dense_rows
        self.redraw = redraw
        self.groups = groups
        self.is_normal = is_normal
        self.n_reference = n_reference
        self.rng = rng
        self.warmup_epochs = warmup_epochs

    def on_epoch_begin(self, net, **kwargs):
        if self.redraw:
            self.residual_rows.reference_index = draw_training_references(
                self.residual_rows.X, self.groups, self.is_normal, self.n_reference, self.rng
            )
            if self.dense_rows is not None:
                self.residual_rows.fill(self.dense_rows)
        net.criterion_.boundary_active.fill_(len(net.history) > self.warmup_epochs)

    def on_train_end(self, net, **kwargs):
        # The fitted net keeps its callbacks: do not let it carry (and pickle) the training data.
        self.residual_rows = self.dense_rows = self.groups = self.is_normal = None


@shared_parameter_docs
class ResADDetector(BaseDeepDetector):
    """ResAD: an anomaly detector that generalises to new classes from a few normal references.

    Each row ``x`` is turned into a residual ``x - x*``, with ``x*`` its nearest neighbour
    among a few normal reference rows of the same class. Residuals of normal rows vary far
    less across classes than the rows themselves, so a density model of residuals learnt on
    some classes carries over to classes never seen in training: give it a handful of
    normal rows of the new class as references (``reference`` or :meth:`set_reference`), no
    retraining needed (Yao et al., "ResAD: A Simple Framework for Class Generalizable Anomaly
    Detection", NeurIPS 2024). A shallow Feature Constraintor pulls normal residuals towards
    the origin while keeping labelled anomalies where they are, and a RealNVP-style normalizing
    flow estimates the residual density. The normality score is the per-dimension
    log-likelihood of a row's residual.

    Fitted on the normal rows of one class only (no ``groups``, no ``reference``), it scores
    each row against the nearest of *all* the normal training rows (a coreset of them when
    there are more than ``max_references``), like a nearest-neighbour detector whose distance
    is replaced by the learnt density of residuals.

    For feature vectors: tabular rows or pre-extracted embeddings (one per image).

    Parameters
    ----------
    reference_pool : {'auto', 'few-shot', 'training-rows'}, default='auto'
        Which references residuals are taken against, in training and in scoring.
        ``'few-shot'`` (the paper): ``n_reference`` references per row, redrawn from the row's
        own group every epoch; scored against ``reference`` or, without it, ``n_reference``
        normal training rows per group. ``'training-rows'``: the normal training rows of each
        group, thinned to at most ``max_references`` by greedy k-centre selection; each
        training row's residual is taken against the nearest *other* member of its group's
        pool (leave-one-out), so training sees the residuals that scoring against the pool
        gives. ``'auto'``: ``'few-shot'`` when ``reference`` is given or ``groups`` holds
        several classes (the class-generalisation setting, where a new class comes with a few
        references), ``'training-rows'`` otherwise. :meth:`set_reference` works in both.
    max_references : int >= 2, default=10_000
        With ``'training-rows'``, the most references kept per group; larger groups are
        thinned by greedy k-centre selection (as PatchCore thins its memory bank). Scoring a
        row costs ``n_references x n_features`` operations and the fitted detector stores the
        references.
    n_reference : int, default=4
        ``K``, the number of normal references (shots) in the ``'few-shot'`` regime. In
        training, every row gets ``K`` references of its own group, redrawn every epoch (never
        itself); without ``reference`` the fallback references are ``K`` normal training rows
        per group, pooled: a row is matched with the nearest of them, whichever group it
        belongs to.
    reference : array-like of shape (n_references, n_features) or None, default=None
        Normal rows of the class to be scored (any number, typically ``K``). Not a fit
        parameter, because it is not aligned with the training rows that cross-validation
        slices. ``None``: references are drawn from the training data. Can be changed after
        fitting with :meth:`set_reference`.
    feature_scaling : {'global', 'per-feature'}, default='global'
        Standardisation before matching. ``'global'``: one mean and one scale for all
        features, which keeps the relative sizes of the features (distances between
        embeddings stay as the backbone made them). ``'per-feature'``: each feature to zero
        mean and unit variance on the training rows (for tables whose columns have
        unrelated units).
    use_anomaly_labels : bool, default=False
        Train with labelled anomalies given as ``y`` (1 = anomaly, 0 = normal), as the paper
        does. Off by default so that ``y`` passed by ``GridSearchCV`` or ``cross_validate``
        for scoring is ignored, as every scikit-learn outlier detector ignores it.
    constraintor : {'auto', 'on', 'off'}, default='auto'
        The Feature Constraintor. ``'auto'``: on when labelled anomalies are used, off
        otherwise — with normal rows only its loss is minimised by mapping everything to the
        origin, which destroys the information the flow needs. On image embeddings of new
        classes, labels with ``'off'`` (the labels then shape the flow only) did best in the
        user guide's benchmark.
    constraintor_width : int or None, default=None
        ``None``: one linear layer plus batch normalisation, as the paper's single
        Conv-BN layer. An int: a hidden layer of that width (Linear-BN-ReLU-Linear).
    n_coupling_blocks : int, default=8
        Depth of the flow: affine coupling blocks, each followed by a learnable global affine
        map and a fixed random orthogonal mixing.
    hidden_ratio : float, default=2.0
        Width of each coupling subnet's hidden layer, as a multiple of its input width.
    clamp : float, default=0.1
        Soft bound on the coupling log-scales. The authors' code uses 1.9; a tighter bound
        limits how far the flow can shrink residuals unlike any seen in training, which would
        otherwise give them high likelihoods. 0.1 was chosen on seen categories only of the
        MVTec-AD embeddings and checked not to hurt on the classical tables (see the user
        guide).
    lambda_boundary : float, default=1.0
        Weight of the boundary-guided loss (labelled anomalies only).
    margin : float, default=0.1
        ``tau``: anomalies are pushed below the normal boundary minus this margin
        (in per-dimension log-likelihood).
    boundary_quantile : float in (0, 1), default=0.05
        The normal boundary is this quantile of the normal rows' log-likelihoods.
    boundary_momentum : float in [0, 1), default=0.9
        Exponential moving average of the boundary over training batches.
    warmup_fraction : float in [0, 1), default=0.1
        Fraction of the epochs trained without the boundary-guided loss.
    contamination : 'auto' or float in (0, 0.5], default='auto'
        Expected fraction of outliers. ``offset_`` is that percentile of the training scores
        (10 % for ``'auto'``), computed against the references drawn from the training data,
        a row that is itself a reference being matched with the nearest other one.
    image_shape : None
        Must stay None: ResAD works on feature vectors (extract image embeddings first).
    epochs : int, default=20
        Training epochs.
    batch_size : int, default=256
        Training batch size.
    lr : float, default=1e-3
        Adam learning rate (the paper's 1e-5 suits its millions of patch vectors per epoch).
    weight_decay : float, default=5e-4
        Weight decay, as in the paper.
    optimizer : {'adam', 'adamw', 'sgd'}, default='adam'
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when their loss stops improving.
    %(shared_parameters)s

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` holds the constraintor and the flow.
    reference_ : ndarray of shape (n_references, n_features)
        The references scores are computed against, in input units.
    reference_pool_ : {'few-shot', 'training-rows'}
        The regime ``reference_pool`` resolved to.
    reference_group_ : ndarray of shape (n_references,)
        Index into ``groups_`` of each reference; all 0 for user-given references.
    groups_ : ndarray
        The training groups (a single ``0`` without ``groups``).
    n_anomalies_used_ : int
        Number of labelled anomalies trained with.
    constraintor_active_ : bool
        Whether the Feature Constraintor was trained and is applied.
    normal_boundary_ : float or None
        The final normal boundary ``b_n`` of the boundary-guided loss.
    scaler_ : sklearn.preprocessing.StandardScaler
        Standardisation fitted on the training rows, applied to every row and reference.
    %(shared_attributes)s

    See Also
    --------
    skuad.DeepSVDD : One-class detector trained on the target class itself.

    Notes
    -----
    ``groups`` do not reach ``fit`` inside ``GridSearchCV`` unless metadata routing is on:
    ``sklearn.set_config(enable_metadata_routing=True)`` and
    ``ResADDetector().set_fit_request(groups=True)``.

    After :meth:`set_reference`, ``offset_`` keeps the threshold calibrated on the training
    classes unless normal rows of the new class are passed as ``X_calib``.

    A row equal to one of the references (up to float32 rounding) is matched with the
    nearest *other* reference. Scores of the training rows are therefore leave-one-out
    scores, like those of new rows, and ``offset_`` calibrated on them holds for new data.
    With ``'training-rows'`` the fitted detector stores up to ``max_references`` normal
    training rows per group, as nearest-neighbour detectors store their training data.

    References
    ----------
    .. [1] Yao, X., Chen, Z., Gao, C., Zhai, G., Zhang, C. "ResAD: A Simple Framework for Class
       Generalizable Anomaly Detection", NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from skuad import ResADDetector
    >>> rng = np.random.RandomState(0)
    >>> centres = rng.normal(scale=5, size=(4, 3))
    >>> X = np.vstack([c + rng.normal(size=(50, 3)) for c in centres[:3]])
    >>> groups = np.repeat([0, 1, 2], 50)
    >>> detector = ResADDetector(epochs=5, random_state=0).fit(X, groups=groups)
    >>> new_class = centres[3] + rng.normal(size=(4, 3))
    >>> scores = detector.set_reference(new_class).score_samples(
    ...     [centres[3], centres[3] + 6.0])
    >>> bool(scores[0] > scores[1])
    True
    """

    # Residuals between whole images' pixels carry no class-independent structure: ResAD
    # takes feature vectors (image embeddings, see skuad.features.ImageEmbedder).
    takes_images = False

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "reference_pool": [StrOptions({"auto", "few-shot", "training-rows"})],
        "max_references": [Interval(Integral, 2, None, closed="left")],
        "n_reference": [Interval(Integral, 1, None, closed="left")],
        "feature_scaling": [StrOptions({"global", "per-feature"})],
        "reference": ["array-like", None],
        "use_anomaly_labels": ["boolean"],
        "constraintor": [StrOptions({"auto", "on", "off"})],
        "constraintor_width": [Interval(Integral, 1, None, closed="left"), None],
        "n_coupling_blocks": [Interval(Integral, 1, None, closed="left")],
        "hidden_ratio": [Interval(Real, 0, None, closed="neither")],
        "clamp": [Interval(Real, 0, None, closed="neither")],
        "lambda_boundary": [Interval(Real, 0, None, closed="left")],
        "margin": [Interval(Real, 0, None, closed="left")],
        "boundary_quantile": [Interval(Real, 0, 1, closed="neither")],
        "boundary_momentum": [Interval(Real, 0, 1, closed="left")],
        "warmup_fraction": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        *,
        reference_pool="auto",
        max_references=10_000,
        n_reference=4,
        reference=None,
        feature_scaling="global",
        use_anomaly_labels=False,
        constraintor="auto",
        constraintor_width=None,
        n_coupling_blocks=8,
        hidden_ratio=2.0,
        clamp=0.1,
        lambda_boundary=1.0,
        margin=0.1,
        boundary_quantile=0.05,
        boundary_momentum=0.9,
        warmup_fraction=0.1,
        contamination="auto",
        image_shape=None,
        epochs=20,
        batch_size=256,
        lr=1e-3,
        weight_decay=5e-4,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        device="auto",
        working_memory=64,
        callbacks=None,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            contamination=contamination,
            image_shape=image_shape,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            device=device,
            working_memory=working_memory,
            callbacks=callbacks,
            random_state=random_state,
            verbose=verbose,
        )
        self.reference_pool = reference_pool
        self.max_references = max_references
        self.n_reference = n_reference
        self.reference = reference
        self.feature_scaling = feature_scaling
        self.use_anomaly_labels = use_anomaly_labels
        self.constraintor = constraintor
        self.constraintor_width = constraintor_width
        self.n_coupling_blocks = n_coupling_blocks
        self.hidden_ratio = hidden_ratio
        self.clamp = clamp
        self.lambda_boundary = lambda_boundary
        self.margin = margin
        self.boundary_quantile = boundary_quantile
        self.boundary_momentum = boundary_momentum
        self.warmup_fraction = warmup_fraction

    # ------------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    @fill_doc(fit_params_and_returns=FIT_PARAMS_AND_RETURNS)
    def fit(self, X, y=None, groups=None, **fit_params):
        """Fit on the training rows of one or several known classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows (normal, plus labelled anomalies with ``use_anomaly_labels=True``).
        y : array-like of shape (n_samples,) or None
            Ignored unless ``use_anomaly_labels=True``; then 1 (or True) marks a labelled
            anomaly and 0 a normal row. scikit-learn's -1/+1 encoding is rejected.
        groups : array-like of shape (n_samples,) or None
            The class of each training row; references are always drawn from a row's own
            class. ``None``: all rows form one class.
        %(fit_params_and_returns)s
        """
        self._refuse_fit_params(fit_params)
        return self._fit(X, y=y, groups=groups)

    def _calibrate(self, train_scores, row_statistics):
        if self.reference is not None:
            # offset_ is calibrated on these scores, taken against the references drawn from
            # the training rows (the training classes); the given ones score from now on.
            self._use_given_reference(self._validate_input(self.reference, reset=False))
        return train_scores

    def set_reference(self, X_ref, X_calib=None):
        """Score against new references (normal rows of the class to test), without retraining.

        Parameters
        ----------
        X_ref : array-like of shape (n_references, n_features)
            Normal rows of the target class, e.g. ``n_reference`` of them.
        X_calib : array-like of shape (n_calib, n_features) or None, default=None
            Normal rows of the target class to recalibrate ``offset_`` on (as the
            ``contamination`` percentile of their scores). ``None`` keeps ``offset_``.

        Returns
        -------
        self : object
            The detector, now scoring against ``X_ref``.
        """
        check_is_fitted(self)
        X_ref = self._validate_input(X_ref, reset=False)
        if X_calib is not None:
            X_calib = self._validate_input(X_calib, reset=False)
        self._use_given_reference(X_ref)
        if X_calib is not None:
            self.offset_ = self._offset_from(self._score_rows(X_calib))
        return self

    # ------------------------------------------------------------------ the method
    def _use_given_reference(self, reference):
        """Score against the user's validated ``reference`` rows, all of one class."""
        self._use_reference(reference, np.zeros(reference.shape[0], dtype=int))

    def _use_reference(self, reference, reference_group, scaled=None):
        """Score against ``reference`` (input units); ``scaled``: its known scaled rows."""
        # Kept dense, whatever the input's format: distances to them are computed densely.
        reference = reference.toarray() if sp.issparse(reference) else reference
        self.reference_ = np.asarray(reference, dtype=np.float64)
        self.reference_group_ = np.asarray(reference_group, dtype=int)
        self._reference_scaled = self._scale(self.reference_) if scaled is None else scaled

    @property
    def _scoring_module(self):
        network = self.net_.module_
        device = next(network.flow.parameters()).device
        return _ReferenceScorer(
            network.constraintor,
            network.flow,
            torch.as_tensor(self._reference_scaled, device=device),
            torch.as_tensor(self._coincidence_radius(self._reference_scaled), device=device),
        )

    def _coincidence_radius(self, scaled_references):
        """Per reference, the distance (scaled units) within which a row is that reference.

        A row equal to a reference in input units reaches the network through float32
        rounding of its input and of its scaled values: the two differ by at most about
        ``eps * (|row| / scale + |scaled row|)``, ``|row| / scale`` being the distance from
        the scaled origin of the input units. Rows that close count as the reference itself,
        so float32 and float64 input score alike.
        """
        scaled_references = np.asarray(scaled_references, dtype=np.float64)
        origin = self._scale(np.zeros((1, scaled_references.shape[1])))
        size = np.linalg.norm(scaled_references - origin, axis=1)
        size += np.linalg.norm(scaled_references, axis=1)
        return (4 * np.finfo(np.float32).eps * size).astype(np.float32)

    def _score_batch(self, output, x):
        # The per-dimension log-likelihood of the residual under the flow.
        z, log_det = output
        return (standard_normal_log_density(z) + log_det) / x.shape[1]

    def _scales_globally(self):
        return self.feature_scaling == "global"

    def _fit_network(self, X, seed, device, y=None, groups=None):
        n_samples, n_features = X.shape
        group_codes = self._validate_groups(groups, n_samples)
        is_anomaly = self._validate_anomaly_labels(y, n_samples)
        is_normal = ~is_anomaly
        for code, name in enumerate(self.groups_.tolist()):
            n_normal = int(np.sum(is_normal & (group_codes == code)))
            if n_normal < 2:
                raise ValueError(
                    f"Training group {name!r} has {n_normal} normal row(s); every group needs "
                    "at least 2, since a row's references are other normal rows of its group."
                )
        if self.reference is not None:
            # Refuse a bad reference before training; fit applies it after calibration.
            self._validate_input(self.reference, reset=False)
        pool_regime = self.reference_pool == "training-rows" or (
            self.reference_pool == "auto" and self.reference is None and len(self.groups_) == 1
        )
        self.reference_pool_ = "training-rows" if pool_regime else "few-shot"

        rng = np.random.default_rng(seed)
        # The references drawn from the training data, per group: the pool (normal rows,
        # thinned by k-centre selection), known before training, or (few-shot) n_reference
        # random normal rows, drawn after training.
        # Sparse input (ScaledRows) is read a chunk at a time, never densified whole.
        sparse = isinstance(X, ScaledRows)
        if pool_regime:
            references = [
                np.sort(
                    candidates[
                        greedy_k_centre(
                            X.subset(candidates) if sparse else X[candidates],
                            self.max_references,
                            chunk_rows=_MAX_SCORING_ROWS if sparse else None,
                        )
                    ]
                )
                for candidates in self._normal_rows_per_group(group_codes, is_normal)
            ]

        self.n_anomalies_used_ = int(is_anomaly.sum())
        labelled = self.n_anomalies_used_ > 0
        self.constraintor_active_ = self.constraintor == "on" or (
            self.constraintor == "auto" and labelled
        )
        network = _ResADNetwork(
            n_features,
            self._build_constraintor(n_features) if self.constraintor_active_ else nn.Identity(),
            CouplingFlow(
                n_features,
                n_blocks=self.n_coupling_blocks,
                hidden_ratio=self.hidden_ratio,
                clamp=self.clamp,
                seed=seed,
            ),
        )
        criterion = _ResADLoss(
            use_constraint=self.constraintor_active_,
            use_boundary=labelled and self.lambda_boundary > 0,
            lambda_boundary=self.lambda_boundary,
            margin=self.margin,
            quantile=self.boundary_quantile,
            momentum=self.boundary_momentum,
        )
        residual_rows = _ResidualRows(X, is_anomaly)
        if pool_regime:
            # Fixed residuals: every row against its group's pool; a pool member is matched
            # with the nearest other member (leave-one-out).
            residual_rows.reference_index = np.empty(n_samples, dtype=np.intp)
            for code, pool in enumerate(references):
                pool_rows = X[pool]
                pool_tensor = torch.as_tensor(pool_rows)
                radius = torch.as_tensor(self._coincidence_radius(pool_rows))
                members = np.flatnonzero(group_codes == code)
                for start in range(0, len(members), _MAX_SCORING_ROWS):
                    part = members[start : start + _MAX_SCORING_ROWS]
                    nearest = nearest_reference_indices(
                        torch.as_tensor(X[part]), pool_tensor, radius
                    )
                    residual_rows.reference_index[part] = pool[nearest.numpy()]
        # Dense input trains on the residuals written into one array, as fast to index as any
        # training set; sparse input on rows computed a batch at a time.
        dense_rows = None
        if not sparse:
            dense_rows = np.zeros((n_samples, n_features + 1), dtype=np.float32)
            dense_rows[:, -1] = is_anomaly
            if pool_regime:
                residual_rows.fill(dense_rows)
        redraw = _ReferenceRedraw(
            residual_rows,
            dense_rows,
            not pool_regime,
            group_codes,
            is_normal,
            self.n_reference,
            rng,
            warmup_epochs=int(self.warmup_fraction * self.epochs),
        )
        self.net_ = self._train(
            network,
            criterion,
            residual_rows if sparse else dense_rows,
            seed,
            device,
            stage="flow",
            callbacks=[("reference_redraw", redraw)],
        )
        boundary = float(self.net_.criterion_.normal_boundary)
        self.normal_boundary_ = None if np.isnan(boundary) else boundary

        if not pool_regime:
            # Few-shot fallback: n_reference normal rows per group, drawn once after training.
            references = []
            for candidates in self._normal_rows_per_group(group_codes, is_normal):
                k = min(self.n_reference, len(candidates))
                references.append(np.sort(rng.choice(candidates, size=k, replace=False)))
        # Scored against these (a training row that is a reference is matched with the
        # nearest other one), the training rows calibrate offset_.
        reference_rows = np.concatenate(references)
        scaled_references = X[reference_rows]
        self._use_reference(
            self._unscale(scaled_references), group_codes[reference_rows], scaled_references
        )

    def _normal_rows_per_group(self, group_codes, is_normal):
        return [
            np.flatnonzero(is_normal & (group_codes == code)) for code in range(len(self.groups_))
        ]

    def _unscale(self, scaled):
        """Input units of scaled rows (inverse of ``_scale``), float64."""
        scaled = np.asarray(scaled, dtype=np.float64)
        return self.scaler_.inverse_transform(self._scaler_view(scaled)).reshape(scaled.shape)

    def _build_constraintor(self, n_features):
        if self.constraintor_width is None:
            linear = nn.Linear(n_features, n_features)
            # Start at the identity map: anomalies are to stay where they are.
            with torch.no_grad():
                linear.weight.copy_(torch.eye(n_features))
                linear.bias.zero_()
            return nn.Sequential(linear, nn.BatchNorm1d(n_features))
        width = self.constraintor_width
        return nn.Sequential(
            nn.Linear(n_features, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, n_features),
        )

    def _validate_groups(self, groups, n_samples):
        if groups is None:
            self.groups_ = np.array([0])
            return np.zeros(n_samples, dtype=int)
        groups = _one_per_row(groups, "groups", "class label", n_samples)
        self.groups_, codes = np.unique(groups, return_inverse=True)
        return codes

    def _validate_anomaly_labels(self, y, n_samples):
        if not self.use_anomaly_labels or y is None:
            return np.zeros(n_samples, dtype=bool)
        y = _one_per_row(y, "y", "label", n_samples)
        if y.dtype == bool:
            return y.copy()
        values = np.unique(y)
        if not np.issubdtype(y.dtype, np.number) or not np.isin(values, (0, 1)).all():
            raise ValueError(
                "With use_anomaly_labels=True, y must be 1 (or True) for labelled anomalies and "
                f"0 for normal rows; got the values {values[:10].tolist()}. (scikit-learn's "
                "-1/+1 outlier encoding is not accepted here: -1 would be ambiguous.)"
            )
        return y == 1


def _one_per_row(values, name, what, n_samples):
    """``values`` as a 1-d array; a ``ValueError`` unless it holds ``n_samples`` entries."""
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n_samples:
        raise ValueError(
            f"{name} must hold one {what} per training row: expected shape ({n_samples},), "
            f"got {values.shape}."
        )
    return values
