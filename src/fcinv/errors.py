"""Named exceptions of fcinv.

Every error raised on bad input is a subclass of :class:`FcinvError` (itself a
``ValueError``) and carries a one-line message that names the problem, the
offending value and the fix.
"""

from __future__ import annotations


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
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{purpose} needs the optional package '{module}' ({exc}); "
            f"install it with: pip install 'fcinv[{extra}]'"
        ) from None
