"""ResADDetector: residuals, the flow, references, labelled anomalies and groups."""

import runpy
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold

import skuad.resad
from skuad import ResADDetector
from skuad.nn.flows import CouplingFlow, standard_normal_log_density
from skuad.resad import (
    _rows_before_trailing_copies,
    draw_training_references,
    greedy_k_centre,
    nearest_candidate,
    nearest_reference_indices,
    nearest_reference_residuals,
    sample_without_replacement,
)

FAST = dict(n_coupling_blocks=2, epochs=3, random_state=0, device="cpu")


@pytest.fixture
def classes():
    """Four classes: tight clusters around far-apart centres; the fourth is never trained on."""
    rng = np.random.RandomState(0)
    centres = rng.normal(scale=6.0, size=(4, 4))
    X = np.vstack([c + rng.normal(size=(40, 4)) for c in centres])
    groups = np.repeat(np.arange(4), 40)
    return X, groups, centres


# ---------------------------------------------------------------------- residuals
def draw_training_residuals(X, groups, is_candidate, n_reference, rng):
    """Each row's residual against the reference ``draw_training_references`` gives it."""
    return X - X[draw_training_references(X, groups, is_candidate, n_reference, rng)]


def test_nearest_candidate_is_the_nearest_of_each_rows_candidates():
    rng = np.random.RandomState(1)
    x = rng.normal(size=(30, 3))
    candidates = rng.normal(size=(30, 5, 3))
    nearest = nearest_candidate(x, candidates)
    for i in range(30):
        assert nearest[i] == np.linalg.norm(x[i] - candidates[i], axis=1).argmin()


def test_nearest_reference_residuals_matches_brute_force():
    rng = np.random.RandomState(2)
    x = torch.as_tensor(rng.normal(size=(25, 6)))
    references = torch.as_tensor(rng.normal(size=(7, 6)))
    residual = nearest_reference_residuals(x, references)
    nearest = torch.cdist(x, references).argmin(dim=1)
    torch.testing.assert_close(residual, x - references[nearest])


@pytest.mark.parametrize("n_pool", [5, 200])
def test_sample_without_replacement_gives_distinct_indices(n_pool):
    draws = sample_without_replacement(500, n_pool, 4, np.random.default_rng(0))
    assert draws.shape == (500, 4)
    assert draws.min() >= 0 and draws.max() < n_pool
    assert all(len(set(row)) == 4 for row in draws)
    # Every index gets drawn: the draws are not stuck on a subset.
    assert len(np.unique(draws)) == n_pool


def test_training_residuals_exclude_the_row_itself():
    # With K at least the group size, every row is matched with all other rows of its group:
    # the residual must be to the nearest OTHER row, never the zero residual of itself.
    rng = np.random.RandomState(3)
    X = rng.normal(size=(12, 2)).astype(np.float32)
    groups = np.zeros(12, dtype=int)
    residuals = draw_training_residuals(X, groups, np.ones(12, bool), 50, np.random.default_rng(0))
    for i in range(12):
        others = np.delete(X, i, axis=0)
        nearest = others[np.linalg.norm(others - X[i], axis=1).argmin()]
        np.testing.assert_allclose(residuals[i], X[i] - nearest)
    assert np.all(np.linalg.norm(residuals, axis=1) > 0)


def test_training_residuals_use_own_group_normal_rows_only():
    rng = np.random.RandomState(4)
    near, far = rng.normal(size=(30, 3)), 100.0 + rng.normal(size=(30, 3))
    X = np.vstack([near, far]).astype(np.float32)
    groups = np.repeat([0, 1], 30)
    # Row 0 of group 0 sits on top of the anomalous row 1, which must never serve as reference.
    X[1] = X[0] + 1e-3
    is_normal = np.ones(60, bool)
    is_normal[1] = False
    gen = np.random.default_rng(0)
    for _ in range(20):
        residuals = draw_training_residuals(X, groups, is_normal, 3, gen)
        # References of the other group are 100 away: residuals stay small.
        assert np.abs(residuals).max() < 20
        assert np.linalg.norm(residuals[0]) > 1e-2
        assert np.all(np.linalg.norm(residuals, axis=1) > 0)


