"""skuad: deep anomaly detectors that behave like scikit-learn estimators."""

from skuad._training import TrainingDivergedError
from skuad.base import SkuadVersionWarning
from skuad.clad import CLADDetector
from skuad.deep_svdd import DeepSVDD
from skuad.lamp import LAMPAutoencoderDetector
from skuad.resad import ResADDetector

__version__ = "0.1.0"

__all__ = [
    "CLADDetector",
    "DeepSVDD",
    "LAMPAutoencoderDetector",
    "ResADDetector",
    "SkuadVersionWarning",
    "TrainingDivergedError",
    "__version__",
]
