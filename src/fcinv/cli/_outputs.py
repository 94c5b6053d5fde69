"""Output-path helpers shared by the dispatcher's checks (:mod:`fcinv.cli._guards`) and the resume
checks (:mod:`fcinv.cli._resume`): the error types, the writable probe, stale temporaries, a quiet
argparse run. A module of its own so that neither of the two imports the other at load.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from pathlib import Path

from fcinv.errors import FcinvError

log = logging.getLogger("fcinv.cli._guards")

# Temporary names written by fcinv: atomic_path (".NAME.PID.XXXX.tmp", older ".NAME.XXXX.tmp") and the
# checkpoint / dataset writers (".NAME.tmp-PID", ".STEM.tmp-PID.png").
_TMP_PID = re.compile(r"^\..+\.tmp-(\d+)(\.[A-Za-z0-9]+)?$")
_TMP_ATOMIC_PID = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


class OutputError(FcinvError):
    """An output path exists, is not writable, or is of the wrong kind."""


class LimitError(FcinvError):
    """An argument lies outside its physical range, or the job would not fit in memory."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def stale_temporaries(folder: str | Path) -> list[Path]:
    """Temporary files in ``folder`` left by fcinv processes that no longer run.

    Parameters
    ----------
    folder
        The folder to scan (not recursive). A missing folder has none.

    Returns
    -------
    list of Path
        ``.NAME.tmp-PID`` (checkpoints, datasets, figures) and ``.NAME.PID.XXXX.tmp`` (atomic writer)
        files whose PID is not a running process.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _TMP_PID.match(p.name) or _TMP_ATOMIC_PID.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m.group(1))):
            out.append(p)
    return sorted(out)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete :func:`stale_temporaries` of ``folder``; returns the removed paths (logged at INFO)."""
    removed = []
    for p in stale_temporaries(folder):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
            log.info("removed %s, a temporary file of a killed run", p)
    return removed


def check_writable(path: str | Path, *, flag: str = "-o", folder: bool = False) -> Path:
    """Check that ``path`` can be created: its nearest existing folder must be a writable folder.

    With ``folder``, ``path`` is itself a folder to write into (it may exist).

    The check writes and deletes a probe file, so read-only file systems and permissions are both seen.

    Raises
    ------
    OutputError
        When a parent is a file, or the folder refuses a new file.
    """
    path = Path(path)
    anc = path if folder else (path.parent if str(path.parent) else Path("."))
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(
            f"cannot write {path}: '{anc}' is a file, not a folder. Choose another path ({flag})."
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".fcinv-write-probe.", dir=str(anc))
    except OSError as exc:
        why = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or type(exc).__name__)
        raise OutputError(
            f"cannot write {path}: folder '{anc}' is not writable ({why}). Choose a writable path ({flag})."
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


class _ParseFailed(Exception):
    pass


def _quiet_parse(parser, argv: list[str]):
    """``parser.parse_known_args(argv)`` without printing or exiting: None when the line is not valid."""
    import argparse

    def fail(message):
        raise _ParseFailed(message)

    parsers = [parser]
    while parsers:
        p = parsers.pop()
        p.error = fail  # type: ignore[method-assign]
        p.exit = lambda status=0, message=None: fail(message)  # type: ignore[method-assign]
        for action in p._actions:  # argparse keeps no public list of sub-parsers
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    try:
        return parser.parse_known_args(argv)[0]
    except _ParseFailed:
        return None
