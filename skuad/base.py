"""BaseDeepDetector: the scikit-learn outlier contract that every skuad detector shares.

``fit`` = validate -> scale -> seed -> train (the detector's own ``_fit_network``) -> calibrate
``offset_``; ``score_samples`` = validate -> batched forward pass -> the detector's own
``_score_batch``. A detector supplies only its networks, its loss and its score.
"""

import copy
import math
import textwrap
import warnings
from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import get_config
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from skuad._doc_link import DocLinkMixin
from skuad._docstrings import FIT_PARAMS_AND_RETURNS, fill_doc, rows_parameters
from skuad._training import (
    OPTIMIZERS,
    TrainingOptions,
    forward_bytes_per_row,
    forward_in_batches,
    resolve_device,
    seeded,
    train_module,
)


class SkuadVersionWarning(UserWarning):
    """A detector is being loaded under another skuad version than the one that saved it."""


# Scoring batches are sized by memory (``working_memory``), up to this many rows: beyond it
# the per-batch overhead is amortised, and larger batches fall out of the CPU caches and
# were measured slower (benchmarks/bench_speed.py).
_MAX_SCORING_ROWS = 1024


_SHARED_PARAMETERS_DOC = """\
    validation_fraction : float in (0, 1), default=0.1
        Fraction of the training rows held out for early stopping.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Relative improvement of the validation loss that early stopping counts as progress.
    device : str, default='auto'
        ``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
    working_memory : float or None, default=64
        Memory budget, in MiB, of one scoring batch: ``score_samples`` and the methods built
        on it send as many rows at a time as the network's activations for them fit in (at
        most 1,024), so memory stays bounded whatever the number of rows and whether the
        network is a small MLP or a convolutional net on large images. None takes
        scikit-learn's ``working_memory`` setting (``sklearn.set_config``). Scores depend on
        it only through float32 rounding (around 1e-7 relative), never on which or how many
        other rows are scored in the same call.
    callbacks : list of skorch callbacks or None, default=None
        skorch callbacks (instances, or ``(name, callback)`` pairs) added to every training
        stage, each stage with its own fresh copies: checkpoints, learning-rate schedules,
        early stopping on a metric of your own, logging. A callback that ends training the
        skorch way (as ``skorch.callbacks.EarlyStopping`` does) ends only its stage; the fit
        goes on. Each stage's epochs are recorded in ``history_``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and every other random draw of the fit. On
        CPU, a fixed value gives identical fits.
    verbose : int, default=0
        Print per-epoch losses and show a progress bar when positive.
"""


_SHARED_ATTRIBUTES_DOC = """\
    history_ : dict of str to skorch.history.History
        Per training stage (named as in the user guide), skorch's record of every epoch:
        ``history_[stage][:, 'train_loss']`` is the stage's loss curve.
    n_iter_ : dict of str to int
        Epochs run by each training stage (fewer than asked when a stage stopped early).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` had string column names.
"""


def _transform_to_float32(scaler, rows):
    """``scaler.transform(rows).astype(np.float32)`` for rows that were validated already,
    with the same arithmetic as scikit-learn's (so the same bits), for the two scalers skuad
    fits.

    Scoring scales one batch at a time, and ``transform``'s own input checks (data-frame
    detection, a finite check) cost more than the scaling itself on a small network. The
    last operation writes straight into the float32 result (NumPy computes it in the input's
    precision and rounds once on the way out, as the later cast would), which saves the
    full-precision copy and one pass over it.
    """
    out = np.empty(rows.shape, dtype=np.float32)
    if type(scaler) is StandardScaler and scaler.with_mean and scaler.with_std:
        centred = np.subtract(rows, scaler.mean_.astype(rows.dtype))
        return np.divide(centred, scaler.scale_.astype(rows.dtype), out=out, casting="same_kind")
    if type(scaler) is MinMaxScaler and not scaler.clip:
        stretched = np.multiply(rows, scaler.scale_, out=np.empty_like(rows), casting="same_kind")
        return np.add(stretched, scaler.min_, out=out, casting="same_kind")
    out[...] = scaler.transform(rows)
    return out


