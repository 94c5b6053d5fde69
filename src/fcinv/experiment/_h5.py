"""HDF5 helpers of the experiment containers, on top of :mod:`fcinv.io` (the one writer and stamp)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fcinv.errors import DataError, describe_exception
from fcinv.io.atomic import atomic_h5, json_dumps
from fcinv.io.provenance import read_meta, stamp_h5

__all__ = ["atomic_h5", "json_dumps", "open_checked", "put", "read_meta", "stamp"]


def put(
    group: h5py.Group, name: str, data: Any, unit: str, *, compress: bool = False, **attrs: Any
) -> h5py.Dataset:
    """Write a dataset with its ``unit`` attribute (and any other attributes)."""
    kw: dict[str, Any] = {}
    if compress and np.size(data) > 1024:
        kw = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    ds = group.create_dataset(name, data=data, **kw)
    ds.attrs["unit"] = unit
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def stamp(
    f: h5py.File,
    fmt: str,
    fmt_version: int,
    *,
    command: str | None,
    seed: int | None,
    meta: dict | None = None,
) -> None:
    """Root attributes every fcinv experiment file carries (see :func:`fcinv.io.stamp_h5`)."""
    stamp_h5(f, fmt, fmt_version, command=command, seed=seed, meta=meta)


def open_checked(path: str | Path, fmt: str) -> h5py.File:
    """Open an fcinv HDF5 file for reading; a missing file or another format raises :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file '{path}' does not exist. Check the path.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(
            f"'{path}' is not a readable HDF5 file ({describe_exception(exc)}). Pass a file written by fcinv."
        ) from None
    got = f.attrs.get("format", None)
    if isinstance(got, bytes):
        got = got.decode()
    if got != fmt:
        f.close()
        raise DataError(
            f"'{path}' has format {got if got is None else repr(str(got))}, expected {fmt!r}. "
            "Pass a file of that kind (see its writer's docstring)."
        )
    return f
