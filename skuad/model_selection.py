"""Cross-validation for one-class training: fit on inliers only, evaluate on inliers and outliers.

A one-class detector is meant to be trained on normal data. Plain ``KFold`` puts labelled
outliers into the training folds, and an outlier-free training set offers nothing to rank
against. :class:`InlierKFold` splits labelled data so that every training fold holds inliers
only and every test fold holds both; :func:`with_synthetic_outliers` supplies outliers when
the training data have none (the one-class protocol), so that a grid search never needs the
test set's labels.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.model_selection import BaseCrossValidator, StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import _num_samples, check_array

from skuad.metrics import is_outlier


class InlierKFold(BaseCrossValidator):
    """K-fold splitter whose training folds hold only inliers.

    Inliers and outliers are each divided into ``n_splits`` folds (stratified, so each test
    fold holds its share of both). Test fold ``k`` is the ``k``-th part of the inliers and of
    the outliers; the training fold is the other inliers, **without** any outlier. Every row
    is in exactly one test fold. Works for any estimator and with ``GridSearchCV``,
    ``cross_validate`` and ``cross_val_score`` (which pass ``y`` to ``split``).

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
    with ``cv=InlierKFold(...)`` so the synthetic rows are only ever scored, never trained on,
    and ``refit=False`` (a refit would train on every row given, synthetic ones included);
    then fit the best configuration on the inliers.

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