class ScaledRows:
    """Rows of a sparse matrix as the network sees them, densified only when asked for.

    ``rows[index]``, with ``index`` a slice or an array of row numbers (of any shape), returns
    those rows scaled by ``transform`` (a detector's ``_network_input``) as a dense float32
    array of shape ``index.shape + (n_features,)``, computed from those rows alone; scaling
    is elementwise, so the values are bit for bit those of the same rows of the scaled
    whole. Fitting on sparse input hands this to the networks instead of the dense scaled
    training set, so that a fit holds only the rows it is working on, as scoring does.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, X, transform):
        self.X = X
        self.transform = transform
        self.shape = X.shape

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.transform(self.X[index])
        index = np.asarray(index)
        return self.transform(self.X[index.ravel()]).reshape(*index.shape, self.shape[1])

    def subset(self, index):
        """The rows ``index`` (an array of row numbers), still densified only when read."""
        return ScaledRows(self.X[index], self.transform)


def seed_from(random_state):
    """The one int seed of a fit (for :func:`~skuad._training.seeded`), drawn from a
    scikit-learn ``random_state``."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _as_float64(output):
    """A network output (a tensor or a tuple of tensors) in float64."""
    if isinstance(output, tuple):
        return tuple(part.double() for part in output)
    return output.double()


def shared_parameter_docs(cls):
    """Class decorator: put the parameters every detector shares into its docstring.

    The detector's docstring holds the line ``%(shared_parameters)s`` where they belong, so
    they are written once, here, and read the same on every detector's page; the same for
    the fitted attributes every detector has, at ``%(shared_attributes)s``.
    """
    return fill_doc(
        shared_parameters=textwrap.dedent(_SHARED_PARAMETERS_DOC),
        shared_attributes=textwrap.dedent(_SHARED_ATTRIBUTES_DOC),
    )(cls)


class PositiveInts(Options):
    """Parameter constraint: a non-empty tuple or list of positive ints (layer widths).

    A kind of scikit-learn's ``Options`` constraint only so that its parameter validation
    accepts it; it checks the value itself rather than membership of a set.
    """

    def __init__(self):
        super().__init__(object, set())

    def is_satisfied_by(self, val):
        return (
            isinstance(val, (tuple, list))
            and len(val) > 0
            and all(isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in val)
        )

    def __str__(self):
        return "a non-empty tuple or list of positive ints"


class ImageShape(PositiveInts):
    """Parameter constraint: ``(channels, height, width)``, three positive ints."""

    def is_satisfied_by(self, val):
        return PositiveInts().is_satisfied_by(val) and len(val) == 3

    def __str__(self):
        return "a tuple (channels, height, width) of three positive ints"


# Channel counts of common images: a last axis of this size after a larger first one is
# almost certainly (height, width, channels) -- numpy's and PIL's order, not skuad's.
_CHANNEL_COUNTS = (1, 3, 4)


