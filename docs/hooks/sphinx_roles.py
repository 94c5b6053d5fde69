"""Griffe extension: the docstrings' Sphinx roles rendered as code in the API reference.

The package's docstrings cross-reference with Sphinx roles (``:class:`~fcinv.result.FCResult```,
``:func:`resolve_truth```, ``:data:`X```). mkdocstrings does not read them, so before rendering each
role becomes inline code: the last dotted component with ``~``, the whole target without.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def plain_roles(text: str) -> str:
    """``:class:`~a.b.C``` → ```C```, ``:func:`a.f``` → ```a.f```."""
    return _ROLE.sub(_code, text)


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring's Sphinx roles as inline code once the object tree is built."""

    def on_object(self, *, obj, **kwargs) -> None:  # noqa: ARG002 - griffe's hook signature
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
