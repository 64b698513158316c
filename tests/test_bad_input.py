"""Bad and odd input, run through every estimator in the registry.

Every case gets either a correct, finite result or a ``ValueError``/``TypeError`` whose message
names the problem: never an error from deep inside torch or numpy, never NaN scores. Training
is the slow part, so each registry entry is fitted once on clean data (``fitted``) and the
predict-time cases reuse that fit; fit-time errors are raised before any training starts.
"""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.ensemble import IsolationForest

from tests.conftest import FAST_DETECTORS, detector_id

N_SAMPLES, N_FEATURES = 24, 4

# Parameters whose value is a number of training samples a method needs at least (clusters,
# reference points, neighbours): fitting on exactly that many rows must work or say why not.
SAMPLE_COUNT_PARAMS = ("n_clusters", "n_reference", "n_neighbors", "n_components")

registry = pytest.mark.parametrize("estimator", FAST_DETECTORS, ids=detector_id)

# One instance per detector class, for the property tests, which fit many times.
ONE_PER_CLASS = list({type(est): est for est in reversed(FAST_DETECTORS)}.values())


def clean_data(n_samples=N_SAMPLES, n_features=N_FEATURES, seed=0):
    return np.random.RandomState(seed).normal(size=(n_samples, n_features))


_FITTED = {}


@pytest.fixture
def fitted(estimator):
    """``estimator`` fitted once on clean data (cached across the tests of this module)."""
    key = id(estimator)
    if key not in _FITTED:
        _FITTED[key] = clone(estimator).fit(clean_data())
    return pickle.loads(pickle.dumps(_FITTED[key]))


def assert_finite_scores(detector, X):
    scores = detector.score_samples(X)
    assert scores.shape == (X.shape[0],)
    assert scores.dtype == np.float64
    assert np.all(np.isfinite(scores)), scores
    labels = detector.predict(X)
    assert set(np.unique(labels)) <= {-1, 1}
    return scores


def fit_or_refuse(estimator, X, reason):
    """A clone fitted on ``X``, or None if fit refused with a ValueError naming ``reason``."""
    try:
        return clone(estimator).fit(X)
    except ValueError as exc:
        assert reason in str(exc), str(exc)
        return None


def with_value(value, row=0, column=1):
    X = clean_data()
    X[row, column] = value
    return X


# ------------------------------------------------------------------ fit-time errors
FIT_ERRORS = {
    "nan": (with_value(np.nan), ValueError, "NaN"),
    "+inf": (with_value(np.inf), ValueError, "infinity"),
    "-inf": (with_value(-np.inf), ValueError, "infinity"),
    "one sample": (clean_data(1), ValueError, "1 sample"),
    "no samples": (np.empty((0, N_FEATURES)), ValueError, "0 sample"),
    "no features": (np.empty((N_SAMPLES, 0)), ValueError, "0 feature"),
    "1-D": (clean_data()[:, 0], ValueError, "Expected 2D array"),
    "3-D": (clean_data().reshape(N_SAMPLES, 2, 2), ValueError, "dim 3"),
    "sparse csr with nan": (sp.csr_matrix(with_value(np.nan)), ValueError, "NaN"),
    "sparse coo with inf": (sp.coo_array(with_value(np.inf)), ValueError, "infinity"),
    "words": (np.array([["a", "b"]] * N_SAMPLES), ValueError, "could not convert string"),
    "object with None": (
        np.array([[None, 1.0]] + [[0.5, 2.0]] * (N_SAMPLES - 1), dtype=object),
        ValueError,
        "NaN",
    ),
    "complex": (clean_data().astype(complex), ValueError, "Complex data"),
}


@registry
@pytest.mark.parametrize("case", FIT_ERRORS)
def test_bad_training_input_is_a_clear_error(estimator, case):
    X, error, message = FIT_ERRORS[case]
    detector = clone(estimator)
    with pytest.raises(error, match=message):
        detector.fit(X)
    assert not [name for name in vars(detector) if name.endswith("_")], "half-fitted"


