"""Small HDF5 helpers shared by the experiment writers: atomic writes and provenance."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fcinv.errors import DataError


def version() -> str:
    """The installed fcinv version."""
    from fcinv import __version__

    return __version__


def now() -> str:
    """UTC time stamp, ISO 8601, seconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def default_command() -> str:
    """The command line of this process (provenance when the caller passes none)."""
    return " ".join(sys.argv)


@contextlib.contextmanager
def atomic_h5(path: str | Path) -> Iterator[h5py.File]:
    """Open a temporary HDF5 file beside ``path``; rename it to ``path`` on success.

    A crash leaves the previous file (if any) untouched and no partial file behind.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent or "."))
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def put(group: h5py.Group, name: str, data: Any, unit: str, *, compress: bool = False, **attrs: Any) -> h5py.Dataset:
    """Write a dataset with its ``unit`` attribute (and any other attributes)."""
    kw = {"compression": "gzip", "compression_opts": 1, "shuffle": True} if compress and np.size(data) > 1024 else {}
    ds = group.create_dataset(name, data=data, **kw)
    ds.attrs["unit"] = unit
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def stamp(f: h5py.File, fmt: str, fmt_version: int, *, command: str | None, seed: int | None, meta: dict | None = None) -> None:
    """Root attributes every fcinv experiment file carries."""
    f.attrs["format"] = fmt
    f.attrs["format_version"] = fmt_version
    f.attrs["fcinv_version"] = version()
    f.attrs["created"] = now()
    f.attrs["command"] = command if command is not None else default_command()
    f.attrs["seed"] = -1 if seed is None else int(seed)
    f.attrs["meta"] = json.dumps(meta or {}, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def json_dumps(obj: Any) -> str:
    """``json.dumps`` that also takes numpy scalars and arrays."""
    return json.dumps(obj, default=_json_default)


def open_checked(path: str | Path, fmt: str) -> h5py.File:
    """Open an fcinv HDF5 file for reading; a missing file or another format raises :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file '{path}' does not exist. Check the path.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"'{path}' is not a readable HDF5 file ({str(exc).splitlines()[0]}). Pass a file written by fcinv.") from None
    got = f.attrs.get("format", None)
    if isinstance(got, bytes):
        got = got.decode()
    if got != fmt:
        f.close()
        raise DataError(f"'{path}' has format {got!r}, expected {fmt!r}. Pass a file of that kind (see its writer's docstring).")
    return f


def read_meta(f: h5py.File) -> dict:
    """The JSON ``meta`` root attribute (``{}`` when absent)."""
    raw = f.attrs.get("meta", "{}")
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise DataError(f"the 'meta' attribute of '{f.filename}' is not valid JSON. The file is corrupt; regenerate it.") from None
