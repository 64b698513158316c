"""Torch modules used by skuad's detectors (no scikit-learn in here)."""

from skuad.nn.autoencoder import AutoEncoder, build_autoencoder, build_encoder
from skuad.nn.conv import ConvDecoder, ConvEncoder
from skuad.nn.mlp import MLP
from skuad.nn.resnet import SmallResNet

__all__ = [
    "MLP",
    "AutoEncoder",
    "ConvDecoder",
    "ConvEncoder",
    "SmallResNet",
    "build_autoencoder",
    "build_encoder",
]
