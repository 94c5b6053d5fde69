"""One atomic writer: every fcinv file is written to a temporary file beside its target, then renamed.

A crash, a full disk or a Ctrl-C leaves the previous file (if any) untouched and no partial file
behind. :func:`atomic_path` is the primitive; :func:`atomic_h5`, :func:`write_text` and
:func:`write_json` are built on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    Parameters
    ----------
    path
        The final file. Its folder is created when missing.

    Yields
    ------
    Path
        A fresh temporary file in the same folder (so the rename is atomic), with the usual
        permissions (0666 minus the umask). Write it completely inside the block.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the PID in the name lets the next run remove the temp of a killed one (fcinv.cli._guards)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_h5(path: str | Path) -> Iterator[Any]:
    """Open a temporary HDF5 file for writing beside ``path``; rename it onto ``path`` on success.

    Yields
    ------
    h5py.File
        Open in mode ``"w"``; closed before the rename.
    """
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def jsonable(obj: Any) -> Any:
    """Convert numpy arrays and scalars, tuples and paths inside ``obj`` to plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def json_dumps(obj: Any, *, indent: int | None = None) -> str:
    """``json.dumps`` of :func:`jsonable` ``(obj)`` (numpy values, paths, tuples accepted)."""
    return json.dumps(jsonable(obj), indent=indent, ensure_ascii=False)


def write_json(path: str | Path, doc: Any) -> Path:
    """Write ``doc`` as indented UTF-8 JSON atomically; returns ``path``."""
    return write_text(path, json_dumps(doc, indent=1) + "\n")
