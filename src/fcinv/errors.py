"""Named exceptions of fcinv.

Every error raised on bad input is a subclass of :class:`FcinvError` (itself a
``ValueError``) and carries a one-line message that names the problem, the
offending value and the fix.
"""

from __future__ import annotations

import re


class FcinvError(ValueError):
    """Base class of every fcinv error caused by bad input or state."""


class StructureError(FcinvError):
    """A crystal structure could not be read or is inconsistent."""


class MaterialError(FcinvError):
    """An unknown embedded material name."""


class ForceConstantError(FcinvError):
    """A force-constant array or parameter vector is malformed."""


class UnstableError(FcinvError):
    """A force-constant set has imaginary modes where stability is required."""


class GridError(FcinvError):
    """A spectrum, dataset or model lives on another (q, E) grid."""


class DataError(FcinvError):
    """A data file (dataset, spectrum, measured volume) is malformed."""


class CheckpointError(FcinvError):
    """A model checkpoint is missing, corrupt or does not match."""


class MissingDependencyError(FcinvError, ImportError):
    """An optional dependency is not installed."""


def _source_tree() -> str | None:
    """The fcinv source folder (the one holding its ``pyproject.toml``) this fcinv runs from, if any.

    The package's own tree (a checkout on ``PYTHONPATH`` or an editable install) comes first, then
    the folder a regular install was made from (``direct_url.json``, PEP 610) while it still exists.
    """
    import json
    from importlib import metadata
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    def is_fcinv_tree(d: Path) -> bool:
        try:
            text = (d / "pyproject.toml").read_text(encoding="utf-8")
        except OSError:
            return False
        return re.search(r'^name\s*=\s*"fcinv"', text, flags=re.MULTILINE) is not None

    here = Path(__file__).resolve().parent
    for d in here.parents[:3]:
        if is_fcinv_tree(d):
            return str(d)
    try:
        raw = metadata.distribution("fcinv").read_text("direct_url.json")
        url = urlparse(json.loads(raw)["url"]) if raw else None
    except (metadata.PackageNotFoundError, ValueError, KeyError, TypeError):
        url = None
    if url is not None and url.scheme == "file" and is_fcinv_tree(Path(unquote(url.path))):
        return str(Path(unquote(url.path)))
    return None


def _extra_requirements(extra: str) -> list[str]:
    """The requirements the installed fcinv's metadata lists for ``extra`` (empty if unknown)."""
    from importlib import metadata

    try:
        reqs = metadata.distribution("fcinv").requires or []
    except metadata.PackageNotFoundError:
        return []
    tag = re.compile(r";\s*extra\s*==\s*['\"]" + re.escape(extra) + r"['\"]\s*$")
    return [r.split(";")[0].strip() for r in reqs if tag.search(r)]


def install_command(extra: str) -> str:
    """A ``pip install`` command that installs fcinv's optional ``extra`` here.

    fcinv is not on a package index, so ``pip install 'fcinv[extra]'`` would fail: the command names
    the source folder fcinv runs from or was installed from (``pip install '/path/to/fcinv[extra]'``),
    and, where that folder is gone, the extra's requirements themselves.

    Parameters
    ----------
    extra
        The name of the extra, e.g. ``"dask"``.

    Returns
    -------
    str
        One shell command line.
    """
    import shlex

    tree = _source_tree()
    if tree is not None:
        return f"pip install {shlex.quote(f'{tree}[{extra}]')}"
    reqs = _extra_requirements(extra)
    if reqs:
        return "pip install " + " ".join(shlex.quote(r) for r in reqs)
    return f"pip install '<fcinv source folder>[{extra}]' (the checkout fcinv was installed from)"


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise a one-line install hint.

    Parameters
    ----------
    module
        Importable module name, e.g. ``"euphonic"``.
    extra
        The fcinv extra that provides it, e.g. ``"experiment"``.
    purpose
        What the caller needs it for, used in the message.

    Raises
    ------
    MissingDependencyError
        The module cannot be imported; the message holds a working install command
        (:func:`install_command`).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the optional package '{module}' ({exc}); "
            f"install it with: {install_command(extra)}"
        ) from None


# Python's own wording for the failures of third-party readers, and what it means in a file.
_SHORT_FILE = "the file ends early or a line has too few fields"
_BAD_LAYOUT = "its content does not follow the format"
_RAW_WORDING: list[tuple[str, str]] = [
    (r"index out of range|index \d+ is out of bounds|no data left|unexpected end", _SHORT_FILE),
    (
        r"inhomogeneous shape|setting an array element with a sequence|could not broadcast|cannot reshape",
        "a block holds the wrong number of values (rows of different lengths)",
    ),
    (r"codec can't decode", "it is a binary file, not text"),
    (r"file signature not found", "no HDF5 signature: it is not an HDF5 file"),
    (r"truncated file", "the file is truncated (shorter than its HDF5 header says)"),
]
_NOT_A_NUMBER = re.compile(
    r"(?:invalid literal for \w+\(\) with base \d+|could not convert string to \w+): (.+)$"
)
_H5_MISSING = re.compile(r"object '([^']+)' doesn't exist")


def describe_exception(exc: BaseException) -> str:
    """What a third-party reader's exception says about the file, without Python's internal wording.

    Readers (ASE, phonopy, numpy, h5py, json) fail with messages such as "list index out of range",
    "invalid literal for int() with base 10: 'x'", an empty ``AssertionError`` or ``StopIteration``,
    or numpy's "inhomogeneous shape": this turns them into a phrase about the file ("the file ends
    early or a line has too few fields", "'x' stands where a number is expected"), for messages of the
    form ``could not read FILE: <phrase>. <fix>``. Other messages pass through (first line, at most
    160 characters, no trailing full stop).

    Parameters
    ----------
    exc
        The exception a reader raised.

    Returns
    -------
    str
        A phrase without a final full stop.
    """
    import json

    if isinstance(exc, json.JSONDecodeError):
        if not exc.doc.strip():
            return "the file is empty"
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg[0].lower()}{exc.msg[1:]}"
    if isinstance(exc, UnicodeDecodeError):
        return "it is a binary file, not text"
    text = str(exc).strip()
    if isinstance(exc, KeyError):
        m = _H5_MISSING.search(text)
        name = m.group(1) if m else (exc.args[0] if exc.args else "")
        return f"the entry '{name}' is missing" if name else _BAD_LAYOUT
    if isinstance(exc, (StopIteration, EOFError)):
        return _SHORT_FILE
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, IndexError) and not first:
        return _SHORT_FILE
    m = _NOT_A_NUMBER.search(first)
    if m:
        return f"{m.group(1)} stands where a number is expected"
    for pattern, phrase in _RAW_WORDING:
        if re.search(pattern, first, flags=re.IGNORECASE):
            return phrase
    first = re.sub(r"^Unable to (?:synchronously )?(?:open|read) \w+ \((.*)\)$", r"\1", first)
    if not first or isinstance(exc, (AssertionError, IndexError, AttributeError, TypeError)):
        return _BAD_LAYOUT
    return first[:160].rstrip(". ")


def json_kind(value) -> str:
    """The JSON name of a parsed value's type (null, boolean, number, string, array, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
