"""scikit-learn's estimator checks over every skuad estimator in the registry."""

import inspect

from sklearn.utils.estimator_checks import parametrize_with_checks

import skuad
from skuad.base import BaseDeepDetector
from skuad.benchmark import KNNDistance
from tests.conftest import FAST_DETECTORS

# No check is skipped or expected to fail: expected_failed_checks is left empty on purpose.


@parametrize_with_checks(FAST_DETECTORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# The KNN baseline of skuad bench is an estimator too.
@parametrize_with_checks([KNNDistance()])
def test_knn_baseline_is_sklearn_compatible(estimator, check):
    check(estimator)


def test_every_public_detector_is_in_the_registry():
    public = {
        obj
        for name in skuad.__all__
        if inspect.isclass(obj := getattr(skuad, name)) and issubclass(obj, BaseDeepDetector)
    }
    assert public, "no public detector found"
    assert public <= {type(est) for est in FAST_DETECTORS}
