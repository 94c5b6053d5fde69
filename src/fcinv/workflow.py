"""Backward-compatible names: Stage III now lives in :mod:`fcinv.pipeline`.

``load_spectrum(path, grid, crystal)`` is kept for scripts written against the old module; new
code uses :class:`fcinv.pipeline.Pipeline` or :func:`fcinv.invert`.
"""

from __future__ import annotations

from pathlib import Path

from fcinv.pipeline.core import fold_measurement
from fcinv.pipeline.plots import plot_inversion
from fcinv.pipeline.rebin import rebin_spectrum

__all__ = ["load_spectrum", "plot_inversion", "rebin_spectrum"]


def load_spectrum(
    path: str | Path,
    grid,
    crystal,
    *,
    rebin: bool = False,
    transpose: bool = False,
    q_tolerance: float = 0.05,
    corrections=None,
):
    """Any measurement file → a FoldedSpectrum on ``grid`` (format registry, then folding or a grid check)."""
    from fcinv.io.registry import open_measurement, sniff
    from fcinv.material import Material

    material = Material(crystal)
    opts = {"transpose": True} if transpose else {}
    if sniff(path) != "pathsqe":
        opts = {}
    m = open_measurement(path, grid=grid, lattice=crystal.lattice_parameters, **opts)
    return fold_measurement(
        m,
        material,
        grid,
        q_tolerance=q_tolerance,
        corrections=corrections,
        rebin=rebin,
        source=f"'{Path(path).name}'",
    )
