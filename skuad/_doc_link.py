"""Links from an estimator's HTML representation (the "?" in a notebook) to its entry in
skuad's API reference."""

from sklearn.utils.fixes import parse_version

import skuad

# Where the documentation (docs/, built by Sphinx) is published; also in pyproject.toml's
# [project.urls] and .readthedocs.yaml. Each release is published under its version number,
# development builds under "latest".
DOCS_URL = "https://skuad.readthedocs.io/en/{version}/"


def api_reference_url():
    """The API reference page of the documentation for the installed skuad version."""
    version = parse_version(skuad.__version__)
    is_release = version.dev is None and version.local is None and version.pre is None
    return DOCS_URL.format(version=skuad.__version__ if is_release else "latest") + "api.html"


class DocLinkMixin:
    """Mixin for skuad's public estimators: scikit-learn's HTML representation links each one to
    its entry in skuad's API reference (by default it would look for it on scikit-learn's site).

    A subclass defined outside skuad gets no link, as scikit-learn does for foreign classes.
    """

    _doc_link_module = "skuad"

    @property
    def _doc_link_template(self):
        return api_reference_url() + "#{estimator_module}.{estimator_name}"

    def _doc_link_url_param_generator(self):
        cls = type(self)
        # The detectors are documented (and imported) as skuad.NAME, the rest by their module.
        module = "skuad" if cls.__name__ in skuad.__all__ else cls.__module__
        return {"estimator_module": module, "estimator_name": cls.__name__}
