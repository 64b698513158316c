"""Sphinx configuration for skuad's documentation.

Build (warnings are errors, no network needed; the gallery's examples run during the build):

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
# The gallery runs every example in this process: one thread per library keeps the build's
# time predictable on small machines (set OMP_NUM_THREADS to override).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Document the source tree next to this folder even when skuad is not installed.
sys.path.insert(0, str(DOCS.parent))

import skuad  # noqa: E402

project = "skuad"
author = "the skuad developers"
copyright = "the skuad developers"
release = skuad.__version__
version = skuad.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    # Ships MathJax and copies it into _static/mathjax: math renders without a network.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

# No network during the build: intersphinx is not loaded, so references to scikit-learn and
# torch objects stay plain text instead of links.
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "**/*.zip"]
templates_path = []
root_doc = "index"
nitpicky = False

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
# numpydoc renders the Parameters/Attributes sections; its own member tables would duplicate
# autodoc's and point at scikit-learn's undocumented internals.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Every example runs during the build, so the gallery shows its printed output and figures
# (each takes seconds on a CPU; a failing example fails the build).
sphinx_gallery_conf = {
    "examples_dirs": str(DOCS.parent / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": r"/plot_",
    "plot_gallery": "True",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    # The computation-times pages load their table scripts from a CDN: not written.
    "write_computation_times": False,
}

html_theme = "alabaster"
html_title = f"skuad {release}"
mathjax_path = "mathjax/tex-chtml.js"  # the local copy, not a CDN
html_static_path = ["_static"]
# Wide tables scroll sideways instead of being clipped by the page width.
html_css_files = ["skuad.css"]
html_theme_options = {
    "description": "Deep anomaly detectors that behave exactly like scikit-learn estimators",
    "fixed_sidebar": True,
}


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """Hide scikit-learn's metadata-routing plumbing (``get_metadata_routing``,
    ``set_*_request``): its docstrings point into scikit-learn's own documentation."""
    if name == "get_metadata_routing" or (name.startswith("set_") and name.endswith("_request")):
        return True
    return None


_TRAILING_UNDERSCORE = re.compile(r"(?<![\w`*\\])([A-Za-z]\w*)_(?=[\s,)\]]|$)")


def _escape_attribute_names_in_types(app, what, name, obj, options, lines):
    """numpydoc writes a parameter as ``**name** : type``; in the type, a fitted attribute
    such as ``(n_features_in_,)`` would be read as a reST link target. Escape its underscore.
    Runs after numpydoc (a later priority)."""
    for i, line in enumerate(lines):
        head, sep, type_text = line.partition("** : ")
        if sep and head.lstrip().startswith("**") and "`" not in type_text:
            lines[i] = head + sep + _TRAILING_UNDERSCORE.sub(r"\1\\_", type_text)


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_routing)
    app.connect("autodoc-process-docstring", _escape_attribute_names_in_types, priority=900)