def test_training_references_are_redrawn_every_epoch():
    rng = np.random.RandomState(5)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    gen = np.random.default_rng(0)
    first = draw_training_residuals(X, np.zeros(50, int), np.ones(50, bool), 2, gen)
    second = draw_training_residuals(X, np.zeros(50, int), np.ones(50, bool), 2, gen)
    assert not np.allclose(first, second)


def _brute_force_nearest(x, references):
    """Nearest reference by explicit distances; a row equal to a reference skips it once."""
    distances = np.linalg.norm(x[:, None, :] - references[None], axis=2)
    for i in range(len(x)):
        coincide = np.flatnonzero(distances[i] == 0)
        if len(coincide) and len(references) > 1:
            distances[i, coincide[0]] = np.inf
    return distances.argmin(axis=1)


@pytest.mark.parametrize("chunk_values", [7, 1 << 20])
def test_nearest_reference_search_is_exact_in_any_chunking(monkeypatch, chunk_values):
    monkeypatch.setattr(skuad.resad, "_DISTANCE_CHUNK_VALUES", chunk_values)
    rng = np.random.RandomState(8)
    references = rng.normal(size=(23, 3))
    references[17] = references[4]  # a tie: the lower index wins
    x = np.vstack([rng.normal(size=(40, 3)), references[4] + 1e-3])
    found = nearest_reference_indices(torch.as_tensor(x), torch.as_tensor(references))
    np.testing.assert_array_equal(found.numpy(), _brute_force_nearest(x, references))
    assert found[-1] == 4


@pytest.mark.parametrize("chunk_values", [5, 1 << 20])
def test_a_row_that_is_a_reference_is_matched_with_another(monkeypatch, chunk_values):
    # Leave-one-out: a training row in the pool never gets the residual 0 against itself.
    monkeypatch.setattr(skuad.resad, "_DISTANCE_CHUNK_VALUES", chunk_values)
    rng = np.random.RandomState(9)
    pool = rng.normal(size=(15, 4))
    residuals = nearest_reference_residuals(torch.as_tensor(pool), torch.as_tensor(pool)).numpy()
    for i in range(15):
        others = np.delete(pool, i, axis=0)
        nearest = others[np.linalg.norm(others - pool[i], axis=1).argmin()]
        np.testing.assert_allclose(residuals[i], pool[i] - nearest)
    assert np.all(np.linalg.norm(residuals, axis=1) > 0)
    # A row with two copies among the references: one is skipped, the other matches exactly.
    doubled = np.vstack([pool, pool[:1]])
    residual = nearest_reference_residuals(torch.as_tensor(pool[:1]), torch.as_tensor(doubled))
    assert torch.all(residual == 0)
    # A single reference: nothing else to match.
    alone = nearest_reference_indices(torch.as_tensor(pool[:3]), torch.as_tensor(pool[:1]))
    np.testing.assert_array_equal(alone.numpy(), [0, 0, 0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nearest_reference_of_a_row_does_not_depend_on_the_batch(dtype):
    # Bit for bit: scoring may run a row in batches of any size, at any position.
    rng = np.random.RandomState(10)
    references = torch.as_tensor(rng.normal(size=(300, 17)), dtype=dtype)
    x = torch.as_tensor(rng.normal(size=(257, 17)), dtype=dtype)
    x[5] = references[7]
    full = nearest_reference_residuals(x, references)
    order = torch.as_tensor(rng.permutation(len(x)))
    assert torch.equal(nearest_reference_residuals(x[order], references), full[order])
    for start, stop in [(0, 1), (5, 6), (3, 70), (100, 257)]:
        part = nearest_reference_residuals(x[start:stop], references)
        assert torch.equal(part, full[start:stop])
    # Padded with other rows (as a fixed-shape scoring batch is): same results.
    padded = torch.cat([x[:10], torch.zeros(54, 17, dtype=dtype)])
    assert torch.equal(nearest_reference_residuals(padded, references)[:10], full[:10])


def test_rows_before_trailing_copies_of_the_first_row():
    x = torch.as_tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [1.0, 2.0], [1.0, 2.0]])
    assert _rows_before_trailing_copies(x) == 4  # the copy inside the batch is a real row
    assert _rows_before_trailing_copies(x[:1].expand(5, -1)) == 1
    assert _rows_before_trailing_copies(x[:4]) == 4


