"""The HTML representation links each public estimator to its entry in skuad's API reference."""

import re
from unittest import mock

import pytest
from sklearn.utils import estimator_html_repr

import skuad
from skuad import _doc_link
from skuad.benchmark import KNNDistance
from skuad.features import ImageEmbedder
from skuad.model_selection import FitOnInliers
from tests.conftest import FAST_DETECTORS

# Every public estimator and the anchor of its entry on the API page (autodoc's ids).
ANCHORS = {
    **{type(detector): f"skuad.{type(detector).__name__}" for detector in FAST_DETECTORS},
    FitOnInliers: "skuad.model_selection.FitOnInliers",
    KNNDistance: "skuad.benchmark.KNNDistance",
    ImageEmbedder: "skuad.features.ImageEmbedder",
}


def _instance(cls):
    return cls(skuad.DeepSVDD()) if cls is FitOnInliers else cls()


@pytest.mark.parametrize("cls", ANCHORS, ids=lambda cls: cls.__name__)
def test_html_repr_links_to_the_api_reference(cls):
    estimator = _instance(cls)
    link = estimator._get_doc_link()
    assert link == f"{_doc_link.api_reference_url()}#{ANCHORS[cls]}"
    assert f'href="{link}"' in estimator_html_repr(estimator)


@pytest.mark.parametrize(
    ("version", "slug"),
    [("0.1.0", "0.1.0"), ("1.2.3", "1.2.3"), ("0.2.0.dev0", "latest"), ("0.2.0rc1", "latest")],
)
def test_releases_link_their_own_version_and_development_builds_latest(version, slug):
    with mock.patch.object(skuad, "__version__", version):
        url = _doc_link.api_reference_url()
    assert url == f"https://skuad.readthedocs.io/en/{slug}/api.html"


def test_a_subclass_defined_elsewhere_gets_no_link():
    class MyDetector(skuad.DeepSVDD):
        pass

    MyDetector.__module__ = "my_package.detectors"
    assert MyDetector()._get_doc_link() == ""


def test_the_link_address_is_the_one_pyproject_declares():
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.search(r'^Documentation = "([^"]+)"', pyproject, re.MULTILINE).group(1)
    assert _doc_link.api_reference_url().startswith(declared.rstrip("/") + "/en/")