@registry
def test_image_shape_that_does_not_match_the_rows_is_a_clear_error(estimator):
    # A detector without convolutional networks refuses any image_shape, naming why.
    message = r"image_shape=\(1, 3, 3\) holds 9 values" if estimator.takes_images else "vectors"
    with pytest.raises(ValueError, match=message):
        clone(estimator).set_params(image_shape=(1, 3, 3)).fit(clean_data())
    with pytest.raises(ValueError, match="'image_shape' parameter .* must be a tuple"):
        clone(estimator).set_params(image_shape=(2, 2)).fit(clean_data())


HUGE = {
    "1e300 in one cell": with_value(1e300),
    "-1e300 in one cell": with_value(-1e300),
    "1e300 everywhere": clean_data() * 1e300,
    "float64 max and min": np.r_[clean_data(), [[np.finfo(float).max, np.finfo(float).min] * 2]],
    "sparse 1e300 in one cell": sp.csr_matrix(with_value(1e300)),
    "sparse float64 max and min": sp.csr_matrix(
        np.r_[clean_data(), [[np.finfo(float).max, np.finfo(float).min] * 2]]
    ),
}


@registry
@pytest.mark.parametrize("case", HUGE)
def test_huge_magnitudes_fit_or_are_named(estimator, case):
    X = HUGE[case]
    detector = fit_or_refuse(estimator, X, "too large")
    if detector is not None:
        assert_finite_scores(detector, X)


# ------------------------------------------------------------------ predict-time errors
PREDICT_ERRORS = {
    "nan": (with_value(np.nan), ValueError, "NaN"),
    "inf": (with_value(np.inf), ValueError, "infinity"),
    "1e300": (with_value(1e300), ValueError, "too large in magnitude"),
    "-1e300": (with_value(-1e300), ValueError, "too large in magnitude"),
    "too few features": (clean_data()[:, :3], ValueError, "3 features, but .* is expecting 4"),
    "too many features": (clean_data(n_features=5), ValueError, "5 features, but"),
    "1-D": (clean_data()[0], ValueError, "Expected 2D array"),
    "no samples": (np.empty((0, N_FEATURES)), ValueError, "0 sample"),
    "sparse with nan": (sp.csr_matrix(with_value(np.nan)), ValueError, "NaN"),
    "words": (np.full((3, N_FEATURES), "x"), ValueError, "could not convert string"),
}


@registry
@pytest.mark.parametrize("case", PREDICT_ERRORS)
@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict"])
def test_bad_input_at_predict_is_a_clear_error(estimator, fitted, case, method):
    X, error, message = PREDICT_ERRORS[case]
    with pytest.raises(error, match=message):
        getattr(fitted, method)(X)


# ------------------------------------------------------------------ odd but valid input
@registry
def test_single_samples_and_huge_but_finite_values_score_finitely(estimator, fitted):
    assert_finite_scores(fitted, clean_data()[:1])
    # Far outside the training range, yet representable after scaling: finite scores.
    assert_finite_scores(fitted, with_value(1e30)[:1])


