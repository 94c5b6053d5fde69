"""The forward kernels' decorator: :func:`fcinv.jit.cached_njit` (kept here for the kernels' imports)."""

from fcinv.jit import cached_njit

__all__ = ["cached_njit"]
