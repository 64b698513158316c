"""Reconstruction autoencoder trained with Loss AMPlification (LAMP, Park et al., ICASSP 2024)."""

from numbers import Integral, Real

import numpy as np
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from skuad.base import BaseDeepDetector, PositiveInts, shared_parameter_docs
from skuad.losses import AmplifiedReconstructionLoss, reconstruction_error, reconstruction_error_map
from skuad.nn import build_autoencoder


@shared_parameter_docs
class LAMPAutoencoderDetector(BaseDeepDetector):
    """Autoencoder outlier detector trained with an amplified reconstruction loss (LAMP).

    The network reconstructs its (min-max scaled) input through a bottleneck and is trained
    on normal data only. LAMP (Park et al., ICASSP 2024) leaves the network unchanged and
    *amplifies the reconstruction loss* during training, so that the loss landscape is steeper
    and unseen anomalies reconstruct worse. The normality score of a sample is minus its plain
    (un-amplified) reconstruction error.

    The paper's exact equation could not be confirmed. skuad trains on

    .. math::

        L_a = \\operatorname{mean}_{i,j} \\frac{g(a\\,\\ell_{ij})}{a}, \\qquad
        g(u) = -\\log(1 - u) \\; (u \\le 1 - \\delta), \\text{ continued linearly beyond,}

    with :math:`\\ell_{ij}` the reconstruction error of element ``j`` of sample ``i`` and
    :math:`a` = ``amplification``; :math:`a = 0` is the plain mean error (the ordinary
    autoencoder), :math:`a = 1` the first author's earlier LMSE loss :math:`-\\log(1-\\ell)`.
    See the user guide (``docs/detectors/lamp.rst``) for where each part comes from.

    Parameters
    ----------
    amplification : float >= 0, default=0.0
        Amplification strength ``a``. ``0`` trains the plain autoencoder; ``1`` is the LMSE
        transform ``-log(1 - l)``. Larger values move the pole of ``-log(1 - a * l)`` to
        ``l = 1 / a``, up-weighting elements whose error is large relative to ``1 / a``. Meant
        to be grid-searched (see :mod:`skuad.model_selection`). The default is 0 because no
        factor beat the plain autoencoder in skuad's ablation (see the user guide).
    amplification_mode : {'log', 'linear', 'power'}, default='log'
        ``'log'``: the formula above (skuad's reading of LAMP). ``'linear'``: ``(1 + a) * l``, a
        constant factor that Adam normalises away (a negative control, not LAMP).
        ``'power'``: ``(l + delta) ** (1 / (1 + a))``, which up-weights *small* errors
        (experimental, not LAMP). Every mode is the plain loss at ``a = 0``.
    amplify_per : {'element', 'sample'}, default='element'
        Amplify each feature's/pixel's error (as the author's LMSE code does), or each sample's
        mean error. Under Adam only the relative weighting inside a batch matters.
    extension_delta : float in (0, 1), default=1e-3
        ``delta``: ``g`` is continued linearly from ``u = 1 - delta`` on (slope ``1 / delta``),
        which caps the weight of any element at ``1 / delta`` and keeps its gradient.
    reconstruction_error : {'mse', 'l1', 'ssim'}, default='mse'
        Error metric for training and scoring: squared or absolute residual per element, or
        (images only) the structural dissimilarity ``(1 - SSIM) / 2`` per pixel
        (7x7 Gaussian window, sigma 1.5, clipped to the image size).
    hidden_layer_sizes : tuple of int, default=(64, 32)
        Widths of the encoder's hidden layers (the decoder mirrors them) or, with
        ``image_shape``, the number of filters of each convolutional block.
    latent_dim : int, default=8
        Bottleneck size; for vectors it is clipped to the number of features.
    contamination : 'auto' or float in (0, 0.5], default='auto'
        Expected fraction of outliers, used to set ``offset_`` as that percentile of the
        training scores (``'auto'``: 0.1, as the method has no threshold of its own).
    image_shape : tuple (C, H, W) or None, default=None
        When given, each row of ``X`` is a flattened image and convolutional networks are used.
    epochs : int, default=100
        Training epochs.
    batch_size : int, default=64
        Training batch size (clipped to the number of samples).
    lr : float, default=1e-3
        Learning rate.
    weight_decay : float, default=0.0
        L2 penalty of the optimizer. Kept at 0 by default: Adam's coupled weight decay
        interacts with the loss scale, which would confound amplification with regularisation.
    optimizer : {'adam', 'adamw', 'sgd'}, default='adam'
        Optimizer.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when the (amplified) validation
        loss has not improved by ``tol`` for ``n_iter_no_change`` epochs, keeping the best weights.
    %(shared_parameters)s

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the autoencoder (sigmoid output).
    loss_curve_ : ndarray of shape (n_epochs,)
        Amplified training loss per epoch.
    frac_extended_ : float
        Fraction of training elements (or samples) whose amplified error lies in the linear
        extension (``a * l > 1 - delta``) under the final weights; near 1 means ``a`` is too
        large for the data. 0 for the other modes.
    scaler_ : sklearn.preprocessing.MinMaxScaler
        Scaling of the training data to [0, 1] (one range for all pixels of an image).
    %(shared_attributes)s

    See Also
    --------
    skuad.DeepSVDD : One-class deep detector (hypersphere in a learned space).
    skuad.model_selection.InlierKFold : Cross-validation to grid-search ``amplification``.

    Notes
    -----
    Where the paper is silent (or could not be read) and what skuad chose:

    * The transform: ``-log(1 - a * l) / a``, continued linearly near the pole; ``a = 1`` is the
      LMSE loss of the first author's earlier work, the rest is skuad's parametrisation.
    * Inputs are min-max scaled to [0, 1] on the training data and the decoder ends in a sigmoid,
      so every training error is in [0, 1), where the log transform is defined. Scoring does
      not clip: a test value outside the training range is evidence of an anomaly.
    * The score is the plain mean error per sample, not the amplified one: amplification acts
      through training only, and an element-wise transform before averaging would change the
      ranking for reasons unrelated to the learned model.
    * Architecture, optimizer and epochs are skuad's choices (the paper's are unknown).

    References
    ----------
    .. [1] Park, Y., Kang, S., Kim, M. J., Jeong, H., Park, H., Kim, H. S., Yi, J. "Neural
       Network Training Strategy to Enhance Anomaly Detection Performance: A Perspective on
       Reconstruction Loss Amplification", ICASSP 2024, arXiv:2308.14595.

    Examples
    --------
    >>> import numpy as np
    >>> from skuad import LAMPAutoencoderDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4))
    >>> detector = LAMPAutoencoderDetector(epochs=20, random_state=0).fit(X)
    >>> detector.predict([[0.0, 0.0, 0.0, 0.0], [8.0, 8.0, 8.0, 8.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "amplification": [Interval(Real, 0, None, closed="left")],
        "amplification_mode": [StrOptions({"log", "linear", "power"})],
        "amplify_per": [StrOptions({"element", "sample"})],
        "extension_delta": [Interval(Real, 0, 1, closed="neither")],
        "reconstruction_error": [StrOptions({"mse", "l1", "ssim"})],
        "hidden_layer_sizes": [PositiveInts()],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        amplification=0.0,
        amplification_mode="log",
        amplify_per="element",
        extension_delta=1e-3,
        reconstruction_error="mse",
        hidden_layer_sizes=(64, 32),
        latent_dim=8,
        contamination="auto",
        image_shape=None,
        epochs=100,
        batch_size=64,
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
        self.amplification = amplification
        self.amplification_mode = amplification_mode
        self.amplify_per = amplify_per
        self.extension_delta = extension_delta
        self.reconstruction_error = reconstruction_error
        self.hidden_layer_sizes = hidden_layer_sizes
        self.latent_dim = latent_dim

    def _image_shape(self):
        return None if self.image_shape is None else tuple(self.image_shape)

    def _build_module(self):
        """The autoencoder, with a sigmoid output matching the [0, 1] input scale."""
        latent_dim = self.latent_dim
        if self.image_shape is None:
            latent_dim = min(latent_dim, self.n_features_in_)
        autoencoder = build_autoencoder(
            self.n_features_in_,
            tuple(self.hidden_layer_sizes),
            latent_dim,
            image_shape=self._image_shape(),
        )
        return nn.Sequential(autoencoder, nn.Sigmoid())

    def _check_params(self):
        super()._check_params()
        if self.reconstruction_error == "ssim" and self.image_shape is None:
            raise ValueError(
                "reconstruction_error='ssim' compares image neighbourhoods and needs "
                "image_shape=(C, H, W); use 'mse' or 'l1' for feature vectors."
            )

    def _fit_network(self, X, seed, device):
        criterion = AmplifiedReconstructionLoss(
            metric=self.reconstruction_error,
            amplification=float(self.amplification),
            mode=self.amplification_mode,
            per=self.amplify_per,
            delta=self.extension_delta,
            image_shape=self._image_shape(),
        )
        self.net_ = self._train(
            self._build_module(), criterion, X, seed, device, stage="autoencoder"
        )
        self.loss_curve_ = np.asarray(self.net_.history[:, "train_loss"], dtype=np.float64)

    @property
    def _training_row_statistic(self):
        """Per training row, the share of its errors past the pole's linear extension."""
        if self.amplification_mode != "log" or self.amplification == 0:
            return None
        return self._extended_share

    def _extended_share(self, reconstruction, x):
        errors = reconstruction_error_map(
            x.double(), reconstruction, self.reconstruction_error, self._image_shape()
        )
        if self.amplify_per == "sample":
            errors = errors.mean(dim=1, keepdim=True)
        return (self.amplification * errors > 1.0 - self.extension_delta).double().mean(dim=1)

    def _calibrate(self, train_scores, row_statistics):
        # Every row has the same number of elements, so the mean of the rows' shares is the
        # share of all training elements (or samples).
        self.frac_extended_ = 0.0 if row_statistics is None else float(row_statistics.mean())
        return train_scores

    def _make_scaler(self):
        # Min-max to [0, 1]: the log amplification needs residuals below 1 (lamp.rst).
        return MinMaxScaler()

    def _score_batch(self, reconstruction, x):
        return -reconstruction_error(
            x.double(), reconstruction, self.reconstruction_error, self._image_shape()
        )
