"""
Images through a frozen backbone
================================

Photos are not rows of a table. :class:`skuad.features.ImageEmbedder` turns each image into
the pooled feature map of a frozen convolutional network, a vector a detector can take, and
sits in a :class:`~sklearn.pipeline.Pipeline` in front of any detector. Here the images are
scikit-learn's 8x8 digits; the digit 0 is normal, every other digit an anomaly.

With torchvision installed (``pip install "skuad[vision]"``),
``ImageEmbedder("resnet18", weights="DEFAULT")`` embeds with ImageNet features; the weights are
downloaded once, and only because they were asked for. To run anywhere in seconds, without a
download, this example uses a small convolutional network with random weights instead: any
``torch.nn.Module`` that maps images to a feature map can be the backbone.
"""

# %%
# A one-class task on images
# --------------------------
# ``y = 1`` marks an anomaly. The detector is trained on 70 % of the normal images; the test
# set holds the other normal images and every anomaly. Pixel values are brought to [0, 1], the
# range a backbone expects of float images.
import matplotlib.pyplot as plt
import torch
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from torch import nn

from skuad import ResADDetector
from skuad.datasets import load_digits_task, one_class_split
from skuad.features import ImageEmbedder

X, y = load_digits_task(normal_digits=(0,))
X_train, X_test, y_test = one_class_split(X / 16.0, y, random_state=0)
print(f"train: {len(X_train)} normal images; test: {len(X_test)}, {y_test.sum()} anomalies")

# %%
# The backbone
# ------------
# Three convolution blocks with random, seeded weights; the embedder copies and freezes it.
torch.manual_seed(0)
backbone = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.ReLU(),
)

# %%
# Embed, then detect
# ------------------
# The rows of ``X`` are flattened 8x8 grey images: ``image_shape=(1, 8, 8)`` says so. Each
# image is repeated to the backbone's 3 channels and its 64 feature maps are average-pooled to
# 64 numbers. (Photos of different sizes are brought to one with ``image_size=(H, W)``.)
# :class:`skuad.ResADDetector` is the detector meant for such embeddings.
embedder = ImageEmbedder(backbone, image_shape=(1, 8, 8), device="cpu")
pipeline = make_pipeline(embedder, ResADDetector(random_state=0, device="cpu"))
pipeline.fit(X_train)

fitted_embedder = pipeline[0]
print(
    f"feature map per image: {fitted_embedder.feature_shape_}, "
    f"embedding: {fitted_embedder.n_features_out_} numbers"
)
scores = pipeline.score_samples(X_test)  # higher = more normal
print(f"test AUROC on the embeddings: {roc_auc_score(y_test, -scores):.3f}")

# %%
# These clean 8x8 digits are easy: the raw pixels separate them as well. Embeddings pay off on
# photos, where pixels vary with light, pose and background, and with pretrained weights,
# which random ones are not.
pixels = ResADDetector(random_state=0, device="cpu").fit(X_train)
print(f"test AUROC on the raw pixels: {roc_auc_score(y_test, -pixels.score_samples(X_test)):.3f}")

# %%
# ``pooling=None`` keeps every position of the feature map instead (patch features, here
# ``64 * 2 * 2`` numbers per image in channel-first order), for detectors that take images:
# pass ``image_shape=feature_shape_`` to them.
#
# Scores of normal and anomalous test images
# ------------------------------------------
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(scores[y_test == 0], bins=30, alpha=0.6, label="digit 0 (normal)")
ax.hist(scores[y_test == 1], bins=30, alpha=0.6, label="other digits (anomalies)")
ax.set(xlabel="score_samples (higher = more normal)", ylabel="test images")
ax.legend()
fig.tight_layout()
plt.show()
