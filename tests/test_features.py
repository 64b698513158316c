"""ImageEmbedder: images (arrays or files) to frozen-backbone features, as a transformer."""

import pickle
import sys
import types

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from torch import nn

from skuad import ResADDetector
from skuad.datasets import load_digits_task, one_class_split
from skuad.features import ImageEmbedder
from tests.conftest import no_cuda, requires_cuda


def _backbone(in_channels=3, seed=0):
    """A tiny randomly initialised convolutional trunk: (N, C, H, W) -> (N, 8, H/2, W/2)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
    )


class BatchRecorder(nn.Module):
    """Wraps a backbone and records the size of every batch it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.batch_sizes = []

    def forward(self, x):
        self.batch_sizes.append(len(x))
        return self.inner(x)


@pytest.fixture
def images():
    """Seven 3-channel 12x12 images in [0, 1], channels first."""
    return np.random.RandomState(0).rand(7, 3, 12, 12)


def test_pooled_and_patch_feature_shapes(images):
    backbone = _backbone()
    avg = ImageEmbedder(backbone, device="cpu").fit(images)
    assert avg.transform(images).shape == (7, 8) and avg.n_features_out_ == 8
    assert avg.feature_shape_ == (8, 6, 6) and avg.image_shape_ == (3, 12, 12)
    patches = ImageEmbedder(backbone, pooling=None, device="cpu").fit(images)
    flat = patches.transform(images)
    assert flat.shape == (7, 8 * 6 * 6) and flat.dtype == np.float32
    # The pooled features are the pooled patches (channel-first order).
    maps = flat.reshape(7, 8, 6, 6)
    assert np.allclose(avg.transform(images), maps.mean(axis=(2, 3)), atol=1e-6)
    maximum = ImageEmbedder(backbone, pooling="max", device="cpu").fit_transform(images)
    assert np.allclose(maximum, maps.max(axis=(2, 3)))
    # A backbone that returns vectors is used as it is.
    vectors = nn.Sequential(backbone, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    assert ImageEmbedder(vectors, device="cpu").fit_transform(images).shape == (7, 5)
    assert list(avg.get_feature_names_out()) == [f"imageembedder{i}" for i in range(8)]


def test_every_image_layout_gives_the_same_features(images):
    embedder = ImageEmbedder(_backbone(), device="cpu")
    expected = clone(embedder).fit_transform(images)
    channels_last = images.transpose(0, 2, 3, 1)
    assert np.array_equal(clone(embedder).fit_transform(channels_last), expected)
    rows = images.reshape(7, -1)
    flat = clone(embedder).set_params(image_shape=(3, 12, 12)).fit(rows)
    assert flat.n_features_in_ == 3 * 12 * 12
    assert np.array_equal(flat.transform(rows), expected)
    # uint8 photos are divided by 255
    as_bytes = np.round(images * 255).astype(np.uint8)
    from_bytes = clone(embedder).fit_transform(as_bytes)
    assert np.allclose(from_bytes, clone(embedder).fit_transform(as_bytes / 255.0), atol=1e-5)
    # grey images (N, H, W) are one channel, repeated for a 3-channel backbone
    grey = images[:, 0]
    as_rgb = np.repeat(grey[:, None], 3, axis=1)
    assert np.array_equal(
        clone(embedder).fit_transform(grey), clone(embedder).fit_transform(as_rgb)
    )
    ambiguous = np.random.RandomState(0).rand(2, 3, 5, 3)
    with pytest.raises(ValueError, match="data_format"):
        clone(embedder).fit(ambiguous)
    forced = clone(embedder).set_params(data_format="channels_first").fit_transform(ambiguous)
    assert forced.shape == (2, 8)


def test_batches_are_bounded_and_do_not_change_the_result(images):
    recorder = BatchRecorder(_backbone())
    one_batch = ImageEmbedder(recorder, batch_size=64, device="cpu").fit(images)
    small = ImageEmbedder(recorder, batch_size=3, device="cpu").fit(images)
    assert np.allclose(one_batch.transform(images), small.transform(images), atol=1e-6)
    assert small.backbone_.batch_sizes[-3:] == [3, 3, 1]  # never more than batch_size
    assert one_batch.backbone_.batch_sizes[-1] == 7
    assert recorder.batch_sizes == []  # the embedder works on its own copy


def test_deterministic_frozen_and_picklable(images):
    backbone = _backbone()
    embedder = ImageEmbedder(backbone, device="cpu").fit(images)
    first = embedder.transform(images)
    assert np.array_equal(first, embedder.transform(images))
    assert np.array_equal(first, clone(embedder).fit(images).transform(images))
    assert not embedder.backbone_.training
    assert not any(p.requires_grad for p in embedder.backbone_.parameters())
    assert backbone.training and all(p.requires_grad for p in backbone.parameters())
    restored = pickle.loads(pickle.dumps(embedder))
    assert np.array_equal(restored.transform(images), first)


def test_device_cpu_and_errors_for_missing_cuda(images):
    cpu = ImageEmbedder(_backbone(), device="cpu").fit(images)
    assert next(cpu.backbone_.parameters()).device.type == "cpu"
    auto = ImageEmbedder(_backbone(), device="auto").fit(images)
    assert np.allclose(auto.transform(images), cpu.transform(images), atol=1e-5)


@no_cuda
def test_cuda_request_without_cuda_is_a_clear_error(images):
    with pytest.raises(ValueError, match="CUDA is not available"):
        ImageEmbedder(_backbone(), device="cuda").fit(images)


@requires_cuda
def test_cuda_gives_the_cpu_features(images):
    cpu = ImageEmbedder(_backbone(), device="cpu").fit(images).transform(images)
    cuda = ImageEmbedder(_backbone(), device="cuda").fit(images)
    assert np.allclose(cuda.transform(images), cpu, atol=1e-4)
    assert next(cuda.backbone_.parameters()).device.type == "cpu"  # kept on CPU between calls


def test_image_files_read_with_pillow(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, size=(4, 10, 10, 3), dtype=np.uint8)
    paths = []
    for i, image in enumerate(pixels):
        path = tmp_path / f"{i}.png"
        image_module.fromarray(image).save(path)
        paths.append(str(path))
    embedder = ImageEmbedder(_backbone(), device="cpu")
    from_files = clone(embedder).fit(paths)
    assert from_files.image_shape_ is None
    assert np.array_equal(from_files.transform(paths), clone(embedder).fit_transform(pixels))
    # Different sizes need a common size.
    image_module.fromarray(rng.randint(0, 256, (14, 9, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    mixed = paths + [str(tmp_path / "x.png")]
    with pytest.raises(ValueError, match="image_size"):
        clone(embedder).fit(paths).transform(mixed)
    resized = clone(embedder).set_params(image_size=8).fit_transform(mixed)
    assert resized.shape == (5, 8)
    (tmp_path / "broken.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        clone(embedder).fit([str(tmp_path / "broken.png")])


def test_bad_input_gets_a_clear_value_error(images):
    embedder = ImageEmbedder(_backbone(), device="cpu")
    with pytest.raises(ValueError, match="image_shape"):
        clone(embedder).fit(images.reshape(7, -1))
    with pytest.raises(ValueError, match="holds 300 values"):
        clone(embedder).set_params(image_shape=(3, 10, 10)).fit(images.reshape(7, -1))
    with pytest.raises(ValueError, match="weights='DEFAULT' applies to a named"):
        clone(embedder).set_params(weights="DEFAULT").fit(images)
    with pytest.raises(ValueError, match="2 channels but the backbone expects"):
        clone(embedder).set_params(data_format="channels_first").fit(images[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        bad = images.copy()
        bad[0, 0, 0, 0] = np.nan
        clone(embedder).fit(bad)
    with pytest.raises(ValueError, match="numeric pixel values"):
        clone(embedder).fit(np.array([["a"] * 4] * 3))
    with pytest.raises(ValueError, match="0 samples"):
        clone(embedder).fit(images[:0])
    with pytest.raises(ValueError, match="backbone failed on a batch"):
        ImageEmbedder(_backbone(in_channels=5), device="cpu", in_channels=None).fit(images)
    with pytest.raises(ValueError, match="must return a tensor"):
        ImageEmbedder(nn.Flatten(0), device="cpu").fit(images)
    fitted = clone(embedder).fit(images)
    with pytest.raises(ValueError, match="fitted on \\(3, 12, 12\\)"):
        fitted.transform(images[:, :, :10, :10])
    with pytest.raises(ValueError, match="pooling"):
        ImageEmbedder(_backbone(), pooling="mean").fit(images)


def test_named_backbone_needs_torchvision(images, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision fails
    with pytest.raises(ImportError, match=r"skuad\[vision\].*or pass a torch.nn.Module"):
        ImageEmbedder("resnet18", device="cpu").fit(images)


class _TinyClassifier(nn.Module):
    """Shaped like a torchvision ResNet: a trunk, then ``avgpool`` and ``fc``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 10)


def test_named_backbone_is_cut_before_pooling_and_seeded(images, monkeypatch):
    calls = []

    def get_model(name, weights=None):
        calls.append((name, weights))
        return _TinyClassifier()

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    embedder = ImageEmbedder("tiny", random_state=0, device="cpu").fit(images)
    assert calls == [("tiny", None)]  # weights=None: random initialisation, nothing downloaded
    assert list(dict(embedder.backbone_.named_children())) == ["conv", "relu"]
    assert embedder.feature_shape_ == (6, 10, 10)
    same = ImageEmbedder("tiny", random_state=0, device="cpu").fit(images)
    other = ImageEmbedder("tiny", random_state=1, device="cpu").fit(images)
    assert np.array_equal(same.transform(images), embedder.transform(images))
    assert not np.allclose(other.transform(images), embedder.transform(images))
    ImageEmbedder("tiny", weights="DEFAULT", device="cpu").fit(images)
    assert calls[-1] == ("tiny", "DEFAULT")  # pretrained weights only when asked for


def test_in_a_pipeline_before_a_detector():
    X, y = load_digits_task(normal_digits=(0,))
    X_train, X_test, y_test = one_class_split(X / 16.0, y, random_state=0)
    pipeline = make_pipeline(
        ImageEmbedder(_backbone(), image_shape=(1, 8, 8), image_size=16, device="cpu"),
        ResADDetector(epochs=3, random_state=0, device="cpu"),
    ).fit(X_train)
    scores = pipeline.score_samples(X_test)
    assert scores.shape == (len(X_test),) and set(pipeline.predict(X_test)) <= {-1, 1}
    assert roc_auc_score(y_test, -scores) > 0.7  # the features separate 0 from other digits
