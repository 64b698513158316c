"""CLADDetector: each stage on its own (hand-computed values), then the estimator's behaviour."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import adjusted_rand_score
from torch import nn

from skuad import CLADDetector
from skuad.clad import StudentTClassifier, _ClusteringNetwork, count_distinct_rows, odin_score
from skuad.losses import (
    DECLoss,
    dec_soft_assignment,
    dec_target_distribution,
    kl_divergence,
    student_t_log_kernel,
)
from skuad.nn import MLP, SmallResNet


def fast_clad(**params):
    schedule = dict(pretrain_epochs=30, dec_epochs=10, epochs=30)
    model = dict(n_clusters=3, latent_dim=2, temperature=1.0, device="cpu", random_state=0)
    return CLADDetector(**{**model, **schedule, **params})


@pytest.fixture(scope="module")
def three_blobs():
    X, y = make_blobs(
        n_samples=240, centers=[[-6, 0], [0, 6], [6, 0]], cluster_std=0.5, random_state=0
    )
    return X, y


@pytest.fixture(scope="module")
def fitted(three_blobs):
    X, _ = three_blobs
    return fast_clad().fit(X)


# ---------------------------------------------------------------- stage 2: DEC, by hand
def test_soft_assignment_matches_student_t_by_hand():
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    # alpha = 1: kernel 1 / (1 + d^2). Row 0: d^2 = 0, 1 -> 1, 1/2 -> (2/3, 1/3).
    # Row 1: d^2 = 9, 4 -> 1/10, 1/5 -> (1/3, 2/3).
    q = dec_soft_assignment(z, centers, alpha=1.0)
    np.testing.assert_allclose(q.numpy(), [[2 / 3, 1 / 3], [1 / 3, 2 / 3]], rtol=1e-12)
    # alpha = 3: kernel (1 + d^2 / 3)^-2. Row 0: 1 and (4/3)^-2 = 9/16 -> (16/25, 9/25).
    q3 = dec_soft_assignment(z[:1], centers, alpha=3.0)
    np.testing.assert_allclose(q3.numpy(), [[16 / 25, 9 / 25]], rtol=1e-12)
    np.testing.assert_allclose(
        student_t_log_kernel(z[:1], centers, 3.0).numpy(), [[0.0, -2 * math.log(4 / 3)]]
    )


def test_soft_assignment_of_far_points_stays_finite():
    z = torch.tensor([[1e15, 0.0]])  # kernel values ~1e-30: 0 / 0 if not in log space
    q = dec_soft_assignment(z, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    assert torch.isfinite(q).all()
    np.testing.assert_allclose(q.sum().item(), 1.0, rtol=1e-6)


def test_target_distribution_by_hand():
    q = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    # f = (1.4, 0.6). Row 0: (0.25/1.4, 0.25/0.6) = (75, 175)/420 -> (0.3, 0.7).
    # Row 1: (0.81/1.4, 0.01/0.6) = (243, 7)/420 -> (0.972, 0.028).
    p = dec_target_distribution(q)
    np.testing.assert_allclose(p.numpy(), [[0.3, 0.7], [0.972, 0.028]], rtol=1e-12)


def test_target_distribution_of_an_empty_cluster_is_zero():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    np.testing.assert_array_equal(dec_target_distribution(q).numpy(), q.numpy())


def test_kl_divergence_by_hand():
    p = torch.tensor([[0.3, 0.7], [1.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    expected = [0.3 * math.log(0.6) + 0.7 * math.log(1.4), math.log(2.0)]  # 0 log 0 = 0
    np.testing.assert_allclose(kl_divergence(p, q).numpy(), expected, rtol=1e-12)


def test_dec_loss_is_mean_kl_to_detached_target():
    q = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64, requires_grad=True)
    loss = DECLoss()(q)
    p = torch.tensor([[0.3, 0.7], [0.972, 0.028]], dtype=torch.float64)
    expected = kl_divergence(p, q.detach()).mean()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    (grad,) = torch.autograd.grad(loss, q)
    # P held fixed: d/dq of mean_i sum_j p log(p/q) is -p / (n q).
    np.testing.assert_allclose(grad.numpy(), -(p / q.detach()).numpy() / 2, rtol=1e-12)


# ---------------------------------------------------------------- stage 4: ODIN, by hand
def identity_classifier(weight=((1.0, 0.0), (0.0, 1.0))):
    layer = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float64))
    return layer.eval()


def test_odin_with_t1_eps0_is_log_max_softmax():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    scores = odin_score(identity_classifier(), x, temperature=1.0, epsilon=0.0)
    msp = [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))]
    np.testing.assert_allclose(np.exp(scores.numpy()), msp, rtol=1e-12)


def test_odin_temperature_scales_logits():
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    scores = odin_score(identity_classifier(), x, temperature=2.0, epsilon=0.0)
    np.testing.assert_allclose(scores.numpy(), [0.5 - math.log(math.exp(0.5) + 1)], rtol=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_odin_perturbation_by_hand(temperature):
    # Logits = x; predicted class 0. CE gradient is (-p1, p1) / T: sign (-1, +1), so the input
    # moves to x - eps * (-1, +1) = (1.1, -0.1).
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    scores = odin_score(identity_classifier(), x, temperature=temperature, epsilon=0.1)
    logits = np.array([1.1, -0.1]) / temperature
    expected = logits[0] - math.log(np.exp(logits).sum())
    np.testing.assert_allclose(scores.numpy(), [expected], rtol=1e-12)


def test_odin_zero_gradient_leaves_input_unmoved():
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    scores = odin_score(identity_classifier(((0, 0), (0, 0))), x, temperature=1.0, epsilon=5.0)
    np.testing.assert_allclose(scores.numpy(), [math.log(0.5)], rtol=1e-12)


def test_odin_works_under_no_grad_and_touches_no_parameter_grads():
    classifier = identity_classifier()
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        scores = odin_score(classifier, x, temperature=1.0, epsilon=0.1)
    np.testing.assert_allclose(scores.numpy(), [-math.log(1 + math.exp(-1.2))], rtol=1e-12)
    assert classifier.weight.grad is None


def test_estimator_msp_score_matches_classifier_softmax(fitted, three_blobs):
    X, _ = three_blobs
    module = fitted.net_.module_
    with torch.no_grad():
        x = torch.as_tensor(fitted._scale(X[:20]))
        msp = torch.softmax(module(x), dim=1).max(dim=1).values.double().numpy()
    np.testing.assert_allclose(np.exp(fitted.score_samples(X[:20])), msp, rtol=1e-5)


def test_estimator_odin_is_batched_and_in_scaled_units(three_blobs):
    X, _ = three_blobs
    detector = fast_clad(epsilon=0.05, temperature=10.0, batch_size=16).fit(X)
    x = torch.as_tensor(detector._scale(X))
    classifier = detector.net_.module_.eval()
    expected = odin_score(classifier, x, temperature=10.0, epsilon=0.05).numpy()
    # Scoring splits the gradient pass into chunks of batch_size (16) rows, in float32, so it
    # matches the one-pass reference to float32 rounding.
    np.testing.assert_allclose(detector.score_samples(X), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(detector.score_samples(X[:7]), detector.score_samples(X)[:7])


# ---------------------------------------------------------------- networks
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 5, 7), (1, 1, 1)])
def test_small_resnet_output_shape(shape):
    net = SmallResNet(shape, (4, 8, 16), n_classes=5).eval()
    out = net(torch.randn(3, int(np.prod(shape))))
    assert out.shape == (3, 5)


# ---------------------------------------------------------------- behaviour
def test_self_labels_recover_latent_subclasses(fitted, three_blobs):
    X, y = three_blobs
    assert fitted.n_clusters_ == 3
    assert fitted.labels_.shape == (len(X),)
    assert set(fitted.labels_) == {0, 1, 2}
    assert fitted.cluster_centers_.shape == (3, fitted.latent_dim)
    assert adjusted_rand_score(y, fitted.labels_) > 0.95
    assert 1 <= fitted.n_dec_epochs_ <= fitted.dec_epochs
    # Codes of the training rows are nearest to their own cluster's centre.
    with torch.no_grad():
        codes = fitted.encoder_(torch.as_tensor(fitted._scale(X))).numpy()
    nearest = np.argmin(((codes[:, None] - fitted.cluster_centers_[None]) ** 2).sum(2), axis=1)
    assert np.mean(nearest == fitted.labels_) > 0.95


def test_point_between_subclasses_is_less_normal_than_their_centres(fitted):
    # One-class boundaries would enclose the gap between the blobs; a classifier over the
    # sub-classes is unsure there.
    scores = fitted.score_samples([[-6, 0], [0, 6], [6, 0], [-3, 3], [3, 3]])
    assert scores[3:].max() < scores[:3].min()
    assert list(fitted.predict([[-6, 0], [-3, 3]])) == [1, -1]


def test_fit_is_deterministic(three_blobs):
    X, _ = three_blobs
    a = fast_clad(epochs=5).fit(X)
    b = fast_clad(epochs=5).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


def test_fewer_samples_than_clusters_warns_and_reduces_k():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    with pytest.warns(UserWarning, match="using 3 clusters"):
        detector = fast_clad(n_clusters=5, epochs=2).fit(X)
    assert detector.n_clusters_ == 3
    assert sorted(detector.labels_) == [0, 1, 2]
    assert np.all(np.isfinite(detector.score_samples(X)))


def test_single_cluster_falls_back_to_kernel_score(three_blobs):
    X, _ = three_blobs
    detector = fast_clad(n_clusters=1).fit(X)
    assert detector.net_ is None and detector.n_clusters_ == 1
    assert np.all(detector.labels_ == 0)
    with torch.no_grad():
        codes = detector.encoder_(torch.as_tensor(detector._scale(X[:5]))).double()
    sq = ((codes.numpy() - detector.cluster_centers_[0]) ** 2).sum(1)
    np.testing.assert_allclose(detector.score_samples(X[:5]), -np.log1p(sq), rtol=1e-5)


@pytest.mark.parametrize("n_rows", [5, 3000])
def test_distinct_rows_are_counted_as_numpy_counts_them_up_to_the_cap(n_rows):
    rng = np.random.RandomState(0)
    X = rng.choice([-1.0, -0.0, 0.0, 2.0], size=(n_rows, 2))  # -0.0 equals 0.0
    n_distinct = len(np.unique(X, axis=0))
    for at_most in (1, n_distinct - 1, n_distinct, n_distinct + 5):
        assert count_distinct_rows(X, at_most) == min(at_most, n_distinct)


def test_identical_rows_do_not_crash():
    X = np.ones((10, 3))
    with pytest.warns(UserWarning, match="only 1 distinct rows"):
        detector = fast_clad(epochs=2).fit(X)
    assert detector.n_clusters_ == 1
    assert np.all(np.isfinite(detector.score_samples(np.vstack([X[:2], 5 * X[:1]]))))


def test_empty_clusters_are_dropped_and_labels_reindexed(three_blobs, monkeypatch):
    X, _ = three_blobs

    def dec_leaving_cluster_1_empty(self, X, encoder, centers, labels, seed, device):
        self.n_dec_epochs_ = 0
        return np.where(labels == 1, 0, labels), centers

    monkeypatch.setattr(CLADDetector, "_deep_embedded_clustering", dec_leaving_cluster_1_empty)
    detector = fast_clad(epochs=2).fit(X)
    assert detector.n_clusters_ == 2
    assert set(detector.labels_) == {0, 1}
    assert detector.cluster_centers_.shape == (2, 2)
    assert detector.net_.module_.prototypes.shape[0] == 2


def test_dec_collapse_keeps_kmeans_labels(three_blobs, monkeypatch):
    X, _ = three_blobs
    original = _ClusteringNetwork.forward

    def collapsed(self, x):
        q = original(self, x)
        return q * 0 + torch.nn.functional.one_hot(torch.zeros(len(x), dtype=int), q.shape[1])

    monkeypatch.setattr(_ClusteringNetwork, "forward", collapsed)
    with pytest.warns(UserWarning, match="merged all training rows"):
        detector = fast_clad(epochs=2).fit(X)
    assert detector.n_clusters_ == 3
    assert adjusted_rand_score(three_blobs[1], detector.labels_) > 0.95


def test_images_use_resnet_and_conv_autoencoder():
    digits = load_digits()
    X = digits.data[np.isin(digits.target, (0, 1))][:120]
    detector = fast_clad(
        n_clusters=2, image_shape=(1, 8, 8), pretrain_epochs=3, dec_epochs=2, epochs=3, epsilon=0.01
    ).fit(X)
    assert isinstance(detector.net_.module_, SmallResNet)
    scores = detector.score_samples(X)
    assert scores.shape == (120,) and np.all(np.isfinite(scores))
    np.testing.assert_allclose(detector.score_samples(X[5:9]), scores[5:9], rtol=1e-10)


def test_student_t_classifier_logits_by_hand():
    classifier = StudentTClassifier(nn.Identity(), n_features=2, n_classes=2, alpha=1.0).double()
    with torch.no_grad():
        classifier.prototypes.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64))
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    # alpha = 1: logit = -log(1 + d^2). Row 0: d^2 = 0, 1; row 1: d^2 = 9, 4.
    expected = -np.log1p([[0.0, 1.0], [9.0, 4.0]])
    np.testing.assert_allclose(classifier(x).detach().numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("image", [False, True])
def test_student_t_head_builds_prototypes_on_the_feature_network(image):
    digits = load_digits()
    X = digits.data[np.isin(digits.target, (0, 1, 2))][:90]
    params = dict(image_shape=(1, 8, 8), classifier_hidden=(4, 8)) if image else {}
    detector = fast_clad(classifier_head="student_t", epochs=2, **params).fit(X)
    module = detector.net_.module_
    assert isinstance(module, StudentTClassifier)
    assert isinstance(module.features, SmallResNet if image else MLP)
    assert module.prototypes.shape == (detector.n_clusters_, 8 if image else 256)
    scores = detector.score_samples(X)
    assert np.all(np.isfinite(scores)) and np.all(scores <= 0)


def test_student_t_head_confidence_falls_far_from_the_data(three_blobs):
    # A linear last layer's confidence tends to 1 along a ray leaving the data (log -> 0);
    # the Student-t head's tends to 1 / K (log -> -log 3) and falls below every training row.
    X, _ = three_blobs
    ray = np.outer([10.0, 100.0, 1e4], [1.0, 1.0])
    linear = fast_clad(classifier_head="linear").fit(X)
    student_t = fast_clad(classifier_head="student_t").fit(X)
    assert linear.score_samples(ray)[-1] > np.percentile(linear.score_samples(X), 50)
    far = student_t.score_samples(ray)
    assert far[-1] < student_t.score_samples(X).min()
    assert far[-1] < far[0]
    np.testing.assert_allclose(far[-1], -np.log(3), atol=0.01)


def test_auto_head_is_student_t_for_vectors_and_linear_for_images(fitted):
    assert isinstance(fitted.net_.module_, StudentTClassifier)
    features = fitted.net_.module_.features
    assert isinstance(features, MLP) and isinstance(features[1], nn.ReLU)
    # (256, 256): one hidden layer of 256, then the 256-wide feature space of the prototypes.
    assert features[-1].out_features == 256
    digits = load_digits()
    X = digits.data[np.isin(digits.target, (0, 1))][:60]
    images = fast_clad(image_shape=(1, 8, 8), classifier_hidden=(4,), epochs=1).fit(X)
    assert type(images.net_.module_) is SmallResNet
    assert images.net_.module_.classifier.out_features == images.n_clusters_


def test_linear_head_is_relu_mlp(three_blobs):
    detector = fast_clad(classifier_head="linear", epochs=2).fit(three_blobs[0])
    assert isinstance(detector.net_.module_, MLP)
    assert isinstance(detector.net_.module_[1], nn.ReLU)
    assert detector.net_.module_[-1].out_features == 3


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"classifier_hidden": ()}, "classifier_hidden"),
        ({"n_clusters": 0}, "n_clusters"),
        ({"temperature": 0.0}, "temperature"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"classifier_head": "rbf"}, "classifier_head"),
    ],
)
def test_bad_parameters_raise_value_error(params, match, three_blobs):
    with pytest.raises(ValueError, match=match):
        fast_clad(**params).fit(three_blobs[0][:20])
