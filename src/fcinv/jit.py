"""``cached_njit``: numba's ``njit(cache=True)`` that still works where no cache can be written.

numba writes compiled kernels next to the sources (``__pycache__``) or, when that is not writable,
to its user-wide cache (``NUMBA_CACHE_DIR``, else ``~/.cache/numba``). When neither can be written
(a read-only installation run by a user without a writable home), ``cache=True`` raises
``RuntimeError: cannot cache function ...: no locator available`` at import. Here the kernel is
then compiled without caching (in memory at every start) and one warning says how to restore it.
"""

from __future__ import annotations

import warnings

from numba import njit

_warned = False


def cached_njit(**options):
    """Decorator: ``numba.njit(cache=True, **options)``, or ``cache=False`` without a cache location."""

    def decorate(fn):
        global _warned
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError as err:
            if "no locator available" not in str(err):
                raise
            if not _warned:
                _warned = True
                warnings.warn(
                    f"numba cannot write a kernel cache for {fn.__module__} (read-only installation); "
                    "kernels are compiled at every start. Set NUMBA_CACHE_DIR to a writable folder.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return njit(cache=False, **options)(fn)

    return decorate
