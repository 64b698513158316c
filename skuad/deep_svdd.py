"""Deep Support Vector Data Description (Ruff et al., ICML 2018)."""

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from skorch.callbacks import Callback

from skuad.base import BaseDeepDetector, PositiveInts, shared_parameter_docs
from skuad.losses import ReconstructionLoss, SVDDLoss, squared_distance, svdd_radius
from skuad.nn import build_autoencoder


class _RadiusUpdate(Callback):
    """Soft-boundary Deep SVDD: after the warm-up, solve for R once per epoch with W fixed.

    The paper alternates k epochs of SGD on W with a line search for R; for fixed W the
    optimal R is the (1 - nu)-quantile of the distances, computed here on the whole
    training set in eval mode, so it does not depend on how batches were drawn.
    """

    def __init__(self, warm_up_epochs):
        self.warm_up_epochs = warm_up_epochs

    def on_epoch_end(self, net, dataset_train=None, **kwargs):
        if len(net.history) < self.warm_up_epochs:
            return
        criterion = net.criterion_
        dist = squared_distance(
            net.forward(dataset_train).to(criterion.center.device), criterion.center
        )
        criterion.radius.fill_(svdd_radius(dist, criterion.nu).item())


@shared_parameter_docs
class DeepSVDD(BaseDeepDetector):
    """Deep Support Vector Data Description outlier detector.

    Trains a bias-free network to map normal data into a small hypersphere around a fixed
    centre ``c`` (Ruff et al., "Deep One-Class Classification", ICML 2018). The normality score
    of a sample is minus its squared distance to the centre (minus the squared radius for the
    soft-boundary objective).

    Parameters
    ----------
    objective : {'one-class', 'soft-boundary'}, default='one-class'
        ``'one-class'`` minimises the mean squared distance to ``c`` (all training data taken as
        normal). ``'soft-boundary'`` minimises ``R^2 + mean(max(0, d - R^2)) / nu`` and lets a
        fraction ``nu`` of the training data fall outside the sphere (for contaminated data).
    nu : float in (0, 1], default=0.1
        Soft-boundary trade-off: an upper bound on the fraction of training points outside the
        sphere. Also sets the threshold of ``contamination='auto'`` for both objectives.
    hidden_layer_sizes : tuple of int, default=(64,)
        Widths of the hidden layers of the MLP, or, with ``image_shape``, the number of filters
        of each convolutional block (LeNet-style: 5x5 conv, BatchNorm without shift, leaky
        ReLU, 2x2 max-pool).
    representation_dim : int, default=32
        Dimension of the output space in which the hypersphere lives.
    pretrain : bool, default=False
        Pre-train the network as the encoder of a bias-free autoencoder (mean squared
        reconstruction error) and start Deep SVDD from its weights, as the authors do. Off by
        default: in skuad's benchmarks pre-training was level on the ADBench tables, worse on
        small image sets (8x8 digits, 350 MNIST digits) and 2-7x more expensive (see the
        DeepSVDD user guide).
    pretrain_epochs : int, default=50
        Autoencoder pre-training epochs.
    pretrain_lr : float, default=1e-3
        Autoencoder pre-training learning rate.
    warm_up_epochs : int, default=10
        Soft-boundary only: epochs with ``R = 0`` before the radius is first solved for.
    center_eps : float, default=0.1
        Centre coordinates closer to 0 than this are moved to ``+-center_eps`` (an exact 0 to
        ``+center_eps``): a zero coordinate is trivially matched by zero weights.
    contamination : 'auto' or float in (0, 0.5], default='auto'
        Expected fraction of outliers, used to set ``offset_``. With a float, ``offset_`` is
        that percentile of the training scores. With ``'auto'`` the threshold is the sphere of
        radius ``radius_``, which holds a fraction ``1 - nu`` of the training data, so about
        ``nu`` of the training points are flagged.
    image_shape : tuple (C, H, W) or None, default=None
        When given, each row of ``X`` is a flattened image of this shape and convolutional
        networks are used.
    epochs : int, default=50
        Deep SVDD training epochs.
    batch_size : int, default=128
        Training batch size (clipped to the number of samples).
    lr : float, default=1e-3
        Learning rate of the Deep SVDD stage.
    weight_decay : float, default=1e-6
        L2 penalty ``lambda`` on the weights (the optimizer's coupled weight decay, as the
        authors). Too large a value pushes the network towards the collapsed all-zero map.
    optimizer : {'adam', 'adamw', 'sgd'}, default='adam'
        Optimizer of both stages.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when the validation loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, keeping the best weights.
    %(shared_parameters)s

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the Deep SVDD network.
    center_ : ndarray of shape (representation_dim,)
        The fixed hypersphere centre ``c``.
    radius_ : float
        ``R``: the (1 - nu)-quantile of the training distances' square roots under the final
        weights. Part of the score for ``'soft-boundary'``; for ``'one-class'`` it only sets
        the ``contamination='auto'`` threshold.
    collapsed_ : bool
        True when the training distances are all (numerically) equal, the sign of hypersphere
        collapse; a warning is issued as well.
    scaler_ : sklearn.preprocessing.StandardScaler
        Standardisation applied before the network (one global scale for images).
    %(shared_attributes)s

    See Also
    --------
    sklearn.ensemble.IsolationForest : Tree-based outlier detector.
    sklearn.svm.OneClassSVM : The kernel method that Deep SVDD generalises.

    Notes
    -----
    Where the paper is silent or skuad differs from the authors' code:

    * The pre-training loss is the mean (not the sum) of squared errors per sample: a constant
      factor, irrelevant under Adam.
    * The soft-boundary radius is solved once per epoch on the whole training set (the paper's
      alternation) rather than after every mini-batch (the authors' code).
    * Inputs are standardised internally; images use one mean and scale for all pixels
      instead of the authors' global contrast normalisation.
    * The final epoch is kept; selecting the lowest-loss epoch would favour collapse.

    References
    ----------
    .. [1] Ruff, L., Vandermeulen, R., Görnitz, N., Deecke, L., Siddiqui, S. A., Binder, A.,
       Müller, E., Kloft, M. "Deep One-Class Classification", ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skuad import DeepSVDD
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4))
    >>> detector = DeepSVDD(epochs=5, random_state=0).fit(X)
    >>> detector.predict([[0.0, 0.0, 0.0, 0.0], [8.0, 8.0, 8.0, 8.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "objective": [StrOptions({"one-class", "soft-boundary"})],
        "nu": [Interval(Real, 0, 1, closed="right")],
        "hidden_layer_sizes": [PositiveInts()],
        "representation_dim": [Interval(Integral, 1, None, closed="left")],
        "pretrain": ["boolean"],
        "pretrain_epochs": [Interval(Integral, 1, None, closed="left")],
        "pretrain_lr": [Interval(Real, 0, None, closed="neither")],
        "warm_up_epochs": [Interval(Integral, 0, None, closed="left")],
        "center_eps": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        objective="one-class",
        nu=0.1,
        hidden_layer_sizes=(64,),
        representation_dim=32,
        pretrain=False,
        pretrain_epochs=50,
        pretrain_lr=1e-3,
        warm_up_epochs=10,
        center_eps=0.1,
        contamination="auto",
        image_shape=None,
        epochs=50,
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-6,
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
        self.objective = objective
        self.nu = nu
        self.hidden_layer_sizes = hidden_layer_sizes
        self.representation_dim = representation_dim
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.warm_up_epochs = warm_up_epochs
        self.center_eps = center_eps

    def _fit_network(self, X, seed, device):
        # One bias-free autoencoder; its encoder is the Deep SVDD network (Proposition 2: any
        # bias, BatchNorm shift included, lets the network collapse onto the centre).
        autoencoder = build_autoencoder(
            self.n_features_in_,
            tuple(self.hidden_layer_sizes),
            self.representation_dim,
            image_shape=self.image_shape,
            bias=False,
        )
        if self.pretrain:
            self._train(
                autoencoder,
                ReconstructionLoss(),
                X,
                seed,
                device,
                stage="pretrain",
                epochs=self.pretrain_epochs,
                lr=self.pretrain_lr,
            )
        network = autoencoder.encoder.to(device)
        center = self._initial_center(self._forward(X, network))
        callbacks = []
        if self.objective == "soft-boundary":
            callbacks.append(("radius_update", _RadiusUpdate(self.warm_up_epochs)))
        self.net_ = self._train(
            network,
            SVDDLoss(center, self.objective, self.nu),
            X,
            seed,
            device,
            stage="svdd",
            callbacks=callbacks,
        )
        self.center_ = center.astype(np.float64)
        # R is solved from the training distances in _calibrate; until then the scores are
        # minus the squared distances, for both objectives.
        self.radius_ = 0.0

    def _calibrate(self, train_scores, row_statistics):
        dist = -train_scores  # radius_ is 0 during the training pass
        self.radius_ = float(np.quantile(np.sqrt(dist), 1.0 - self.nu))
        self.collapsed_ = bool(np.std(dist) <= 1e-8 * (np.mean(dist) + 1e-12))
        if self.collapsed_:
            warnings.warn(
                "Deep SVDD hypersphere collapse: every training point maps to (nearly) the same "
                "place, so scores cannot separate anything. Try a smaller weight_decay or lr, "
                "or fewer epochs.",
                UserWarning,
                stacklevel=4,
            )
        if self.objective == "soft-boundary":
            return train_scores + self.radius_**2
        return train_scores

    def _initial_center(self, outputs):
        """Mean initial output, with coordinates near 0 pushed to +-center_eps (Ruff et al.)."""
        center = outputs.mean(axis=0)
        small = np.abs(center) < self.center_eps
        center[small] = np.where(center[small] < 0, -self.center_eps, self.center_eps)
        return center.astype(np.float32)

    def _score_batch(self, z, x):
        center = torch.as_tensor(self.center_, dtype=z.dtype, device=z.device)
        score = -squared_distance(z, center)
        if self.objective == "soft-boundary":
            score = score + self.radius_**2
        return score

    def _auto_offset(self, train_scores):
        # The sphere of radius R bounds the inliers: score >= 0 for soft-boundary,
        # -d >= -R^2 for one-class.
        return 0.0 if self.objective == "soft-boundary" else -(self.radius_**2)
