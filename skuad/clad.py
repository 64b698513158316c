"""CLAD: confidence-based self-labeling anomaly detection (Park et al., ICLR 2021 workshop)."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.utils._param_validation import Interval, StrOptions
from skorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F

from skuad._training import StopTraining
from skuad.base import _MAX_SCORING_ROWS, BaseDeepDetector, PositiveInts, shared_parameter_docs
from skuad.losses import (
    DECLoss,
    ReconstructionLoss,
    dec_soft_assignment,
    student_t_log_kernel,
)
from skuad.nn import MLP, AutoEncoder, SmallResNet, build_autoencoder

_DEFAULT_AUTOENCODER_HIDDEN = {"vector": (128, 64), "image": (32, 64)}
_DEFAULT_CLASSIFIER_HIDDEN = {"vector": (256, 256), "image": (16, 32, 64)}
# k-means restarts on the latent codes, as the authors' code (it uses max(20, latent_dim)).
_KMEANS_MIN_INIT = 20


def count_distinct_rows(X, at_most):
    """Number of distinct rows of ``X`` (by value, as ``np.unique(X, axis=0)`` counts them),
    or ``at_most`` when there are at least that many.

    ``X`` is read a chunk of rows at a time and only ``at_most`` distinct rows are kept, so a
    sparse training set (:class:`skuad.base.ScaledRows`) is never densified whole.
    """
    seen = set()
    for start in range(0, len(X), _MAX_SCORING_ROWS):
        for row in np.unique(X[start : start + _MAX_SCORING_ROWS], axis=0):
            seen.add((row + 0.0).tobytes())  # + 0.0 turns -0.0 into 0.0, which it equals
        if len(seen) >= at_most:
            return at_most
    return len(seen)


def odin_score(classifier, x, temperature=1.0, epsilon=0.0):
    """ODIN confidence of each row of ``x``: ``max_k log softmax(f(x~) / T)_k``.

    ``x~ = x - epsilon * sign(grad_x CE(f(x) / T, argmax f(x)))`` moves each input a step
    ``epsilon`` (in the units of ``x``) in the direction that makes the classifier more
    confident in its own prediction (Liang et al., ICLR 2018). With ``temperature=1`` and
    ``epsilon=0`` this is the logarithm of the maximum softmax probability. The classifier
    must be in eval mode (rows must not interact, so one backward pass gives every row's
    gradient); ``sign(0) = 0`` leaves an input with no gradient where it is.
    """
    x = x.detach()
    if epsilon > 0:
        with torch.enable_grad():
            x_grad = x.clone().requires_grad_(True)
            logits = classifier(x_grad) / temperature
            loss = F.cross_entropy(logits, logits.argmax(dim=1), reduction="sum")
            (gradient,) = torch.autograd.grad(loss, x_grad)
        x = x - epsilon * torch.sign(gradient)
    with torch.no_grad():
        return torch.log_softmax(classifier(x) / temperature, dim=1).max(dim=1).values


class _ODINScorer(nn.Module):
    """Wraps the classifier so that the spine's batched forward pass returns ODIN scores.

    The input-gradient pass runs on chunks of at most ``chunk_size`` rows, so memory is
    bounded by the training batch size even when scoring uses larger batches.
    """

    def __init__(self, classifier, temperature, epsilon, chunk_size):
        super().__init__()
        self.classifier = classifier
        self.temperature = temperature
        self.epsilon = epsilon
        self.chunk_size = chunk_size

    def forward(self, x):
        return torch.cat(
            [
                odin_score(self.classifier, chunk, self.temperature, self.epsilon)
                for chunk in torch.split(x, self.chunk_size)
            ]
        )


class StudentTClassifier(nn.Module):
    """Feature network + ``K`` learnable prototypes; logits are log Student-t kernels.

    ``logit_k(x) = -(alpha + 1) / 2 * log(1 + |phi(x) - c_k|^2 / alpha)``, the kernel of DEC's
    soft assignment, so ``softmax(logits)`` is a DEC-style assignment of the features
    ``phi(x)`` to the prototypes ``c_k``. Unlike a linear last layer, whose logit gaps grow
    linearly along any ray leaving the data, the gaps here shrink to 0 as ``|phi(x)|`` grows:
    far from every prototype the softmax tends to uniform and the confidence to ``1 / K``.
    """

    def __init__(self, features, n_features, n_classes, alpha=1.0, prototypes=None):
        super().__init__()
        self.features = features
        if prototypes is None:
            prototypes = torch.randn(n_classes, n_features)
        self.prototypes = nn.Parameter(torch.as_tensor(prototypes, dtype=torch.float32))
        self.alpha = alpha

    def forward(self, x):
        return student_t_log_kernel(self.features(x), self.prototypes, self.alpha)


class _CenterKernelScorer(nn.Module):
    """Single-cluster fallback score: the log Student-t kernel between code and centre."""

    def __init__(self, encoder, center, alpha):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))
        self.alpha = alpha

    def forward(self, x):
        return student_t_log_kernel(self.encoder(x), self.center, self.alpha)[:, 0]


class _ClusteringNetwork(StudentTClassifier):
    """DEC's network: the pre-trained encoder and trainable cluster centres (the prototypes,
    initialised at the k-means centres) -> soft assignment (the softmax of the log kernels)."""

    def __init__(self, encoder, centers, alpha):
        super().__init__(encoder, None, None, alpha, prototypes=centers)

    def forward(self, x):
        return dec_soft_assignment(self.features(x), self.prototypes, self.alpha)


class _StopWhenLabelsSettle(Callback):
    """After each DEC epoch, relabel the whole training set; stop once fewer than ``tol`` change.

    The first comparison is against the k-means labels. The fraction that changed is recorded
    in the net's history as ``label_change``.
    """

    def __init__(self, initial_labels, tol):
        self.initial_labels = initial_labels
        self.tol = tol

    def initialize(self):
        self.previous_labels_ = np.asarray(self.initial_labels)
        return self

    def on_epoch_end(self, net, dataset_train=None, **kwargs):
        labels = net.forward(dataset_train).argmax(dim=1).numpy()
        changed = float(np.mean(labels != self.previous_labels_))
        net.history.record("label_change", changed)
        self.previous_labels_ = labels
        if changed < self.tol:
            raise StopTraining


@shared_parameter_docs
class CLADDetector(BaseDeepDetector):
    """Confidence-based self-labeling anomaly detector (CLAD).

    Normal data often consist of several hidden sub-classes. CLAD (Park et al., 2021) finds
    them and scores a sample by how confidently a classifier assigns it to one of them:

    1. an autoencoder is pre-trained on the normal data (reconstruction error);
    2. its latent codes are clustered by Deep Embedded Clustering (DEC: k-means
       initialisation, Student-t soft assignment, KL divergence to a sharpened target), and
       each training row gets its cluster as a pseudo-label;
    3. a classifier is trained on the rows and their pseudo-labels (cross-entropy);
    4. the normality score is the classifier's ODIN confidence: the maximum log-softmax of the
       temperature-scaled logits of the input after a small gradient-sign step.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of latent sub-classes ``K`` sought by the clustering. When the training data
        hold fewer distinct rows than ``n_clusters``,
        ``K`` is reduced to that number, with a warning; ``n_clusters_`` gives the number
        actually used. With a single cluster there is nothing to classify: no classifier is
        trained and the score is the log Student-t kernel
        ``-(alpha + 1) / 2 * log(1 + |z - mu|^2 / alpha)`` between the sample's code and the
        centre (a distance-to-centre score, like Deep SVDD's).
    latent_dim : int, default=10
        Dimension ``d`` of the autoencoder's code, in which the clustering runs.
    hidden_layer_sizes : tuple of int or None, default=None
        Autoencoder encoder widths (the decoder mirrors them): an MLP with these hidden widths,
        or, with ``image_shape``, the filters of each convolutional block. None gives
        ``(128, 64)`` for vectors and ``(32, 64)`` for images.
    input_dropout : float in [0, 1), default=0.1
        Dropout on the autoencoder's input during pre-training and DEC (a denoising
        autoencoder, as the authors'); off when computing codes.
    pretrain_epochs : int, default=100
        Autoencoder pre-training epochs (Adam-family ``optimizer``, mean squared error).
        0 skips pre-training.
    pretrain_lr : float, default=1e-3
        Autoencoder pre-training learning rate.
    dec_epochs : int, default=100
        Maximum DEC epochs; 0 keeps the k-means labels of the pre-trained codes.
    dec_lr : float, default=0.01
        DEC learning rate (SGD on the encoder and the centres).
    dec_momentum : float in [0, 1), default=0.9
        DEC SGD momentum.
    dec_tol : float in [0, 1], default=1e-3
        DEC stops once fewer than this fraction of the training labels change in an epoch.
    alpha : float, default=1.0
        Degrees of freedom of DEC's Student-t kernel (also that of the Student-t classifier
        head).
    classifier_hidden : tuple of int or None, default=None
        Classifier widths: hidden widths of a ReLU MLP, or, with ``image_shape``, the
        channels of each stage of a small ResNet (one basic block per stage, stride 2 from the
        second stage on). None gives ``(256, 256)`` for vectors and ``(16, 32, 64)`` for images.
    classifier_head : {'auto', 'linear', 'student_t'}, default='auto'
        Last layer of the classifier. ``'linear'``: a linear layer, as in the paper (its
        logit gaps, and so the confidence, grow without bound along any ray leaving the
        data). ``'student_t'``: the network's last width becomes a feature space with
        ``n_clusters_`` learnable prototypes ``c_k``, and the logits are DEC's log
        Student-t kernel ``-(alpha + 1) / 2 * log(1 + |phi(x) - c_k|^2 / alpha)``; far from
        every prototype the softmax tends to uniform, so the confidence falls to ``1 / K``
        instead of rising (not in the paper). ``'auto'``: ``'student_t'`` for feature
        vectors, ``'linear'`` for images (``image_shape`` given) -- the choice measured
        best on held-out validation data for each kind (see the user guide).
    temperature : float, default=1000.0
        ODIN temperature ``T`` dividing the logits before the softmax.
    epsilon : float, default=0.0
        ODIN input-perturbation step, in the units of the standardised input. With
        ``temperature=1`` and ``epsilon=0`` the score is the plain maximum softmax probability
        (its logarithm).
    contamination : 'auto' or float in (0, 0.5], default='auto'
        Expected fraction of outliers: ``offset_`` is that percentile of the training scores
        (``'auto'`` uses 0.1, as the method has no threshold of its own).
    image_shape : tuple (C, H, W) or None, default=None
        When given, each row of ``X`` is a flattened image of this shape; a convolutional
        autoencoder and a small ResNet classifier are used.
    epochs : int, default=100
        Classifier training epochs.
    batch_size : int, default=128
        Batch size of every stage (clipped to the number of samples); also bounds the rows
        per ODIN gradient pass.
    lr : float, default=1e-3
        Classifier learning rate.
    weight_decay : float, default=0.0
        L2 penalty in the autoencoder and classifier optimizers.
    optimizer : {'adam', 'adamw', 'sgd'}, default='adam'
        Optimizer of the pre-training and classifier stages (DEC always uses SGD).
    early_stopping : bool, default=False
        Classifier only: hold out ``validation_fraction`` of the rows and stop when the
        pseudo-label cross-entropy on them has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, keeping the best weights.
    %(shared_parameters)s

    Attributes
    ----------
    net_ : skorch.NeuralNet or None
        The trained classifier net; ``net_.module_`` maps scaled rows to ``n_clusters_`` logits.
        None when ``n_clusters_ == 1``.
    encoder_ : torch.nn.Module
        The encoder after DEC (eval mode), mapping scaled rows to latent codes.
    labels_ : ndarray of shape (n_samples,)
        Pseudo-label (cluster index in ``0 .. n_clusters_ - 1``) of each training row.
    cluster_centers_ : ndarray of shape (n_clusters_, latent_dim)
        DEC cluster centres in the latent space of ``encoder_``.
    n_clusters_ : int
        Number of non-empty clusters, i.e. classifier outputs.
    n_dec_epochs_ : int
        DEC epochs run (fewer than ``dec_epochs`` when the labels settled).
    scaler_ : sklearn.preprocessing.StandardScaler
        Standardisation applied before every network (one global scale for images).
    %(shared_attributes)s

    See Also
    --------
    skuad.DeepSVDD : One-class hypersphere; one boundary around all normal data.
    sklearn.cluster.KMeans : Initialises the DEC centres.

    Notes
    -----
    Where the paper is silent or skuad differs from the authors' code:

    * The latent code is deterministic (the authors' "cvae" samples ``mu + sigma * eps``
      with an unconstrained sigma and no KL term, also when labelling).
    * Inputs are standardised; the decoder's output is linear (the authors' sigmoid cannot
      reproduce standardised inputs). ODIN's ``epsilon`` is in these standardised units,
      with no dataset constant (the authors multiply by 161.39 for every dataset).
    * DEC's target is computed per mini-batch and detached, as in the authors' code.
    * Clusters left empty after DEC are dropped and the labels re-indexed. If DEC merges
      everything into one cluster, the pre-DEC encoder and k-means labels are kept (with a
      warning): one class would give every sample the same confidence.
    * The classifier is a ReLU MLP for vectors and a small CIFAR-style ResNet for images
      (3x3 stem, no max-pool) instead of the ImageNet ResNet-18.
    * The classifier's last layer is, for feature vectors, a Student-t prototype head
      (``classifier_head='auto'``), not the paper's linear layer.
    * AUROCs below 0.5 are never flipped (the authors' metric replaces them by 1 - AUROC).

    CLAD suits anomalies that lie *between* normal sub-classes. Far from all training data a
    ReLU classifier with a linear last layer grows more confident, so anomalies far outside
    the data (typical of tabular benchmarks) score as *more* normal than normal data; the
    Student-t head removes this (its confidence falls to ``1 / K`` far away), which is why
    it is the default for vectors. See the user guide's benchmarks.

    References
    ----------
    .. [1] Park, J., Moon, J.-H., Ahn, N., Sohn, K.-A. "What is Wrong with One-Class Anomaly
       Detection?", ICLR 2021 Workshop on Security and Safety in Machine Learning Systems.
    .. [2] Xie, J., Girshick, R., Farhadi, A. "Unsupervised Deep Embedding for Clustering
       Analysis", ICML 2016.
    .. [3] Liang, S., Li, Y., Srikant, R. "Enhancing The Reliability of Out-of-distribution
       Image Detection in Neural Networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skuad import CLADDetector
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(loc, 0.3, size=(100, 2)) for loc in ([-3, 0], [3, 0])])
    >>> detector = CLADDetector(n_clusters=2, pretrain_epochs=5, dec_epochs=5, epochs=10,
    ...                         temperature=1.0, random_state=0).fit(X)
    >>> detector.n_clusters_
    2
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [PositiveInts(), None],
        "input_dropout": [Interval(Real, 0, 1, closed="left")],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "pretrain_lr": [Interval(Real, 0, None, closed="neither")],
        "dec_epochs": [Interval(Integral, 0, None, closed="left")],
        "dec_lr": [Interval(Real, 0, None, closed="neither")],
        "dec_momentum": [Interval(Real, 0, 1, closed="left")],
        "dec_tol": [Interval(Real, 0, 1, closed="both")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "classifier_hidden": [PositiveInts(), None],
        "classifier_head": [StrOptions({"auto", "linear", "student_t"})],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "epsilon": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        n_clusters=10,
        latent_dim=10,
        hidden_layer_sizes=None,
        input_dropout=0.1,
        pretrain_epochs=100,
        pretrain_lr=1e-3,
        dec_epochs=100,
        dec_lr=0.01,
        dec_momentum=0.9,
        dec_tol=1e-3,
        alpha=1.0,
        classifier_hidden=None,
        classifier_head="auto",
        temperature=1000.0,
        epsilon=0.0,
        contamination="auto",
        image_shape=None,
        epochs=100,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        device="auto",
        working_memory=64,
        callbacks=None,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            contamination=contamination,
            image_shape=image_shape,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            device=device,
            working_memory=working_memory,
            callbacks=callbacks,
            random_state=random_state,
            verbose=verbose,
        )
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.input_dropout = input_dropout
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.dec_epochs = dec_epochs
        self.dec_lr = dec_lr
        self.dec_momentum = dec_momentum
        self.dec_tol = dec_tol
        self.alpha = alpha
        self.classifier_hidden = classifier_hidden
        self.classifier_head = classifier_head
        self.temperature = temperature
        self.epsilon = epsilon

    # ------------------------------------------------------------------ the four stages
    def _fit_network(self, X, seed, device):
        kind = "vector" if self.image_shape is None else "image"
        ae_hidden = self.hidden_layer_sizes
        ae_hidden = _DEFAULT_AUTOENCODER_HIDDEN[kind] if ae_hidden is None else ae_hidden
        clf_hidden = self.classifier_hidden
        clf_hidden = _DEFAULT_CLASSIFIER_HIDDEN[kind] if clf_hidden is None else clf_hidden
        ae_hidden, clf_hidden = tuple(ae_hidden), tuple(clf_hidden)

        encoder = self._pretrain_encoder(X, ae_hidden, seed, device)
        codes = self._forward(X, encoder).astype(np.float64)
        kmeans_centers, kmeans_labels = self._initial_clusters(X, codes, seed)
        labels, centers = self._deep_embedded_clustering(
            X, encoder, kmeans_centers, kmeans_labels, seed, device
        )
        # Clusters that DEC emptied get no classifier output: re-index the labels densely.
        present, labels = np.unique(labels, return_inverse=True)
        self.labels_ = labels.astype(np.intp)
        self.cluster_centers_ = centers[present].astype(np.float64)
        self.n_clusters_ = len(present)
        self.encoder_ = encoder.cpu().eval()

        if self.n_clusters_ == 1:
            # One class: every sample would get confidence 1, so there is no classifier
            # and the score falls back to the DEC kernel between code and centre.
            self.net_ = None
            return
        classifier = self._build_classifier(clf_hidden)
        self.net_ = self._train(
            classifier,
            nn.CrossEntropyLoss(),
            X,
            seed,
            device,
            stage="classifier",
            y=self.labels_.astype(np.int64),
        )

    def _build_classifier(self, hidden):
        """Stage 3's network: ``n_clusters_`` logits from a linear or a Student-t head."""
        head = self.classifier_head
        if head == "auto":
            head = "student_t" if self.image_shape is None else "linear"
        n_outputs = self.n_clusters_ if head == "linear" else hidden[-1]
        if self.image_shape is None:
            body_hidden = hidden if head == "linear" else hidden[:-1]
            network = MLP(self.n_features_in_, body_hidden, n_outputs, activation="relu")
        else:
            network = SmallResNet(tuple(self.image_shape), hidden, n_outputs)
        if head == "linear":
            return network
        return StudentTClassifier(network, n_outputs, self.n_clusters_, self.alpha)

    def _pretrain_encoder(self, X, hidden, seed, device):
        """Stage 1: a (denoising) autoencoder; returns its encoder, input dropout included."""
        autoencoder = build_autoencoder(
            self.n_features_in_,
            hidden,
            self.latent_dim,
            image_shape=None if self.image_shape is None else tuple(self.image_shape),
        )
        encoder = nn.Sequential(nn.Dropout(self.input_dropout), autoencoder.encoder)
        if self.pretrain_epochs > 0:
            self._train(
                AutoEncoder(encoder, autoencoder.decoder),
                ReconstructionLoss(),
                X,
                seed,
                device,
                stage="autoencoder",
                epochs=self.pretrain_epochs,
                lr=self.pretrain_lr,
                early_stopping=False,
            )
        return encoder.to(device)

    def _initial_clusters(self, X, codes, seed):
        """k-means on the codes, with K capped by the number of distinct training rows."""
        n_distinct = count_distinct_rows(X, at_most=self.n_clusters)
        n_clusters = min(self.n_clusters, n_distinct)
        if n_clusters < self.n_clusters:
            warnings.warn(
                f"n_clusters={self.n_clusters} but the training data hold only {n_distinct} "
                f"distinct rows; using {n_clusters} clusters.",
                UserWarning,
                stacklevel=4,
            )
        kmeans = KMeans(
            n_clusters=n_clusters,
            n_init=max(_KMEANS_MIN_INIT, self.latent_dim),
            random_state=seed,
        ).fit(codes)
        return kmeans.cluster_centers_, kmeans.labels_

    def _deep_embedded_clustering(self, X, encoder, centers, labels, seed, device):
        """Stage 2: DEC refines encoder and centres; returns the hard labels and centres."""
        self.n_dec_epochs_ = 0
        if self.dec_epochs == 0 or len(centers) == 1:
            return labels, centers
        pretrained_state = copy.deepcopy(encoder.state_dict())
        network = _ClusteringNetwork(encoder, centers, self.alpha).to(device)
        net = self._train(
            network,
            DECLoss(),
            X,
            seed,
            device,
            stage="dec",
            callbacks=[("label_change", _StopWhenLabelsSettle(labels, self.dec_tol))],
            epochs=self.dec_epochs,
            lr=self.dec_lr,
            optimizer="sgd",
            momentum=self.dec_momentum,
            weight_decay=0.0,
            early_stopping=False,
        )
        self.n_dec_epochs_ = len(net.history)
        dec_labels = self._forward(X, network).argmax(axis=1)
        if len(np.unique(dec_labels)) < 2:
            warnings.warn(
                "DEC merged all training rows into one cluster; keeping the k-means labels of "
                "the pre-trained codes instead. Try a smaller dec_lr or fewer dec_epochs.",
                UserWarning,
                stacklevel=4,
            )
            encoder.load_state_dict(pretrained_state)
            return labels, centers
        return dec_labels, network.prototypes.detach().cpu().numpy()

    # ------------------------------------------------------------------ scoring
    @property
    def _scoring_module(self):
        if self.net_ is None:
            return _CenterKernelScorer(self.encoder_, self.cluster_centers_, self.alpha)
        return _ODINScorer(self.net_.module_, self.temperature, self.epsilon, self.batch_size)

    def _score_batch(self, output, x):
        return output
