"""Outlier-detection scores and scorers that are explicit about label conventions.

Two label conventions are in common use and they disagree about what ``1`` means:

* ``'sklearn'``: ``+1`` marks an inlier and ``-1`` an outlier (what ``predict`` returns);
* ``'anomaly'``: ``1`` marks an anomaly and ``0`` a normal row (ADBench, PyOD, most papers).

A ``{0, 1}`` label vector can also mean "1 = inlier, 0 = outlier", so guessing would flip an
AUROC ``x`` into ``1 - x`` without a trace. Every function here therefore takes
``y_convention``: ``'sklearn'`` or ``'anomaly'`` say which convention ``y`` follows, and the
values of ``y`` are checked against it; the default ``'auto'`` accepts only labels that cannot
be misread (values in ``{-1, +1}`` with at least one ``-1``) and raises ``ValueError`` for
anything else, ``{0, 1}`` labels included.

Scores follow scikit-learn's detectors: ``score_samples`` (or ``decision_function``), higher =
more normal. Metrics treat the outliers as the positive class, as ADBench does.
"""

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.utils.validation import column_or_1d

from skuad._docstrings import fill_doc

Y_CONVENTIONS = ("auto", "sklearn", "anomaly")

_CONVENTION_LABELS = {"sklearn": {-1, 1}, "anomaly": {0, 1}}
_CONVENTION_OUTLIER = {"sklearn": -1, "anomaly": 1}


def is_outlier(y, y_convention="auto"):
    """Boolean mask of the outliers in ``y`` under the named label convention.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    y_convention : {'auto', 'sklearn', 'anomaly'}, default='auto'
        ``'sklearn'``: +1 inlier, -1 outlier. ``'anomaly'``: 1 anomaly, 0 normal.
        ``'auto'``: ``'sklearn'`` when ``y`` holds only -1 and +1 and at least one -1;
        any other ``y`` (for example ``{0, 1}``, or only ``+1``) is ambiguous and raises.

    Returns
    -------
    mask : ndarray of bool of shape (n_samples,)
        True for outliers.
    """
    if y is None:
        raise ValueError(
            "Outlier labels y are required (the detector's fit ignores them; the split or the "
            "score needs them)."
        )
    if y_convention not in Y_CONVENTIONS:
        raise ValueError(f"y_convention must be one of {Y_CONVENTIONS}, got {y_convention!r}.")
    y = column_or_1d(y)
    try:
        values = {v.item() if hasattr(v, "item") else v for v in np.unique(y)}
    except TypeError as exc:
        raise ValueError(f"y must hold numeric outlier labels, got dtype {y.dtype}.") from exc
    if y_convention == "auto":
        if values <= {-1, 1} and -1 in values:
            y_convention = "sklearn"
        else:
            raise ValueError(
                f"Cannot tell which label marks an outlier in y with values {sorted(values)!r}. "
                "Pass y_convention='sklearn' if +1 marks inliers and -1 outliers, or "
                "y_convention='anomaly' if 1 marks anomalies and 0 normal rows (ADBench, PyOD)."
            )
    allowed = _CONVENTION_LABELS[y_convention]
    if not values <= allowed:
        raise ValueError(
            f"y_convention={y_convention!r} expects labels in {sorted(allowed)}, but y holds "
            f"{sorted(values)!r}."
        )
    return y == _CONVENTION_OUTLIER[y_convention]


def _anomaly_scores(y_true, normality_scores, y_convention):
    outliers = is_outlier(y_true, y_convention)
    scores = column_or_1d(normality_scores).astype(np.float64)
    if len(scores) != len(outliers):
        raise ValueError(f"y_true has {len(outliers)} labels but there are {len(scores)} scores.")
    if outliers.all() or not outliers.any():
        raise ValueError(
            "The ranking metric needs both inliers and outliers in y_true, found only "
            f"{'outliers' if outliers.any() else 'inliers'} ({len(outliers)} rows)."
        )
    return outliers, -scores


_METRIC_PARAMETERS = """\
Parameters
----------
y_true : array-like of shape (n_samples,)
    Labels in the convention named by ``y_convention``.
normality_scores : array-like of shape (n_samples,)
    Higher = more normal (``score_samples`` or ``decision_function`` of a detector).
y_convention : {'auto', 'sklearn', 'anomaly'}, default='auto'
    See :func:`is_outlier`.
"""


