"""Encoder/decoder pairs chosen by the input: MLP for vectors, convolutional for images."""

from torch import nn

from skuad.nn.conv import ConvDecoder, ConvEncoder
from skuad.nn.mlp import MLP


def build_encoder(
    n_features,
    hidden_layer_sizes,
    n_outputs,
    *,
    image_shape=None,
    bias=True,
):
    """Network mapping one input row (a feature vector or a flattened image) to a code."""
    if image_shape is None:
        return MLP(n_features, hidden_layer_sizes, n_outputs, bias=bias)
    return ConvEncoder(image_shape, hidden_layer_sizes, n_outputs, bias=bias)


def build_decoder(
    n_features,
    hidden_layer_sizes,
    n_inputs,
    *,
    image_shape=None,
    bias=True,
):
    """Mirror of :func:`build_encoder`: a code back to one input row."""
    if image_shape is None:
        return MLP(n_inputs, tuple(hidden_layer_sizes)[::-1], n_features, bias=bias)
    return ConvDecoder(image_shape, hidden_layer_sizes, n_inputs, bias=bias)


class AutoEncoder(nn.Module):
    """``decoder(encoder(x))``; the encoder stays reachable for weight transfer."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


def build_autoencoder(
    n_features,
    hidden_layer_sizes,
    code_size,
    *,
    image_shape=None,
    bias=True,
):
    """Autoencoder whose encoder is :func:`build_encoder` with the same arguments."""
    kwargs = dict(image_shape=image_shape, bias=bias)
    return AutoEncoder(
        build_encoder(n_features, hidden_layer_sizes, code_size, **kwargs),
        build_decoder(n_features, hidden_layer_sizes, code_size, **kwargs),
    )