def test_scoring_a_few_rows_searches_the_references_for_those_rows_only(monkeypatch):
    # A short batch is padded to the scoring batch's size with copies of its first row;
    # their residuals are the first row's, so the padding is not searched again.
    rng = np.random.RandomState(11)
    X = rng.normal(size=(400, 5))
    detector = ResADDetector(**FAST).fit(X)
    X_new = rng.normal(size=(40, 5))
    expected = detector.score_samples(X_new)
    searched = []
    search = skuad.resad.nearest_reference_residuals

    def recording_search(x, references, coincidence_radius=None):
        searched.append(len(x))
        return search(x, references, coincidence_radius)

    monkeypatch.setattr(skuad.resad, "nearest_reference_residuals", recording_search)
    scores = detector.score_samples(X_new[:3])
    # The memory probes search 2 and 4 rows; the scoring batch (1,024 rows) only its 3 rows.
    assert max(searched) <= 4 and 3 in searched
    np.testing.assert_array_equal(scores, expected[:3])


# ---------------------------------------------------------------------- the coreset
def test_greedy_k_centre_picks_the_farthest_row_each_step():
    rng = np.random.RandomState(11)
    X = rng.normal(size=(200, 3))
    chosen = greedy_k_centre(X, 25)
    assert chosen.shape == (25,) and len(set(chosen.tolist())) == 25
    assert chosen[0] == np.linalg.norm(X - X.mean(axis=0), axis=1).argmin()
    for step in range(1, 25):
        distance_to_chosen = np.linalg.norm(X[:, None, :] - X[chosen[:step]][None], axis=2).min(
            axis=1
        )
        assert chosen[step] == distance_to_chosen.argmax()
    np.testing.assert_array_equal(greedy_k_centre(X, 25), chosen)  # deterministic
    # Greedy k-centre covers the data: every row is within the covering radius, and that
    # radius is at most the smallest distance between two chosen rows.
    radius = np.linalg.norm(X[:, None, :] - X[chosen][None], axis=2).min(axis=1).max()
    gaps = np.linalg.norm(X[chosen][:, None] - X[chosen][None], axis=2)
    assert radius <= gaps[~np.eye(25, dtype=bool)].min()


@pytest.mark.parametrize("n_features", [1, 5])
@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 500])
def test_greedy_k_centre_reading_chunks_picks_the_same_rows(chunk_rows, n_features):
    # Reading the rows a chunk at a time (sparse input) changes no bit of the selection.
    rng = np.random.RandomState(13)
    X = rng.normal(size=(200, n_features)) * rng.uniform(0.1, 100, size=n_features)
    X = X.astype(np.float32)
    X[50:60] = X[3]  # ties
    chosen = greedy_k_centre(X, 40, chunk_rows=chunk_rows)
    np.testing.assert_array_equal(chosen, greedy_k_centre(X, 40))


def test_greedy_k_centre_keeps_every_row_when_they_fit():
    X = np.random.RandomState(12).normal(size=(30, 2))
    np.testing.assert_array_equal(greedy_k_centre(X, 30), np.arange(30))
    np.testing.assert_array_equal(greedy_k_centre(X, 100), np.arange(30))


# ---------------------------------------------------------------------- the flow
def _random_flow(n_features, n_blocks=3, seed=0):
    """A flow moved away from its identity start, so that the checks below mean something."""
    torch.manual_seed(seed)
    flow = CouplingFlow(n_features, n_blocks=n_blocks, hidden_ratio=1.5, seed=seed).double()
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return flow


@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_flow_is_invertible(n_features):
    flow = _random_flow(n_features)
    x = torch.randn(40, n_features, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x)
    torch.testing.assert_close(flow.inverse(z), x)


@pytest.mark.parametrize("n_features", [1, 3, 6])
def test_flow_log_det_matches_numerical_jacobian(n_features):
    flow = _random_flow(n_features, seed=1)
    x = torch.randn(4, n_features, dtype=torch.float64)
    _, log_det = flow(x)
    for i in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda row: flow(row[None])[0][0], x[i])
        expected = torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(log_det[i], expected)
        assert abs(float(expected)) > 1e-3  # not trivially the identity


