"""Images to feature vectors through a frozen convolutional backbone, for any detector.

:class:`ImageEmbedder` is a scikit-learn transformer: images in (arrays or file paths), one
row of backbone features per image out, so that ``make_pipeline(ImageEmbedder(...),
ResADDetector())`` detects anomalies in photos the way the ADBench ``CV_by_ResNet18`` sets do.
Named torchvision backbones and their pretrained weights need the ``vision`` extra
(``pip install "skuad[vision]"``); any ``torch.nn.Module`` works without it.
"""

import copy
from collections import OrderedDict
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from skuad._doc_link import DocLinkMixin
from skuad._training import resolve_device, seeded
from skuad.base import seed_from

#: Per-channel mean and standard deviation of ImageNet, which torchvision's weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_backbone(name, weights):
    """The convolutional trunk of torchvision model ``name``: the network up to its pooling."""
    try:
        import torchvision
    except (ImportError, OSError, RuntimeError) as exc:
        # A torchvision built for another torch (for example a CUDA build next to the CPU
        # torch) fails with RuntimeError or OSError rather than ImportError.
        raise ImportError(
            f"backbone={name!r} needs torchvision, which could not be imported ({exc}). Install "
            'it with pip install "skuad[vision]" (a torchvision built for the installed torch), '
            "or pass a torch.nn.Module as backbone."
        ) from exc
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except ValueError as exc:
        raise ValueError(f"backbone={name!r}, weights={weights!r}: {exc}") from exc
    children = OrderedDict(model.named_children())
    if "avgpool" in children:  # ResNet, ResNeXt, Wide ResNet, RegNet, ...
        names = list(children)
        return nn.Sequential(OrderedDict((n, children[n]) for n in names[: names.index("avgpool")]))
    if isinstance(getattr(model, "features", None), nn.Module):  # VGG, MobileNet, EfficientNet
        return model.features
    raise ValueError(
        f"backbone={name!r}: cannot tell where this torchvision model's feature map ends (it has "
        "neither an 'avgpool' nor a 'features' part). Build the trunk yourself and pass it as a "
        "torch.nn.Module that returns a feature map."
    )


