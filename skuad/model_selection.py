"""Cross-validation for one-class training: fit on inliers only, evaluate on inliers and outliers.

A one-class detector is meant to be trained on normal data. Plain ``KFold`` puts labelled
outliers into the training folds, and an outlier-free training set offers nothing to rank
against. Two tools keep outliers out of training in a search:

* :class:`FitOnInliers` wraps a detector so that ``fit(X, y)`` trains it on the rows ``y``
  marks as inliers. It is the safe choice with ``GridSearchCV``'s default ``refit=True``: the
  final ``best_estimator_`` is refitted on every inlier and on no outlier. With it any
  stratified splitter works, and training scores (``return_train_score``,
  ``validation_curve``) are defined.
* :class:`InlierKFold` splits labelled data so that every training fold holds inliers only and
  every test fold holds both, for any estimator.

:func:`with_synthetic_outliers` supplies outliers when the training data have none (the
one-class protocol), so that a grid search never needs the test set's labels.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, OutlierMixin, _fit_context, clone
from sklearn.model_selection import BaseCrossValidator, StratifiedKFold
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params
from sklearn.utils.metaestimators import _safe_indexing, available_if
from sklearn.utils.validation import _num_samples, check_array, check_is_fitted

from skuad._doc_link import DocLinkMixin
from skuad._docstrings import fill_doc, rows_parameters
from skuad.metrics import Y_CONVENTIONS, is_outlier


class InlierKFold(BaseCrossValidator):
    """K-fold splitter whose training folds hold only inliers.

    Inliers and outliers are each divided into ``n_splits`` folds (stratified, so each test
    fold holds its share of both). Test fold ``k`` is the ``k``-th part of the inliers and of
    the outliers; the training fold is the other inliers, **without** any outlier. Every row
    is in exactly one test fold. Works for any estimator and with ``GridSearchCV``,
    ``cross_validate`` and ``cross_val_score`` (which pass ``y`` to ``split``).

    The splitter keeps outliers out of the folds only: ``GridSearchCV``'s final refit
    (``refit=True``) trains on every row passed to ``fit``. Wrap the detector in
    :class:`FitOnInliers` to keep them out of the refit too, or pass ``refit=False``.
    Training scores (``return_train_score=True``, ``validation_curve``) are ``nan`` with
    this splitter, since a training fold holds one class only.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2. Needs at least ``n_splits`` inliers and outliers.
    y_convention : {'auto', 'sklearn', 'anomaly'}, default='auto'
        Which label marks an outlier (see :func:`skuad.metrics.is_outlier`): ``'sklearn'``
        -1 outlier / +1 inlier; ``'anomaly'`` 1 anomaly / 0 normal; ``'auto'`` accepts only
        unambiguous +-1 labels.
    shuffle : bool, default=False
        Shuffle each class before splitting into folds.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling; ignored when ``shuffle=False``.

    Examples
    --------
    >>> import numpy as np
    >>> from skuad.model_selection import InlierKFold
    >>> y = np.array([1, 1, 1, 1, -1, -1])
    >>> for train, test in InlierKFold(n_splits=2).split(np.zeros((6, 1)), y):
    ...     print(train, test)
    [2 3] [0 1 4]
    [0 1] [2 3 5]
    """

    def __init__(self, n_splits=5, *, y_convention="auto", shuffle=False, random_state=None):
        self.n_splits = n_splits
        self.y_convention = y_convention
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X, y=None, groups=None):
        """Generate ``(train, test)`` index arrays.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (only its length is used).
        y : array-like of shape (n_samples,)
            Outlier labels in the convention named by ``y_convention``.
        groups : None
            Ignored.

        Yields
        ------
        train : ndarray
            Indices of inliers to train on.
        test : ndarray
            Indices of inliers and outliers to evaluate on.
        """
        if not (isinstance(self.n_splits, Integral) and self.n_splits >= 2):
            raise ValueError(f"n_splits must be an int >= 2, got {self.n_splits!r}.")
        outliers = is_outlier(y, self.y_convention)
        if _num_samples(X) != len(outliers):
            raise ValueError(f"X has {_num_samples(X)} rows but y has {len(outliers)} labels.")
        n_outliers = int(outliers.sum())
        n_inliers = len(outliers) - n_outliers
        if min(n_outliers, n_inliers) < self.n_splits:
            raise ValueError(
                f"InlierKFold(n_splits={self.n_splits}) needs at least {self.n_splits} inliers "
                f"and {self.n_splits} outliers so that every test fold holds both; y has "
                f"{n_inliers} inliers and {n_outliers} outliers. With outlier-free training "
                "data, add reference outliers (skuad.model_selection.with_synthetic_outliers)."
            )
        stratified = StratifiedKFold(
            self.n_splits,
            shuffle=self.shuffle,
            random_state=self.random_state if self.shuffle else None,
        )
        for train, test in stratified.split(np.zeros((len(outliers), 1)), outliers):
            yield train[~outliers[train]], test

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits, ``n_splits``."""
        return self.n_splits