def test_flow_log_prob_is_change_of_variables():
    flow = _random_flow(4, seed=2)
    x = torch.randn(10, 4, dtype=torch.float64)
    z, log_det = flow(x)
    torch.testing.assert_close(flow.log_prob(x), standard_normal_log_density(z) + log_det)
    # An untrained flow is the identity: the standard normal density.
    fresh = CouplingFlow(4, n_blocks=2).double()
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(dim=1)
    torch.testing.assert_close(fresh.log_prob(x), expected)


# ---------------------------------------------------------------------- references
def test_reference_swap_changes_scores_without_refitting(classes):
    X, groups, centres = classes
    train = groups < 3
    detector = ResADDetector(**FAST).fit(X[train], groups=groups[train])
    weights = {k: v.clone() for k, v in detector.net_.module_.state_dict().items()}
    fallback = detector.reference_.copy()
    assert fallback.shape == (3 * 4, 4)
    assert set(detector.reference_group_) == {0, 1, 2}
    X_new = X[groups == 3]
    before = detector.score_samples(X_new)

    detector.set_reference(X_new[:4])
    np.testing.assert_array_equal(detector.reference_, X_new[:4])
    after = detector.score_samples(X_new)
    # The new class is close to its own references, far from the training references.
    assert after[4:].mean() > before[4:].mean()
    for key, value in detector.net_.module_.state_dict().items():
        torch.testing.assert_close(value, weights[key])

    detector.set_reference(fallback)
    np.testing.assert_allclose(detector.score_samples(X_new), before, rtol=1e-12)


def test_reference_parameter_equals_set_reference(classes):
    X, groups, _ = classes
    train = groups < 3
    X_ref = X[groups == 3][:4]
    given = ResADDetector(reference=X_ref, **FAST).fit(X[train], groups=groups[train])
    swapped = ResADDetector(**FAST).fit(X[train], groups=groups[train]).set_reference(X_ref)
    np.testing.assert_array_equal(given.reference_, X_ref)
    np.testing.assert_allclose(given.score_samples(X), swapped.score_samples(X), rtol=1e-12)
    # offset_ is calibrated on the training classes either way.
    assert given.offset_ == swapped.offset_


def test_new_class_is_scored_from_its_references(classes):
    X, groups, centres = classes
    train = groups < 3
    detector = ResADDetector(**{**FAST, "epochs": 10}).fit(X[train], groups=groups[train])
    rng = np.random.RandomState(6)
    normal = X[groups == 3]
    anomalies = centres[3] + rng.uniform(3, 5, size=(20, 4)) * rng.choice([-1, 1], (20, 4))
    detector.set_reference(normal[:4])
    scores = detector.score_samples(np.vstack([normal[4:], anomalies]))
    labels = np.r_[np.zeros(len(normal) - 4), np.ones(20)]
    assert roc_auc_score(labels, -scores) > 0.9


def test_set_reference_validates_and_recalibrates(classes):
    X, groups, _ = classes
    detector = ResADDetector(**FAST).fit(X[groups == 0])
    with pytest.raises(ValueError, match="features"):
        detector.set_reference(X[:4, :3])
    with pytest.raises(ValueError):
        detector.set_reference(np.full((4, 4), np.nan))
    new = X[groups == 3]
    detector.set_reference(new[:4], X_calib=new[4:])
    flagged = np.mean(detector.predict(new[4:]) == -1)
    assert flagged == pytest.approx(0.1, abs=0.05)


def test_unfitted_set_reference_raises(classes):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ResADDetector().set_reference(classes[0][:4])