class BaseDeepDetector(DocLinkMixin, OutlierMixin, BaseEstimator):
    """Base class for skuad's deep outlier detectors. Not meant to be used directly.

    Subclasses implement ``_fit_network(X, seed, device)`` (train on scaled float32 rows and
    set the fitted networks; for sparse input ``X`` is a :class:`ScaledRows`, to be read a
    batch at a time, never whole) and ``_score_batch(output, x)`` (per-sample scores, higher
    = more normal, from the scoring module's output on the scaled input batch ``x``). They
    may override ``_auto_offset`` to give ``contamination='auto'`` a method-specific
    threshold.
    """

    _parameter_constraints: dict = {
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "image_shape": [ImageShape(), None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "device": [str],
        "working_memory": [Interval(Real, 0, None, closed="neither"), None],
        "callbacks": [list, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # Whether ``image_shape`` may be given (the detector has convolutional networks).
    takes_images = True

    # Fraction of training points that contamination='auto' flags when a method has no
    # threshold of its own (as IsolationForest and LOF have fixed 'auto' offsets).
    _AUTO_CONTAMINATION = 0.1

    @abstractmethod
    def __init__(
        self,
        *,
        contamination,
        image_shape,
        epochs,
        batch_size,
        lr,
        weight_decay,
        optimizer,
        early_stopping,
        validation_fraction,
        n_iter_no_change,
        tol,
        device,
        working_memory,
        callbacks,
        random_state,
        verbose,
    ):
        self.contamination = contamination
        self.image_shape = image_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.working_memory = working_memory
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ the detector's idea
    @abstractmethod
    def _fit_network(self, X, seed, device):
        """Train on scaled float32 rows ``X`` (an array, or a :class:`ScaledRows` for sparse
        input) and set the fitted network attributes."""

    @abstractmethod
    def _score_batch(self, output, x):
        """Per-sample scores (higher = more normal) from ``module(x)`` and scaled batch ``x``.

        The output arrives in float64, ``x`` as the network saw it (float32); a score that
        computes with ``x`` casts it to float64 too.
        """

    @property
    def _scoring_module(self):
        """The torch module whose output ``_score_batch`` receives."""
        return self.net_.module_

    def _check_params(self):
        """Checks that involve several parameters, run before anything is fitted.

        Single-parameter constraints live in ``_parameter_constraints``; a detector that adds
        a cross-parameter rule extends this method.
        """
        shape = self.image_shape
        if shape is not None and not self.takes_images:
            raise ValueError(
                f"{type(self).__name__} works on feature vectors; image_shape must be None. "
                "Turn each image into one embedding first (for example with "
                "skuad.features.ImageEmbedder) and pass those rows."
            )
        if shape is not None and shape[2] in _CHANNEL_COUNTS and shape[0] > max(_CHANNEL_COUNTS):
            raise ValueError(
                f"image_shape={tuple(shape)} looks like (height, width, channels); skuad "
                "expects (channels, height, width), with each row the image flattened in that "
                f"order. Pass image_shape={(shape[2], shape[0], shape[1])} and rows flattened "
                "from arrays of that shape (for example images.transpose(0, 3, 1, 2).reshape("
                "len(images), -1))."
            )

    # The training pass that sets ``offset_`` can also compute one number per row for
    # ``_calibrate``: a function ``(output, x) -> per-row values`` (called as
    # ``_score_batch`` is), or None.
    _training_row_statistic = None

    def _calibrate(self, train_scores, row_statistics):
        """Set attributes derived from the training rows' scores; return the final scores.

        Called once per fit, inside its rollback, with the training rows' scores and (when
        ``_training_row_statistic`` is set) their per-row statistics; the returned scores
        set ``offset_``.
        """
        return train_scores

    def _offset_from(self, scores):
        """``offset_`` from normal rows' scores: the ``contamination`` percentile, or the
        method's own threshold for ``'auto'``."""
        if self.contamination == "auto":
            return self._auto_offset(scores)
        return float(np.percentile(scores, 100.0 * self.contamination))

    def _auto_offset(self, train_scores):
        """``offset_`` for ``contamination='auto'``."""
        return float(np.percentile(train_scores, 100.0 * self._AUTO_CONTAMINATION))

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    @fill_doc(fit_params_and_returns=FIT_PARAMS_AND_RETURNS)
    def fit(self, X, y=None, **fit_params):
        """Fit the detector on training rows ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. With ``image_shape=(C, H, W)`` each row is a flattened image of
            ``C * H * W`` values.
        y : Ignored
            Not used, present for API consistency (scikit-learn passes it in grid search).
        %(fit_params_and_returns)s
        """
        self._refuse_fit_params(fit_params)
        return self._fit(X)

    def _refuse_fit_params(self, fit_params):
        if "sample_weight" in fit_params:
            raise ValueError(
                f"{type(self).__name__}.fit does not support sample_weight: its networks train "
                "on unweighted mini-batches. Repeat rows to give them more weight, or leave "
                "rows out."
            )
        if fit_params:
            raise ValueError(
                f"{type(self).__name__}.fit got unexpected argument(s) "
                f"{', '.join(sorted(fit_params))}."
            )

    def _fit(self, X, **fit_args):
        """check -> validate -> scale -> seed -> train -> calibrate; returns ``self``.

        ``fit_args`` (for example training groups or labels, already named by a subclass's
        own ``fit``) are passed on to ``_fit_network`` unchanged.
        """
        previous_state = self.__dict__.copy()
        try:
            self._check_params()
            X = self._validate_input(X, reset=True)
            device = resolve_device(self.device)
            seed = seed_from(self.random_state)
            self.scaler_ = self._fit_scaler(X)
            self.history_ = {}
            with seeded(seed):
                self._fit_network(self._training_rows(X), seed, device, **fit_args)
            self.n_iter_ = {stage: len(history) for stage, history in self.history_.items()}
            train_scores, row_statistics = self._scoring_pass(X, self._training_row_statistic)
            self.offset_ = self._offset_from(self._calibrate(train_scores, row_statistics))
        except BaseException:
            # A failed or interrupted fit leaves the detector as it was before, never half-set.
            self.__dict__.clear()
            self.__dict__.update(previous_state)
            raise
        return self

    def _training_rows(self, X):
        """The scaled float32 rows the networks train on: one array for dense ``X``; for
        sparse ``X`` a :class:`ScaledRows`, densified one batch at a time wherever it is
        read (and checked by ``_network_input`` as it is), so that memory stays bounded."""
        if not sp.issparse(X):
            return self._network_input(X)
        return ScaledRows(X, self._network_input)

    def _training_options(self, **overrides):
        """The estimator's training hyper-parameters, with per-stage overrides."""
        options = TrainingOptions(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            early_stopping=self.early_stopping,
            validation_fraction=self.validation_fraction,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            verbose=self.verbose,
        )
        return TrainingOptions(**{**options.__dict__, **overrides})

    def _train(
        self, module, criterion, X, seed, device, *, stage, callbacks=(), y=None, **overrides
    ):
        """Train ``module`` with ``criterion`` through skorch; returns the fitted net.

        ``stage`` names this training stage in ``history_`` and in verbose output. ``y``
        (optional) are training targets, passed to ``criterion(output, y)`` instead of the
        input batch. The user's ``callbacks`` join every stage, each stage with fresh copies.
        """
        net = train_module(
            module,
            criterion,
            X,
            self._training_options(**overrides),
            seed=seed,
            device=device,
            callbacks=callbacks,
            user_callbacks=copy.deepcopy(list(self.callbacks or [])),
            y=y,
            stage=f"{type(self).__name__}: {stage}",
        )
        self.history_[stage] = net.history
        return net

    # ------------------------------------------------------------------ input handling
    def _validate_input(self, X, reset):
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1,
        )
        if self.image_shape is not None and math.prod(self.image_shape) != X.shape[1]:
            raise ValueError(
                f"image_shape={tuple(self.image_shape)} holds {math.prod(self.image_shape)} "
                f"values per image but X has {X.shape[1]} features; each row must be one "
                "flattened image."
            )
        return X

    def _make_scaler(self):
        """The (unfitted) scikit-learn scaler that maps inputs to the network's units."""
        return StandardScaler()

    def _scales_globally(self):
        """One scale for all values (images: keeps contrast) instead of one per feature."""
        return self.image_shape is not None

    def _fit_scaler(self, X):
        """Fit ``_make_scaler()`` per feature, or on all values at once when scaling globally.

        Sparse rows are densified a chunk at a time and the scaler fitted incrementally
        (``partial_fit``), so memory stays bounded.
        """
        scaler = self._make_scaler()
        # Overflow is detected below and reported as a ValueError, so numpy's warnings are noise.
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if sp.issparse(X):
                for start in range(0, X.shape[0], _MAX_SCORING_ROWS):
                    scaler.partial_fit(self._scaler_view(X[start : start + _MAX_SCORING_ROWS]))
            else:
                scaler.fit(self._scaler_view(X))
        # An infinite variance or range makes scikit-learn's scalers treat the column as
        # constant (scale 1), so every fitted statistic is checked, not only the scale.
        statistics = [v for k, v in vars(scaler).items() if k.endswith("_") and hasattr(v, "dtype")]
        if not all(np.all(np.isfinite(stat)) for stat in statistics):
            raise ValueError(
                "X has values too large in magnitude to scale (their spread overflows "
                "float64); rescale the features first."
            )
        return scaler

    def _scaler_view(self, rows):
        """Dense ``rows`` as the scaler sees them: one column of values when scaling globally."""
        rows = rows.toarray() if sp.issparse(rows) else rows
        return rows.reshape(-1, 1) if self._scales_globally() else rows

    def _scale(self, rows):
        """Scaled dense float32 copy of ``rows`` (the network's input units)."""
        return _transform_to_float32(self.scaler_, self._scaler_view(rows)).reshape(
            rows.shape[0], -1
        )

    def _network_input(self, rows):
        """``_scale(rows)``, refusing values that overflow float32 once scaled.

        Many sparse rows at once are densified and scaled a chunk at a time, straight into the
        float32 result, so the result is the only dense copy. (Fit and scoring ask for at
        most a batch of rows at a time: see ``_training_rows`` and ``_scoring_pass``.)
        """
        if sp.issparse(rows) and rows.shape[0] > _MAX_SCORING_ROWS:
            scaled = np.empty(rows.shape, dtype=np.float32)
            for start in range(0, rows.shape[0], _MAX_SCORING_ROWS):
                stop = start + _MAX_SCORING_ROWS
                scaled[start:stop] = self._network_input(rows[start:stop])
            return scaled
        # Overflow is reported below as a ValueError that names it; numpy's warning adds nothing.
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = self._scale(rows)
        if not np.all(np.isfinite(scaled)):
            raise ValueError(
                "X holds values too large in magnitude for the network: once standardised "
                "with the training statistics they exceed the float32 range (about "
                f"{np.finfo(np.float32).max:.1e}). Rescale the features or remove such rows."
            )
        return scaled

    # ------------------------------------------------------------------ scoring
    def _scoring_row_bytes(self, module, scored=False):
        """Memory one row costs to score: its float64 and float32 copies on the way in plus
        what the network allocates for it (:func:`~skuad._training.forward_bytes_per_row`,
        which counts every intermediate tensor and so errs on the safe side). With
        ``scored``, ``module`` is the scoring module and the score's own float64 arithmetic
        (``_score_batch``) is counted too: for a reconstruction error it holds several
        float64 copies of each row."""
        n_features = self.n_features_in_
        score = None
        if scored:

            def score(output, x):
                return self._score_batch(_as_float64(output), x)

        return n_features * (8 + 8 + 4) + forward_bytes_per_row(module, n_features, then=score)

    def _scoring_batch_rows(self, module, scored=False):
        """Rows per scoring batch: as many as fit in ``working_memory`` MiB, at most 1,024.

        ``working_memory=None`` takes scikit-learn's ``working_memory`` setting. The count is
        rounded down to a multiple of 8 (a whole number of vector-kernel tiles). ``scored``:
        see ``_scoring_row_bytes``.
        """
        working_memory = self.working_memory
        if working_memory is None:
            working_memory = get_config()["working_memory"]
        row_bytes = self._scoring_row_bytes(module, scored)
        n_rows = min(int(working_memory * 2**20 // row_bytes), _MAX_SCORING_ROWS)
        if n_rows < 1:
            warnings.warn(
                f"working_memory={working_memory} MiB is less than one row needs to be scored "
                f"({row_bytes / 2**20:.2f} MiB); scoring one row at a time.",
                UserWarning,
                stacklevel=4,
            )
            return 1
        return n_rows - n_rows % 8 if n_rows >= 8 else n_rows

    def _forward(self, X_scaled, module=None):
        """``module(X)`` on already-scaled rows, in memory-sized batches, as one NumPy array."""
        module = self._scoring_module if module is None else module
        batches = forward_in_batches(module, X_scaled, self._scoring_batch_rows(module))
        return np.concatenate([out[:n_rows].cpu().numpy() for n_rows, _, out in batches])

    def _score_rows(self, X):
        """Scores of raw (validated) rows ``X``."""
        return self._scoring_pass(X)[0]

    def _scoring_pass(self, X, row_statistic=None):
        """``(scores, statistics)`` of raw rows ``X``: scale, forward and score one fixed-shape
        batch at a time; ``statistics`` are ``row_statistic``'s per-row values (see
        ``_training_row_statistic``) from the same pass, or None.

        Every batch has the same number of rows (the last one padded), so a row's score does
        not depend on which other rows are scored with it, bit for bit, in float32 on any
        device; ``forward_in_batches`` explains why. Memory stays within one batch's worth.
        """
        module = self._scoring_module
        batches = forward_in_batches(
            module,
            X,
            self._scoring_batch_rows(module, scored=True),
            transform=self._network_input,
            fixed_shape=True,
        )
        # Each batch's results are copied into preallocated arrays and the batch's tensors
        # freed: holding every batch's small tensors until the end pins the allocator's
        # memory around them, and resident memory then grows with the number of rows.
        scores = np.empty(X.shape[0], dtype=np.float64)
        statistics = None if row_statistic is None else np.empty(X.shape[0], dtype=np.float64)
        start = 0
        with torch.no_grad():
            for n_rows, x, out in batches:
                # The network runs in float32; the score's own arithmetic (squared distances,
                # errors, log-densities) runs in float64, where rows far outside the training
                # range still give finite scores.
                out = _as_float64(out)
                stop = start + n_rows
                scores[start:stop] = self._score_batch(out, x)[:n_rows].cpu().numpy()
                if row_statistic is not None:
                    statistics[start:stop] = row_statistic(out, x)[:n_rows].cpu().numpy()
                start = stop
        if not np.all(np.isfinite(scores)):
            raise ValueError(
                "The network produced non-finite scores; the input may hold values far outside "
                "the training range."
            )
        return scores, statistics

    @fill_doc(parameters=rows_parameters("score"))
    def score_samples(self, X):
        """Normality score of each sample: the higher, the more normal.

        %(parameters)s

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Float64 scores; outliers score lower.
        """
        check_is_fitted(self)
        return self._score_rows(self._validate_input(X, reset=False))

    @fill_doc(parameters=rows_parameters("score"))
    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers, non-negative for inliers.

        ``fit`` set ``offset_`` at the ``contamination`` quantile of the training scores; with
        ``contamination='auto'``, at the method's own threshold where it defines one (Deep
        SVDD's radius), else at their 10 % quantile.

        %(parameters)s

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    @fill_doc(parameters=rows_parameters("label"))
    def predict(self, X):
        """Label each sample +1 (inlier) or -1 (outlier).

        A sample is an outlier when its ``decision_function`` is negative, that is, when it
        scores below ``offset_``.

        %(parameters)s

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

    # ------------------------------------------------------------------ persistence
    def __getstate__(self):
        # Record the skuad version so that loading under another one can warn: fitted
        # networks and attributes are only guaranteed to mean the same within one version.
        from skuad import __version__

        return {**super().__getstate__(), "_skuad_version": __version__}

    def __setstate__(self, state):
        from skuad import __version__

        state = dict(state)
        saved_version = state.pop("_skuad_version", "unknown (saved without a version)")
        if saved_version != __version__:
            warnings.warn(
                f"Loading a {type(self).__name__} saved with skuad {saved_version} under skuad "
                f"{__version__}. It may fail or score differently; refit it under skuad "
                f"{__version__}, or load it with skuad {saved_version}.",
                SkuadVersionWarning,
                stacklevel=2,
            )
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True  # densified one batch at a time
        # CUDA kernels may be non-deterministic; on CPU a fixed random_state gives identical fits.
        tags.non_deterministic = isinstance(self.device, str) and (
            self.device.startswith("cuda") or (self.device == "auto" and torch.cuda.is_available())
        )
        return tags