@validate_params(
    {
        "X": ["array-like"],
        "n_outliers": [Interval(Integral, 1, None, closed="left"), None],
        "kind": [StrOptions({"marginals", "uniform"})],
        "margin": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def with_synthetic_outliers(X, n_outliers=None, *, kind="marginals", margin=0.1, random_state=None):
    """Append generated reference outliers to inlier-only data, for model selection.

    Under the one-class protocol the training data hold no outliers, yet a grid search needs
    something to rank against, and the test labels must never be used for it. This makes
    labelled data out of the training inliers alone: pass the result to ``GridSearchCV.fit``
    with the detector wrapped in :class:`FitOnInliers`, so that the synthetic rows (labelled
    -1) are only ever scored, never trained on, in the folds and in the final refit alike.
    (A bare detector with ``cv=InlierKFold(...)`` needs ``refit=False``: the refit would train
    on every row given, synthetic ones included.)

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inlier rows.
    n_outliers : int or None, default=None
        Number of rows to generate; ``None`` for ``len(X) // 4``.
    kind : {'marginals', 'uniform'}, default='marginals'
        ``'marginals'``: every feature of a synthetic row is drawn independently from that
        feature's values in ``X`` (the product of the marginals: each value is plausible on its
        own, their combination is not; this is close to the data and hard to detect).
        ``'uniform'``: uniform in the bounding box of ``X`` widened by ``margin`` times its
        range on each side (far from the data in high dimension, so easy to detect).
    margin : float >= 0, default=0.1
        Widening of the box for ``kind='uniform'``.
    random_state : int, RandomState instance or None, default=None
        Seeds the generation.

    Returns
    -------
    X_augmented : ndarray of shape (n_samples + n_outliers, n_features)
        ``X`` followed by the synthetic rows.
    y_augmented : ndarray of shape (n_samples + n_outliers,)
        scikit-learn's labels: +1 for the rows of ``X``, -1 for the synthetic outliers.

    Notes
    -----
    Synthetic outliers are a proxy: a hyper-parameter that ranks them well need not rank real
    anomalies well. They make selection honest (no test labels), not necessarily right.
    """
    X = check_array(X, dtype=np.float64, ensure_min_samples=2)
    rng = check_random_state(random_state)
    n_outliers = max(len(X) // 4, 1) if n_outliers is None else n_outliers
    if kind == "marginals":
        rows = rng.randint(len(X), size=(n_outliers, X.shape[1]))
        synthetic = X[rows, np.arange(X.shape[1])]
    else:
        low, high = X.min(axis=0), X.max(axis=0)
        width = high - low
        synthetic = rng.uniform(
            low - margin * width, high + margin * width, (n_outliers, X.shape[1])
        )
    y = np.r_[np.ones(len(X), dtype=int), -np.ones(n_outliers, dtype=int)]
    return np.vstack([X, synthetic]), y


def _rows_parameters(verb):
    return rows_parameters(
        verb, ", in any form the detector accepts: they are passed to it unchanged"
    )


def _detector_has(method):
    """``available_if`` check: the fitted detector, or else the unfitted one, has ``method``."""

    def check(self):
        detector = getattr(self, "detector_", self.detector)
        return hasattr(detector, method)

    return check


class FitOnInliers(DocLinkMixin, MetaEstimatorMixin, OutlierMixin, BaseEstimator):
    """Outlier detector that fits the detector it wraps on the rows ``y`` marks as inliers.

    A one-class detector must be trained on normal data, but ``GridSearchCV`` (with its
    default ``refit=True``), ``cross_validate`` and ``validation_curve`` pass every row they
    fit on to ``fit``, labelled outliers included. Wrapped in ``FitOnInliers``, the detector
    sees only the rows labelled as inliers; the labels are used for nothing else. Scoring,
    prediction and the threshold (``offset_``) are the wrapped detector's.

    With ``y=None`` every row is used, as the detector itself would.

    Parameters
    ----------
    detector : estimator object
        An outlier detector (``fit`` and ``score_samples`` or ``decision_function``), for
        example a skuad detector, a :class:`~sklearn.pipeline.Pipeline` ending in one, or
        :class:`~sklearn.ensemble.IsolationForest`. It is cloned at ``fit``. Its parameters
        are searched as ``detector__<name>``.
    y_convention : {'auto', 'sklearn', 'anomaly'}, default='auto'
        Which label marks an outlier (see :func:`skuad.metrics.is_outlier`): ``'sklearn'``
        -1 outlier / +1 inlier; ``'anomaly'`` 1 anomaly / 0 normal. ``'auto'`` reads labels
        in {-1, +1} the scikit-learn way (an all-+1 training fold, as :class:`InlierKFold`
        gives, is all inliers) and refuses any other labels, ``{0, 1}`` included, rather than
        guess.

    Attributes
    ----------
    detector_ : estimator object
        The clone of ``detector`` fitted on the inliers.
    n_inliers_fit_ : int
        Number of rows the detector was fitted on.
    offset_ : float
        The fitted detector's ``offset_`` (when it has one).
    n_features_in_ : int
        The fitted detector's ``n_features_in_``.
    feature_names_in_ : ndarray of str
        The fitted detector's ``feature_names_in_`` (when ``X`` had column names).

    See Also
    --------
    InlierKFold : A splitter whose training folds hold no outliers.

    Notes
    -----
    Any splitter that stratifies on the outlier labels works: ``StratifiedKFold`` on the
    labels gives each row its test fold exactly as :class:`InlierKFold` does, and the
    outliers of each training fold, never fitted on, still make training scores defined
    (``return_train_score=True``, ``validation_curve``, ``HalvingGridSearchCV``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> from sklearn.model_selection import GridSearchCV, StratifiedKFold
    >>> from skuad.metrics import make_outlier_scorer
    >>> from skuad.model_selection import FitOnInliers
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.normal(size=(100, 2)), rng.uniform(4, 6, size=(20, 2))]
    >>> y = np.r_[np.ones(100, dtype=int), -np.ones(20, dtype=int)]  # -1 marks an outlier
    >>> search = GridSearchCV(
    ...     FitOnInliers(IsolationForest(random_state=0)),
    ...     {"detector__n_estimators": [10, 50]},
    ...     scoring=make_outlier_scorer("roc_auc"),
    ...     cv=StratifiedKFold(3),
    ... ).fit(X, y)
    >>> search.best_estimator_.n_inliers_fit_  # refitted on the 100 inliers only
    100
    """

    _parameter_constraints: dict = {
        "detector": [HasMethods(["fit"])],
        "y_convention": [StrOptions(set(Y_CONVENTIONS))],
    }

    def __init__(self, detector, *, y_convention="auto"):
        self.detector = detector
        self.y_convention = y_convention

    def _inlier_rows(self, X, y):
        if y is None:
            return None
        y = np.asarray(y)
        n_samples = _num_samples(X)
        if y.ndim != 1 or len(y) != n_samples:
            raise ValueError(
                f"y must hold one outlier label per row of X: X has {n_samples} rows, y has "
                f"shape {y.shape}."
            )
        convention = self.y_convention
        if convention == "auto" and np.isin(y, (-1, 1)).all():
            # Unambiguous even without a -1: a {0, 1} vector cannot consist of -1s and +1s.
            convention = "sklearn"
        inliers = np.flatnonzero(~is_outlier(y, convention))
        if len(inliers) == 0:
            raise ValueError(
                f"y marks no row as an inlier (y_convention={self.y_convention!r}); the "
                "detector needs inliers to fit on."
            )
        return inliers

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **fit_params):
        """Fit a clone of ``detector`` on the rows of ``X`` that ``y`` marks as inliers.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training data, in whatever form the detector takes.
        y : array-like of shape (n_samples,), default=None
            Outlier labels in the convention named by ``y_convention``; ``None`` fits on
            every row.
        **fit_params : dict
            Passed to the detector's ``fit``; per-row arrays (same length as ``X``) are
            subset to the inlier rows.

        Returns
        -------
        self : FitOnInliers
            The fitted meta-estimator.
        """
        rows = self._inlier_rows(X, y)
        n_samples = _num_samples(X)
        if rows is not None:
            X = _safe_indexing(X, rows)
            fit_params = {
                key: _safe_indexing(value, rows)
                if hasattr(value, "__len__")
                and not isinstance(value, str | bytes)
                and _num_samples(value) == n_samples
                else value
                for key, value in fit_params.items()
            }
        self.detector_ = clone(self.detector).fit(X, **fit_params)
        self.n_inliers_fit_ = n_samples if rows is None else len(rows)
        return self

    def _delegate(self, method, X):
        check_is_fitted(self)
        return getattr(self.detector_, method)(X)

    @available_if(_detector_has("score_samples"))
    @fill_doc(parameters=_rows_parameters("score"))
    def score_samples(self, X):
        """The fitted detector's ``score_samples(X)`` (higher = more normal).

        The detector saw only the inlier rows of the training data; any rows can be scored.

        %(parameters)s

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Normality scores.
        """
        return self._delegate("score_samples", X)

    @available_if(_detector_has("decision_function"))
    @fill_doc(parameters=_rows_parameters("score"))
    def decision_function(self, X):
        """The fitted detector's ``decision_function(X)`` (negative = outlier).

        Its threshold, ``detector_.offset_``, was placed on the inlier rows it was fitted on
        (for example at their ``contamination`` quantile).

        %(parameters)s

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Shifted normality scores.
        """
        return self._delegate("decision_function", X)

    @available_if(_detector_has("predict"))
    @fill_doc(parameters=_rows_parameters("label"))
    def predict(self, X):
        """The fitted detector's ``predict(X)``: +1 inlier, -1 outlier.

        -1 where ``decision_function(X)`` is negative, for detectors that follow
        scikit-learn's outlier convention.

        %(parameters)s

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            +1 for inliers, -1 for outliers.
        """
        return self._delegate("predict", X)

    @property
    def offset_(self):
        check_is_fitted(self)
        return self.detector_.offset_

    @property
    def n_features_in_(self):
        check_is_fitted(self)
        return self.detector_.n_features_in_

    @property
    def feature_names_in_(self):
        check_is_fitted(self)
        return self.detector_.feature_names_in_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        detector_tags = get_tags(self.detector)
        tags.input_tags.sparse = detector_tags.input_tags.sparse
        tags.input_tags.allow_nan = detector_tags.input_tags.allow_nan
        tags.non_deterministic = detector_tags.non_deterministic
        return tags