# ---------------------------------------------------------------------- reference regimes
def test_one_class_fit_scores_against_every_training_row():
    rng = np.random.RandomState(13)
    X = rng.normal(size=(150, 4))
    detector = ResADDetector(**FAST).fit(X)
    assert detector.reference_pool_ == "training-rows"
    # The references are the training rows (in input units, through float32 scaling).
    np.testing.assert_allclose(detector.reference_, X, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(detector.reference_group_, np.zeros(150))
    few_shot = ResADDetector(reference_pool="few-shot", **FAST).fit(X)
    assert few_shot.reference_pool_ == "few-shot"
    assert few_shot.reference_.shape == (4, 4)


def test_reference_pool_above_the_cap_is_a_k_centre_coreset():
    rng = np.random.RandomState(14)
    X = rng.normal(size=(120, 3))
    detector = ResADDetector(max_references=15, **FAST).fit(X)
    assert detector.reference_.shape == (15, 3)
    scaled = detector._scale(X)
    expected = np.sort(greedy_k_centre(scaled, 15))
    np.testing.assert_allclose(detector.reference_, X[expected], rtol=1e-5, atol=1e-6)


def _training_rows(monkeypatch):
    """Capture the rows ``[residual | anomaly flag]`` ResAD trains on (before any epoch)."""
    captured = []
    train = ResADDetector._train

    def capture(self, module, criterion, rows, *args, **kwargs):
        captured.append(rows.copy())
        return train(self, module, criterion, rows, *args, **kwargs)

    monkeypatch.setattr(ResADDetector, "_train", capture)
    return captured


@pytest.mark.parametrize("max_references", [10_000, 25])
def test_pool_training_residuals_are_leave_one_out(monkeypatch, max_references):
    # Each training row's residual is against the nearest OTHER pool member: the residuals
    # scoring a new row against the pool gives, never the residual 0 of a row against itself.
    captured = _training_rows(monkeypatch)
    rng = np.random.RandomState(15)
    X = rng.normal(size=(80, 3))
    detector = ResADDetector(max_references=max_references, **FAST).fit(X)
    residuals = captured[0][:, :-1]
    scaled = detector._scale(X)
    pool = detector._reference_scaled
    for i in range(len(X)):
        candidates = pool[np.any(pool != scaled[i], axis=1)]
        nearest = candidates[np.linalg.norm(candidates - scaled[i], axis=1).argmin()]
        np.testing.assert_allclose(residuals[i], scaled[i] - nearest, atol=1e-6)
    assert np.all(np.linalg.norm(residuals, axis=1) > 0)


def test_pool_offset_flags_contamination_of_training_and_of_new_rows():
    # Training rows score leave-one-out, like new rows: the threshold set on them flags
    # about the same fraction of new rows of the same distribution.
    rng = np.random.RandomState(16)
    X, X_new = rng.normal(size=(400, 5)), rng.normal(size=(2000, 5))
    detector = ResADDetector(contamination=0.1, **FAST).fit(X)
    assert np.mean(detector.predict(X) == -1) == pytest.approx(0.1, abs=0.01)
    assert np.mean(detector.predict(X_new) == -1) == pytest.approx(0.1, abs=0.05)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_training_rows_score_leave_one_out_from_float32_input_too(offset):
    # A training row given as float32 is still recognised as the reference it is (up to the
    # rounding of its values), instead of scoring as a perfect match at residual ~1e-8.
    rng = np.random.RandomState(19)
    X = offset + rng.normal(size=(200, 4))
    detector = ResADDetector(**FAST).fit(X)
    exact = detector.score_samples(X)
    rounded = detector.score_samples(X.astype(np.float32))
    np.testing.assert_allclose(rounded, exact, rtol=1e-3, atol=1e-3)
    assert np.ptp(exact) > 0.1  # leave-one-out scores vary; self-matches would all be equal


def test_pool_residuals_in_scoring_do_not_depend_on_the_batch(monkeypatch):
    # The nearest-reference step of the real scoring path (fixed-shape float32 batches):
    # each row's residual is bit for bit the same whatever rows it is scored with.
    rng = np.random.RandomState(17)
    X = rng.normal(size=(300, 6))
    detector = ResADDetector(max_references=100, **FAST).fit(X)
    X_test = np.vstack([rng.normal(scale=1.5, size=(1500, 6)), X[:20]])
    seen = []
    residuals_of = skuad.resad.nearest_reference_residuals

    def record(x, references, coincidence_radius=None):
        residual = residuals_of(x, references, coincidence_radius)
        seen.append((x.clone(), residual.clone()))
        return residual

    monkeypatch.setattr(skuad.resad, "nearest_reference_residuals", record)

    def residuals(rows):
        seen.clear()
        scores = detector.score_samples(rows)
        by_row = {}
        for x, residual in seen:
            for row, value in zip(x.numpy(), residual.numpy(), strict=True):
                by_row.setdefault(row.tobytes(), value)
        return np.array([by_row[row.tobytes()] for row in detector._scale(rows)]), scores

    full, full_scores = residuals(X_test)
    order = rng.permutation(len(X_test))
    parts = [order, np.arange(1), np.arange(7, 40), np.arange(1400, 1520)]
    for rows in parts:
        part, scores = residuals(X_test[rows])
        np.testing.assert_array_equal(part, full[rows])
        np.testing.assert_allclose(scores, full_scores[rows], rtol=1e-6)


def test_pool_regime_detects_rows_away_from_every_training_row():
    # Normal rows on two far-apart clusters; anomalies between them. Against all training
    # rows the anomalies stand out (a few random references may all lie in one cluster).
    rng = np.random.RandomState(18)
    centres = np.array([[-6.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    X = np.vstack([c + rng.normal(size=(200, 3)) for c in centres])
    X_test = np.vstack(
        [c + rng.normal(size=(100, 3)) for c in centres] + [rng.normal(size=(40, 3)) * 1.0]
    )
    labels = np.r_[np.zeros(200), np.ones(40)]
    settings = {**FAST, "epochs": 10}
    pool = ResADDetector(**settings).fit(X).score_samples(X_test)
    assert roc_auc_score(labels, -pool) > 0.95


def test_groups_or_a_given_reference_select_the_few_shot_regime(classes):
    X, groups, _ = classes
    train = groups < 3
    grouped = ResADDetector(**FAST).fit(X[train], groups=groups[train])
    assert grouped.reference_pool_ == "few-shot"
    given = ResADDetector(reference=X[groups == 3][:4], **FAST).fit(X[groups == 0])
    assert given.reference_pool_ == "few-shot"
    np.testing.assert_array_equal(given.reference_, X[groups == 3][:4])
    # Forced pools, one per group, pooled for scoring.
    pooled = ResADDetector(reference_pool="training-rows", **FAST)
    pooled.fit(X[train], groups=groups[train])
    assert pooled.reference_.shape == (120, 4)
    np.testing.assert_array_equal(np.bincount(pooled.reference_group_), [40, 40, 40])


# ---------------------------------------------------------------------- labelled anomalies
def _with_anomalies(X, groups):
    rng = np.random.RandomState(7)
    y = np.zeros(len(X), dtype=int)
    y[rng.choice(len(X), 12, replace=False)] = 1
    X = X.copy()
    X[y == 1] += rng.uniform(4, 6, size=(12, X.shape[1]))
    return X, y


def test_y_alone_never_triggers_the_labelled_anomaly_path(classes):
    X, groups, _ = classes
    X, y = _with_anomalies(X, groups)
    plain = ResADDetector(**FAST).fit(X, groups=groups)
    with_y = ResADDetector(**FAST).fit(X, y, groups=groups)
    assert with_y.n_anomalies_used_ == 0
    assert not with_y.constraintor_active_
    assert with_y.normal_boundary_ is None
    np.testing.assert_array_equal(plain.score_samples(X), with_y.score_samples(X))

    # GridSearchCV always passes y to fit; it must be ignored as well.
    search = GridSearchCV(
        ResADDetector(**FAST),
        {"n_reference": [2]},
        scoring="roc_auc",
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(X, 1 - 2 * y)
    assert search.best_estimator_.n_anomalies_used_ == 0


def test_labelled_anomalies_are_used_when_asked(classes):
    X, groups, _ = classes
    X, y = _with_anomalies(X, groups)
    detector = ResADDetector(use_anomaly_labels=True, **{**FAST, "epochs": 5})
    detector.fit(X, y, groups=groups)
    assert detector.n_anomalies_used_ == 12
    assert detector.constraintor_active_
    assert detector.normal_boundary_ is not None and np.isfinite(detector.normal_boundary_)
    # Anomalies never serve as references: every reference is (up to float32 rounding) a
    # normal training row.
    gaps = np.abs(detector.reference_[:, None, :] - X[None]).max(axis=2)
    assert np.all(y[gaps.argmin(axis=1)] == 0)
    assert gaps.min(axis=1).max() < 1e-5
    same_as_bool = ResADDetector(use_anomaly_labels=True, **{**FAST, "epochs": 5})
    same_as_bool.fit(X, y.astype(bool), groups=groups)
    np.testing.assert_array_equal(detector.score_samples(X), same_as_bool.score_samples(X))


def test_labelled_anomalies_without_constraintor_still_train_the_boundary(classes):
    # The configuration the MVTec-AD benchmark selected: labels feed the boundary-guided
    # loss of the flow while the constraintor stays the identity.
    X, groups, _ = classes
    X, y = _with_anomalies(X, groups)
    settings = {**FAST, "epochs": 5}
    detector = ResADDetector(use_anomaly_labels=True, constraintor="off", **settings)
    detector.fit(X, y, groups=groups)
    assert detector.n_anomalies_used_ == 12
    assert not detector.constraintor_active_
    assert isinstance(detector.net_.module_.constraintor, torch.nn.Identity)
    assert detector.normal_boundary_ is not None and np.isfinite(detector.normal_boundary_)
    unlabelled = ResADDetector(constraintor="off", **settings).fit(X, groups=groups)
    assert not np.allclose(detector.score_samples(X), unlabelled.score_samples(X))


def test_sklearn_outlier_labels_are_rejected(classes):
    X, groups, _ = classes
    y = np.ones(len(X), dtype=int)
    y[:5] = -1
    with pytest.raises(ValueError, match="1 \\(or True\\) for labelled anomalies"):
        ResADDetector(use_anomaly_labels=True, **FAST).fit(X, y)


# ---------------------------------------------------------------------- groups
def test_group_validation(classes):
    X, groups, _ = classes
    with pytest.raises(ValueError, match="one class label per training row"):
        ResADDetector(**FAST).fit(X, groups=groups[:-1])
    lonely = groups.copy()
    lonely[0] = 99
    with pytest.raises(ValueError, match="Training group 99 has 1 normal row"):
        ResADDetector(**FAST).fit(X, groups=lonely)
    with pytest.raises(ValueError, match="feature vectors"):
        ResADDetector(image_shape=(1, 2, 2), **FAST).fit(X)


def test_groups_reach_fit_through_metadata_routing(classes):
    X, groups, _ = classes
    y = np.ones(len(X), dtype=int)
    y[::10] = -1
    search_kwargs = dict(scoring="roc_auc", cv=GroupKFold(2))
    with sklearn.config_context(enable_metadata_routing=True):
        detector = ResADDetector(**FAST).set_fit_request(groups=True)
        search = GridSearchCV(detector, {"n_reference": [2]}, **search_kwargs)
        search.fit(X, y, groups=groups)
    # Refitted on all rows, with their four classes.
    np.testing.assert_array_equal(search.best_estimator_.groups_, np.arange(4))
    # Without routing, groups only go to the CV splitter: the detector sees one class.
    search = GridSearchCV(ResADDetector(**FAST), {"n_reference": [2]}, **search_kwargs)
    search.fit(X, y, groups=groups)
    np.testing.assert_array_equal(search.best_estimator_.groups_, [0])


def test_string_groups_and_per_feature_scaling(classes):
    X, groups, _ = classes
    names = np.array(["a", "b", "c", "d"])[groups]
    detector = ResADDetector(feature_scaling="per-feature", **FAST).fit(X, groups=names)
    np.testing.assert_array_equal(detector.groups_, ["a", "b", "c", "d"])
    assert detector.score_samples(X).shape == (len(X),)


# ---------------------------------------------------------------------- example
def test_example_runs():
    example = Path(__file__).resolve().parents[1] / "examples" / "plot_resad_new_class.py"
    namespace = runpy.run_path(str(example), run_name="__main__")
    assert namespace["auroc"] > 0.8


def test_fitted_detector_does_not_carry_the_training_data(classes):
    X, groups, _ = classes
    detector = ResADDetector(**FAST).fit(X, groups=groups)
    redraw = dict(detector.net_.callbacks_)["reference_redraw"]
    assert redraw.residual_rows is None and redraw.dense_rows is None


def test_a_bad_reference_fails_the_fit_inside_its_rollback():
    X = np.random.RandomState(0).normal(size=(60, 4))
    detector = ResADDetector(n_coupling_blocks=2, epochs=2, random_state=0).fit(X)
    before = detector.score_samples(X)
    detector.set_params(reference=np.ones((3, 5)))  # 5 features, the data has 4
    with pytest.raises(ValueError, match="5 features"):
        detector.fit(X + 3.0)
    # The failed fit left the previous model in place, scores included.
    np.testing.assert_array_equal(detector.score_samples(X), before)
