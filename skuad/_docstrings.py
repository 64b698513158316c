"""Docstring pieces written once and filled into every docstring that needs them.

A docstring holds a line ``%(name)s`` where a piece belongs; :func:`fill_doc` puts the piece
there, indented as that line, so one flush-left piece serves functions and methods alike and
``help()`` and Sphinx show the finished text.
"""

import re

_PLACEHOLDER_LINE = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*\n", re.MULTILINE)


def fill_doc(**pieces):
    """Decorator: replace each line ``%(name)s`` of the docstring by ``pieces[name]``."""

    def decorate(obj):
        def piece(match):
            indent, name = match.groups()
            return "".join(
                indent + line if line.strip() else line
                for line in pieces[name].splitlines(keepends=True)
            )

        if obj.__doc__ is not None:  # None under ``python -OO``
            obj.__doc__ = _PLACEHOLDER_LINE.sub(piece, obj.__doc__)
        return obj

    return decorate


def rows_parameters(verb, detail=""):
    """The Parameters section of a method whose one argument is ``X``, the rows to ``verb``
    (``detail``: a clause after that description)."""
    return (
        "Parameters\n"
        "----------\n"
        "X : array-like of shape (n_samples, n_features)\n"
        f"    The samples to {verb}{detail}.\n"
    )


FIT_PARAMS_AND_RETURNS = """\
**fit_params : dict
    None is supported. ``sample_weight`` is refused with a ``ValueError`` rather than
    ignored: the networks train on unweighted mini-batches.

Returns
-------
self : object
    The fitted detector.
"""
