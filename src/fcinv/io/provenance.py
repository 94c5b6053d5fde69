"""One provenance stamp: the fcinv version, the seed, the command and the time, on every file.

The command line is built once, by the CLI (:func:`fcinv.cli.main.main` calls
:func:`command_scope`); library calls made outside the CLI record ``python <script> <args>``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import json
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fcinv.errors import DataError

_COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("fcinv_command", default=None)


def fcinv_version() -> str:
    """The installed fcinv version."""
    from fcinv import __version__

    return __version__


def now() -> str:
    """UTC time stamp, ISO 8601, seconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def format_command(argv: Sequence[str]) -> str:
    """A shell-quoted command line from its words."""
    return " ".join(shlex.quote(str(a)) for a in argv)


@contextlib.contextmanager
def command_scope(argv: Sequence[str]) -> Iterator[str]:
    """Record ``argv`` as the command of every file written inside the block (the CLI's entry point)."""
    token = _COMMAND.set(format_command(argv))
    try:
        yield _COMMAND.get() or ""
    finally:
        _COMMAND.reset(token)


def scoped_command() -> str | None:
    """The command recorded by :func:`command_scope`, or None outside one."""
    return _COMMAND.get()


def current_command() -> str:
    """The command being run: the CLI's (inside :func:`command_scope`), else this Python process's."""
    cmd = _COMMAND.get()
    return cmd if cmd is not None else format_command(["python", *sys.argv])


@dataclass(frozen=True)
class Provenance:
    """Who made a file or a result, and how.

    Attributes
    ----------
    fcinv_version
        The package version.
    command
        The command line (shell-quoted).
    seed
        The seed of the random process, or ``None`` when none was involved.
    created
        UTC time stamp, ISO 8601.
    """

    fcinv_version: str
    command: str
    seed: int | None
    created: str

    @classmethod
    def now(cls, *, seed: int | None = None, command: str | None = None) -> Provenance:
        """A stamp for something made now (``command`` defaults to :func:`current_command`)."""
        return cls(
            fcinv_version(),
            command if command is not None else current_command(),
            None if seed is None else int(seed),
            now(),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`; missing keys read as unknown."""
        seed = d.get("seed")
        seed = None if seed is None or int(seed) < 0 else int(seed)
        return cls(
            str(d.get("fcinv_version", "?")), str(d.get("command", "?")), seed, str(d.get("created", "?"))
        )


def stamp_h5(
    f: Any,
    fmt: str,
    fmt_version: int,
    *,
    provenance: Provenance | None = None,
    command: str | None = None,
    seed: int | None = None,
    meta: dict | None = None,
) -> None:
    """Root attributes every fcinv HDF5 file carries: format, format_version, the stamp, meta (JSON).

    Parameters
    ----------
    f
        An open, writable ``h5py.File``.
    fmt, fmt_version
        The file format's name (e.g. ``"fcinv-folded"``) and version.
    provenance
        The stamp; built now from ``command`` and ``seed`` when omitted.
    meta
        Free-form JSON-able provenance of the content.
    """
    from fcinv.io.atomic import json_dumps

    p = provenance if provenance is not None else Provenance.now(seed=seed, command=command)
    f.attrs["format"] = fmt
    f.attrs["format_version"] = fmt_version
    f.attrs["fcinv_version"] = p.fcinv_version
    f.attrs["created"] = p.created
    f.attrs["command"] = p.command
    f.attrs["seed"] = -1 if p.seed is None else int(p.seed)
    f.attrs["meta"] = json_dumps(meta or {})


def _attr(f: Any, key: str, default: Any) -> Any:
    v = f.attrs.get(key, default)
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    return v.item() if hasattr(v, "item") else v


def read_stamp(f: Any) -> Provenance:
    """The :class:`Provenance` of an open fcinv HDF5 file (unknown fields read as ``"?"``)."""
    return Provenance.from_dict(
        {k: _attr(f, k, "?" if k != "seed" else -1) for k in ("fcinv_version", "command", "seed", "created")}
    )


def read_meta(f: Any) -> dict:
    """The JSON ``meta`` root attribute of an open fcinv HDF5 file (``{}`` when absent)."""
    raw = _attr(f, "meta", "{}")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise DataError(
            f"the 'meta' attribute of '{f.filename}' is not valid JSON. The file is corrupt; regenerate it."
        ) from None