@registry
def test_dtype_and_memory_layout_do_not_change_the_fit(estimator, tmp_path):
    # Integer-valued data with a constant column: int64, Fortran order and a read-only
    # memmap must all give exactly the fit of the same values as a C-ordered float64 array.
    X = np.round(clean_data() * 10)
    X[:, 2] = 7.0
    reference = assert_finite_scores(clone(estimator).fit(X), X)
    np.save(tmp_path / "X.npy", np.asfortranarray(X.astype(np.int64)))
    odd = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert odd.dtype == np.int64 and odd.flags.f_contiguous and not odd.flags.writeable
    detector = clone(estimator).fit(odd)
    np.testing.assert_allclose(detector.score_samples(odd), reference, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(detector.score_samples(X), reference, rtol=1e-6, atol=1e-9)


@registry
def test_float32_and_numeric_strings_and_lists_are_accepted(estimator, fitted):
    X = clean_data()
    reference = fitted.score_samples(X)
    for variant in (X.tolist(), X.astype(str), X.astype(object)):
        np.testing.assert_allclose(fitted.score_samples(variant), reference, rtol=1e-12)
    np.testing.assert_allclose(
        fitted.score_samples(X.astype(np.float32)), reference, rtol=1e-4, atol=1e-4
    )
    assert_finite_scores(clone(estimator).fit(X.astype(np.float32)), X)


@registry
def test_single_feature_and_constant_columns_fit(estimator):
    X = clean_data(n_features=1)
    assert_finite_scores(clone(estimator).fit(X), X)
    constant = np.ones((N_SAMPLES, 3))
    with warnings.catch_warnings():
        # A method may warn that constant data leaves it nothing to learn; it must not fail.
        warnings.simplefilter("ignore", UserWarning)
        detector = clone(estimator).fit(constant)
    assert_finite_scores(detector, constant)
    assert_finite_scores(detector, clean_data(n_features=3))


@registry
def test_magnitudes_far_from_one_fit(estimator):
    for scale in (1e150, 1e-150):
        X = clean_data() * scale
        assert_finite_scores(clone(estimator).fit(X), X)


@registry
def test_the_fewest_samples_a_method_needs(estimator):
    params = estimator.get_params()
    counts = {2} | {
        params[name]
        for name in SAMPLE_COUNT_PARAMS
        if isinstance(params.get(name), int | np.integer) and params[name] >= 1
    }
    for n_samples in sorted(counts):
        X = clean_data(n_samples)
        # Refusing is fine if the message says that there are too few samples.
        detector = fit_or_refuse(estimator, X, "sample")
        if detector is not None:
            assert_finite_scores(detector, X)
            assert_finite_scores(detector, clean_data(5, seed=1))


# ------------------------------------------------------------------ pandas
@registry
def test_dataframes_and_feature_names_behave_as_in_scikit_learn(estimator):
    columns = [f"f{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(clean_data(), columns=columns)
    detector = clone(estimator).fit(frame)
    reference = IsolationForest(random_state=0).fit(frame)
    np.testing.assert_array_equal(detector.feature_names_in_, columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        without_names = detector.score_samples(frame.values)
    np.testing.assert_allclose(detector.score_samples(frame), without_names)

    variants = {
        "renamed": frame.rename(columns={"f0": "other"}),
        "reordered": frame[columns[::-1]],
        "no names": frame.values,
        "integer names": pd.DataFrame(frame.values),
    }
    for name, variant in variants.items():
        outcomes = []
        for model in (reference, detector):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    model.score_samples(variant)
                    error = None
                except (ValueError, TypeError) as exc:
                    error = (type(exc), str(exc).replace(type(model).__name__, "MODEL"))
            messages = sorted(
                str(w.message).replace(type(model).__name__, "MODEL")
                for w in caught
                if issubclass(w.category, UserWarning)
            )
            outcomes.append((error, messages))
        assert outcomes[0] == outcomes[1], name


# ------------------------------------------------------------------ properties
finite_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def tables(draw):
    n_samples = draw(st.integers(2, 30))
    n_features = draw(st.integers(1, 5))
    return draw(arrays(np.float64, (n_samples, n_features), elements=finite_floats))


@pytest.mark.parametrize("estimator", ONE_PER_CLASS, ids=detector_id)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=tables())
def test_any_finite_table_fits_and_scores_finitely(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # Only a method's minimum number of samples may refuse a finite table.
        detector = fit_or_refuse(estimator, X, "sample")
    if detector is not None:
        assert_finite_scores(detector, X)


@registry
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_non_finite_cell_is_named_at_predict(estimator, fitted, data):
    n_samples = data.draw(st.integers(1, 20))
    X = data.draw(arrays(np.float64, (n_samples, N_FEATURES), elements=finite_floats))
    row = data.draw(st.integers(0, n_samples - 1))
    column = data.draw(st.integers(0, N_FEATURES - 1))
    X[row, column] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with pytest.raises(ValueError, match="NaN|infinity"):
        fitted.score_samples(X)