@fill_doc(parameters=_METRIC_PARAMETERS)
def outlier_roc_auc_score(y_true, normality_scores, *, y_convention="auto"):
    """Area under the ROC curve for detecting the outliers.

    %(parameters)s

    Returns
    -------
    auroc : float
        1.0 when every outlier scores below every inlier, 0.5 for a random ranking.

    Examples
    --------
    >>> from skuad.metrics import outlier_roc_auc_score
    >>> outlier_roc_auc_score([1, 1, -1], [0.9, 0.8, 0.1])
    1.0
    >>> outlier_roc_auc_score([0, 0, 1], [0.9, 0.8, 0.1], y_convention="anomaly")
    1.0
    """
    outliers, anomaly_scores = _anomaly_scores(y_true, normality_scores, y_convention)
    return float(roc_auc_score(outliers, anomaly_scores))


@fill_doc(parameters=_METRIC_PARAMETERS)
def outlier_average_precision_score(y_true, normality_scores, *, y_convention="auto"):
    """Average precision (area under the precision-recall curve), outliers as positives.

    Unlike the AUROC, it depends on how many outliers the test set holds: a random ranking
    scores their fraction. Compare values on the same test set only.

    %(parameters)s

    Returns
    -------
    average_precision : float
        1.0 for a perfect ranking; the outlier fraction for a random one.
    """
    outliers, anomaly_scores = _anomaly_scores(y_true, normality_scores, y_convention)
    return float(average_precision_score(outliers, anomaly_scores))


def _single_class(y, y_convention):
    """True when ``y`` holds one label only, one that ``y_convention`` allows.

    Whatever the convention, such a ``y`` is all inliers or all outliers, so the ranking is
    undefined; labels the convention does not allow are left to :func:`is_outlier` to refuse.
    """
    values = np.unique(column_or_1d(y))
    if len(values) != 1:
        return False
    allowed = {-1, 0, 1} if y_convention == "auto" else _CONVENTION_LABELS.get(y_convention, ())
    try:
        return values[0].item() in allowed
    except (AttributeError, TypeError):
        return False


_METRICS = {
    "roc_auc": outlier_roc_auc_score,
    "average_precision": outlier_average_precision_score,
}


class OutlierScorer:
    """Scorer ``scorer(estimator, X, y)`` for outlier detectors, for ``GridSearchCV(scoring=...)``.

    Build it with :func:`make_outlier_scorer`. On labels of a single class (an inlier-only
    training fold, which ``validation_curve`` and ``return_train_score=True`` score) a ranking
    metric is undefined: the scorer returns ``nan`` for it, without a warning, instead of
    failing.
    """

    def __init__(self, metric, y_convention):
        self.metric = metric
        self.y_convention = y_convention

    def __call__(self, estimator, X, y, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("Outlier scorers do not support sample_weight.")
        if _single_class(y, self.y_convention):
            return float("nan")
        if hasattr(estimator, "score_samples"):
            scores = estimator.score_samples(X)
        elif hasattr(estimator, "decision_function"):
            scores = estimator.decision_function(X)
        else:
            raise ValueError(
                f"{type(estimator).__name__} has neither score_samples nor decision_function; "
                "an outlier scorer needs normality scores (for LocalOutlierFactor use "
                "novelty=True)."
            )
        return _METRICS[self.metric](y, scores, y_convention=self.y_convention)

    def __repr__(self):
        return f"make_outlier_scorer({self.metric!r}, y_convention={self.y_convention!r})"


def make_outlier_scorer(metric="roc_auc", *, y_convention="auto"):
    """Scorer for grid search over outlier detectors, safe about label conventions.

    The scorer calls ``estimator.score_samples(X)`` (or ``decision_function`` when there is
    no ``score_samples``), takes higher as more normal, as every scikit-learn and skuad
    detector does, and scores the ranking of the outliers. Greater is better.

    Parameters
    ----------
    metric : {'roc_auc', 'average_precision'}, default='roc_auc'
        The ranking metric.
    y_convention : {'auto', 'sklearn', 'anomaly'}, default='auto'
        Which label marks an outlier; see :func:`is_outlier`. With ``'auto'``, ``{0, 1}``
        labels raise instead of being guessed.

    Returns
    -------
    scorer : OutlierScorer
        Callable ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> from skuad.metrics import make_outlier_scorer
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.normal(size=(50, 2)), rng.normal(6, 1, size=(5, 2))]
    >>> y = np.r_[np.zeros(50), np.ones(5)]
    >>> scorer = make_outlier_scorer("roc_auc", y_convention="anomaly")
    >>> round(scorer(IsolationForest(random_state=0).fit(X), X, y), 2)
    1.0
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}.")
    if y_convention not in Y_CONVENTIONS:
        raise ValueError(f"y_convention must be one of {Y_CONVENTIONS}, got {y_convention!r}.")
    return OutlierScorer(metric, y_convention)
