"""Backward-compatible names: the JSON helpers now live in :mod:`fcinv.io` (``jsonable``, ``write_json``)."""

from __future__ import annotations

from fcinv.io.atomic import jsonable, write_json

__all__ = ["jsonable", "write_json"]