class ImageEmbedder(DocLinkMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Embed images with a frozen backbone network: one feature vector per image.

    Images go through the backbone unchanged by training (evaluation mode, no gradients) and
    its feature map is average- or max-pooled to one vector per image, or kept whole as patch
    features. ``fit`` builds and checks the backbone and learns nothing from the data, so the
    transformer can precede any detector in a :class:`~sklearn.pipeline.Pipeline`.

    Parameters
    ----------
    backbone : str or torch.nn.Module, default='resnet18'
        A torchvision model name (``'resnet18'``, ``'resnet50'``, ``'efficientnet_b0'``, ...;
        needs torchvision), cut before its pooling and classifier; or any ``torch.nn.Module``
        that maps a float tensor of shape (N, C, H, W) to a feature map (N, D, h, w) or to
        vectors (N, D). A module is copied at ``fit``; the copy is frozen.
    weights : str or None, default=None
        torchvision weights for a named backbone: ``None`` for random initialisation (seeded by
        ``random_state``; nothing is downloaded), ``'DEFAULT'`` or a name such as
        ``'IMAGENET1K_V1'`` for pretrained weights, which torchvision downloads on first use
        into its cache. Must be None for a module backbone.
    pooling : {'avg', 'max'} or None, default='avg'
        How a feature map (N, D, h, w) becomes a vector: global average or max over positions
        (D features); ``None`` keeps every position (patch features, ``D * h * w`` features in
        channel-first order, so a skuad detector can read them with
        ``image_shape=feature_shape_``). Ignored when the backbone returns vectors.
    image_shape : tuple of 3 ints or None, default=None
        ``(C, H, W)`` of images given as flattened rows (a 2-D ``X``, as in
        :func:`skuad.datasets.load_digits_task`); not needed for arrays of images or paths.
    data_format : {'auto', 'channels_first', 'channels_last'}, default='auto'
        Layout of a 4-D array: (N, C, H, W) or (N, H, W, C). ``'auto'`` reads a first axis of
        1 or 3 as channels first and a last axis of 1 or 3 as channels last, and refuses arrays
        where both or neither apply. A 3-D array is (N, H, W), one channel.
    image_size : int, tuple of 2 ints or None, default=None
        Resize every image to this (H, W) (bilinear) before the backbone; needed for file paths
        of images of different sizes. ``None`` keeps the size.
    in_channels : int or None, default=3
        Channels the backbone expects. One-channel images are repeated to it (grey to RGB);
        other mismatches raise ``ValueError``. ``None`` passes the images' channels as they are.
    normalize : 'imagenet', tuple of 2 sequences, or None, default='imagenet'
        Per-channel ``(x - mean) / std`` after pixel values are brought to [0, 1]:
        ``'imagenet'`` uses :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD` (what torchvision's
        pretrained weights expect); ``(mean, std)`` gives them; ``None`` leaves values as they
        are. Integer images (for example uint8 photos) are divided by 255 first; float images
        are taken to be in [0, 1] already.
    batch_size : int, default=64
        Images per forward pass; memory stays bounded by one batch whatever the number of
        images.
    device : str, default='auto'
        ``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
    random_state : int, RandomState instance or None, default=None
        Seeds the random initialisation of a named backbone with ``weights=None``.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The frozen backbone, in evaluation mode, on the CPU between calls.
    image_shape_ : tuple of 3 ints or None
        ``(C, H, W)`` of the images seen at ``fit``, before resizing and channel repetition
        (None for image files).
    feature_shape_ : tuple of ints
        Shape of one image's backbone output before pooling: ``(D, h, w)`` or ``(D,)``.
    n_features_out_ : int
        Number of features per image.
    n_features_in_ : int
        Number of values per row, only when ``fit`` was given flattened rows (2-D ``X``).

    See Also
    --------
    skuad.ResADDetector : A detector meant for backbone embeddings.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skuad.features import ImageEmbedder
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    >>> images = np.random.RandomState(0).rand(5, 16, 16, 3)  # channels last, in [0, 1]
    >>> ImageEmbedder(backbone, device="cpu").fit_transform(images).shape
    (5, 8)
    """

    _parameter_constraints: dict = {
        "backbone": [str, HasMethods(["forward"])],
        "weights": [str, None],
        "pooling": [StrOptions({"avg", "max"}), None],
        "image_shape": [tuple, list, None],
        "data_format": [StrOptions({"auto", "channels_first", "channels_last"})],
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple, list, None],
        "in_channels": [Interval(Integral, 1, None, closed="left"), None],
        "normalize": [StrOptions({"imagenet"}), tuple, list, None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        backbone="resnet18",
        *,
        weights=None,
        pooling="avg",
        image_shape=None,
        data_format="auto",
        image_size=None,
        in_channels=3,
        normalize="imagenet",
        batch_size=64,
        device="auto",
        random_state=None,
    ):
        self.backbone = backbone
        self.weights = weights
        self.pooling = pooling
        self.image_shape = image_shape
        self.data_format = data_format
        self.image_size = image_size
        self.in_channels = in_channels
        self.normalize = normalize
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state

    # ------------------------------------------------------------------ input
    def _images(self, X):
        """``X`` as an indexable source of images: ``('paths', list)`` or ``('array', ndarray)``
        with the array in (N, C, H, W) layout (a view where possible, never a float copy)."""
        if isinstance(X, str | Path):
            raise ValueError("X must be a sequence of images or image paths, got a single path.")
        if isinstance(X, list | tuple) and X and all(isinstance(x, str | Path) for x in X):
            return "paths", [Path(x) for x in X]
        if hasattr(X, "toarray"):
            raise ValueError("Sparse input is not supported by ImageEmbedder; pass images.")
        try:
            X = np.asarray(X)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"X must be an array of images of one shape ({exc}).") from exc
        if X.dtype == object or not (
            np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.bool_)
        ):
            raise ValueError(
                f"X must hold numeric pixel values or be a list of image paths, got dtype "
                f"{X.dtype}."
            )
        if len(X) == 0:
            raise ValueError("X holds no images (0 samples); at least 1 is required.")
        if X.ndim == 2:
            if self.image_shape is None:
                raise ValueError(
                    f"X is 2-D {X.shape}: rows are flattened images, so pass image_shape=(C, H, W)"
                    " (for example (1, 8, 8) for scikit-learn's digits), or pass an array of "
                    "images (N, H, W), (N, C, H, W) or (N, H, W, C)."
                )
            shape = tuple(int(v) for v in self.image_shape)
            if len(shape) != 3 or min(shape) < 1:
                raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape!r}.")
            if np.prod(shape) != X.shape[1]:
                raise ValueError(
                    f"image_shape={shape} holds {np.prod(shape)} values but the rows of X "
                    f"have {X.shape[1]}."
                )
            return "array", X.reshape(len(X), *shape)
        if X.ndim == 3:
            return "array", X[:, None]
        if X.ndim != 4:
            raise ValueError(
                f"X must be images (N, H, W), (N, C, H, W) or (N, H, W, C), or flattened rows "
                f"with image_shape; got an array of shape {X.shape}."
            )
        data_format = self.data_format
        if data_format == "auto":
            first, last = X.shape[1] in (1, 3), X.shape[-1] in (1, 3)
            if first == last:
                raise ValueError(
                    f"Cannot tell the channel axis of images of shape {X.shape[1:]}; pass "
                    "data_format='channels_first' for (N, C, H, W) or 'channels_last' for "
                    "(N, H, W, C)."
                )
            data_format = "channels_first" if first else "channels_last"
        if data_format == "channels_last":
            X = X.transpose(0, 3, 1, 2)
        return "array", X

    def _load_paths(self, paths):
        try:
            from PIL import Image
        except ImportError as exc:
            raise ImportError(
                'Reading image files needs Pillow: pip install "skuad[vision]" (or pillow).'
            ) from exc
        mode = "L" if self.in_channels == 1 else "RGB"
        images = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    images.append(np.asarray(image.convert(mode)))
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: not a readable image ({exc}).") from exc
        return images

    def _target_size(self):
        if self.image_size is None:
            return None
        size = self.image_size
        size = (size, size) if isinstance(size, Integral) else tuple(size)
        if len(size) != 2 or not all(isinstance(v, Integral) and v >= 1 for v in size):
            raise ValueError(f"image_size must be an int or (H, W), got {self.image_size!r}.")
        return size

    def _mean_std(self, n_channels):
        if self.normalize is None:
            return None
        if isinstance(self.normalize, str):
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            if len(self.normalize) != 2:
                raise ValueError(
                    f"normalize must be 'imagenet', (mean, std) or None, got {self.normalize!r}."
                )
            mean, std = self.normalize
        mean, std = np.ravel(mean).astype(np.float32), np.ravel(std).astype(np.float32)
        if mean.shape != std.shape or len(mean) not in (1, n_channels) or np.any(std <= 0):
            raise ValueError(
                f"normalize needs one mean and one positive std per channel ({n_channels}), got "
                f"mean {mean.tolist()} and std {std.tolist()}."
            )
        return (
            torch.from_numpy(mean).reshape(1, -1, 1, 1),
            torch.from_numpy(std).reshape(1, -1, 1, 1),
        )

    def _to_tensor(self, batch, size):
        """One batch of images (a list of (C, H, W) or (H, W[, C]) arrays, or an (n, C, H, W)
        array) as the backbone's float input, on the CPU."""
        if isinstance(batch, list):  # decoded files: (H, W) or (H, W, C) uint8, maybe ragged
            tensors = []
            for image in batch:
                image = image[:, :, None] if image.ndim == 2 else image
                tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
                tensor = tensor.float().div_(255.0)[None]
                if size is not None:
                    tensor = F.interpolate(tensor, size=size, mode="bilinear", antialias=True)
                tensors.append(tensor)
            if len({tuple(t.shape) for t in tensors}) > 1:
                raise ValueError(
                    "The image files have different sizes; pass image_size=(H, W) to resize "
                    "them to one."
                )
            x = torch.cat(tensors)
        else:
            scale = 255.0 if np.issubdtype(batch.dtype, np.integer) else 1.0
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            if scale != 1.0:
                x = x / scale
            if size is not None and tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
        if not torch.isfinite(x).all():
            raise ValueError("The images hold NaN or infinite values.")
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            if x.shape[1] != 1:
                raise ValueError(
                    f"The images have {x.shape[1]} channels but the backbone expects "
                    f"in_channels={self.in_channels} (only 1-channel images are repeated)."
                )
            x = x.expand(-1, self.in_channels, -1, -1)
        normalization = self._mean_std(x.shape[1])
        if normalization is not None:
            mean, std = normalization
            x = (x - mean) / std
        return x

    def _batches(self, kind, images):
        size = self._target_size()
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            if kind == "paths":
                batch = self._load_paths(batch)
            yield self._to_tensor(batch, size)

    # ------------------------------------------------------------------ backbone
    def _build_backbone(self):
        if isinstance(self.backbone, str):
            with seeded(seed_from(self.random_state)):
                backbone = _torchvision_backbone(self.backbone, self.weights)
        else:
            if self.weights is not None:
                raise ValueError(
                    f"weights={self.weights!r} applies to a named torchvision backbone only; a "
                    "module backbone brings its own weights (pass weights=None)."
                )
            if not isinstance(self.backbone, nn.Module):
                raise ValueError(
                    f"backbone must be a torchvision model name or a torch.nn.Module, got "
                    f"{type(self.backbone).__name__}."
                )
            backbone = copy.deepcopy(self.backbone)
        backbone.eval()
        backbone.requires_grad_(False)
        return backbone

    def _forward(self, backbone, x, device):
        """The backbone's raw output for one batch, checked: (n, D, h, w) or (n, D)."""
        try:
            output = backbone(x.to(device))
        except RuntimeError as exc:
            raise ValueError(
                f"The backbone failed on a batch of shape {tuple(x.shape)} ({exc}). Check "
                "in_channels, image_size and data_format against what the backbone takes."
            ) from exc
        if not isinstance(output, torch.Tensor) or output.ndim not in (2, 4):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise ValueError(
                f"The backbone must return a tensor (N, D, h, w) or (N, D), got {shape}."
            )
        return output

    def _pool(self, output):
        if output.ndim == 4 and self.pooling == "avg":
            output = output.mean(dim=(2, 3))
        elif output.ndim == 4 and self.pooling == "max":
            output = output.amax(dim=(2, 3))
        return output.flatten(1)

    # ------------------------------------------------------------------ API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the frozen backbone and check it on the first image of ``X``; nothing is learnt.

        Parameters
        ----------
        X : array-like of images, or list of str or path-like
            Images (N, H, W), (N, C, H, W) or (N, H, W, C); flattened rows (N, C*H*W) with
            ``image_shape``; or image file paths (read with Pillow).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : ImageEmbedder
            The fitted transformer.
        """
        kind, images = self._images(X)
        device = resolve_device(self.device)
        backbone = self._build_backbone().to(device)
        try:
            with torch.inference_mode():
                output = self._forward(backbone, next(self._batches(kind, images[:1])), device)
        finally:
            backbone.cpu()
        self.backbone_ = backbone
        self.image_shape_ = None if kind == "paths" else tuple(int(v) for v in images.shape[1:])
        self.feature_shape_ = tuple(int(v) for v in output.shape[1:])
        self.n_features_out_ = int(self._pool(output).shape[1])
        if kind == "array" and np.ndim(X) == 2:
            self.n_features_in_ = int(np.shape(X)[1])
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return self

    def transform(self, X):
        """Embed ``X``: one row of backbone features per image.

        Parameters
        ----------
        X : array-like of images, or list of str or path-like
            As in :meth:`fit`; same number of channels, and the same size unless
            ``image_size`` is set.

        Returns
        -------
        X_embedded : ndarray of shape (n_images, n_features_out_), dtype float32
            Backbone features, computed ``batch_size`` images at a time.
        """
        check_is_fitted(self)
        kind, images = self._images(X)
        if kind == "array":
            shape = tuple(images.shape[1:])
            fixed = 1 if self.image_size is not None else 3
            if self.image_shape_ is not None and shape[:fixed] != self.image_shape_[:fixed]:
                raise ValueError(
                    f"X holds images of shape (C, H, W) = {shape}, but the embedder was fitted "
                    f"on {self.image_shape_}"
                    + (" (with image_size set, only C must match)." if fixed == 1 else ".")
                )
        device = resolve_device(self.device)
        backbone = self.backbone_.to(device)
        chunks = []
        try:
            with torch.inference_mode():
                for batch in self._batches(kind, images):
                    output = self._pool(self._forward(backbone, batch, device))
                    chunks.append(output.cpu().numpy())
        finally:
            self.backbone_.cpu()
        embedded = np.concatenate(chunks).astype(np.float32, copy=False)
        if embedded.shape[1] != self.n_features_out_:
            raise ValueError(
                f"The backbone gave {embedded.shape[1]} features per image but "
                f"{self.n_features_out_} at fit; set image_size so that every image has the "
                "size it had at fit, or use pooling."
            )
        return embedded

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
