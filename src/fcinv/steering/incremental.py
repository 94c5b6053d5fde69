"""Incremental fold: running per-pixel sums, so a new orientation costs one single-orientation fold.

The fold (:meth:`fcinv.experiment.fold.FoldPlan.apply`) gives at each pixel Σ data / Σ norm and
√(Σ var) / Σ norm over the 4D bins landing there (all zones kept). Those sums are additive over
orientations, so :class:`IncrementalFold` keeps Σ data, Σ var and Σ norm per pixel and folds only
each new orientation's volume; the result equals the batch fold of the summed volume (counts and
normalisation added per bin, :meth:`fcinv.experiment.simulate.SimulatedRun.total`) up to rounding.
Σ norm per pixel comes from :meth:`FoldPlan.image_weights`, the fold's own weights. The exposure
(:mod:`fcinv.experiment.folded`) adds too: each fold gives c = N²/Σm²fw, so Σ m² f w = N²/c per
orientation is summed and the joint exposure is (Σ N)² / Σ (N²/c) (kept while every volume had one).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from fcinv.errors import DataError

log = logging.getLogger(__name__)


class IncrementalFold:
    """Running fold of orientation volumes on one fold plan.

    Parameters
    ----------
    plan
        A :class:`fcinv.experiment.fold.FoldPlan` for the volumes' Q grid.
    corrections
        :class:`fcinv.experiment.fold.Corrections` applied to every volume (as ``fcinv fold``), or None.
    """

    def __init__(self, plan, corrections=None):
        self.plan = plan
        self.corrections = corrections
        shape = plan.grid.shape
        self.data = np.zeros(shape)
        self.var = np.zeros(shape)
        self.norm = np.zeros(shape)
        self.count = np.zeros(shape, dtype=np.int64)
        self.m2fw = np.zeros(shape)
        self.poisson = True
        self.n = 0
        self.sources: list[str] = []
        self.last_seconds = 0.0

    def add(self, volume, source: str = "") -> np.ndarray:
        """Fold one orientation's volume into the sums; returns its per-pixel Σ norm, shape (n_q, n_E)."""
        t0 = time.perf_counter()
        fs = self.plan.apply(volume, corrections=self.corrections)
        iw = self.plan.image_weights(volume)
        g = self.plan.grid
        norm = np.bincount(iw["pixel"] * g.n_e + iw["e"], weights=iw["w"], minlength=g.n_q * g.n_e).reshape(
            g.shape
        )
        m = fs.mask
        self.data[m] += fs.intensity[m] * norm[m]
        err = np.where(np.isfinite(fs.error), fs.error, 0.0)
        self.var[m] += (err[m] * norm[m]) ** 2
        self.norm[m] += norm[m]
        self.count[m] += np.maximum(fs.n_contrib[m], 0)
        if fs.exposure is None:
            self.poisson = False
        else:
            ex = fs.exposure[m]
            ok = np.isfinite(ex) & (ex > 0)
            self.m2fw[m] += np.where(ok, norm[m] ** 2 / np.where(ok, ex, 1.0), 0.0)
        self.n += 1
        self.sources.append(source)
        self.last_seconds = time.perf_counter() - t0
        return np.where(m, norm, 0.0)

    def folded(self, meta: dict | None = None):
        """The :class:`~fcinv.experiment.folded.FoldedSpectrum` of everything added so far."""
        from fcinv.experiment.folded import FoldedSpectrum

        if self.n == 0:
            raise DataError("nothing has been folded yet; add at least one orientation volume.")
        m = self.norm > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            inten = np.where(m, self.data / np.where(m, self.norm, 1.0), np.nan)
            err = np.where(m, np.sqrt(self.var) / np.where(m, self.norm, 1.0), np.nan)
            ex = None
            if self.poisson:
                pos = m & (self.m2fw > 0)
                ex = np.where(pos, self.norm**2 / np.where(pos, self.m2fw, 1.0), np.nan)
        info = {
            "folded_by": "fcinv.steering.incremental",
            "n_orientations": self.n,
            "sources": list(self.sources),
            "corrections": self.corrections.names() if self.corrections is not None else [],
        }
        info.update(meta or {})
        return FoldedSpectrum(
            intensity=inten,
            error=err,
            mask=m,
            n_contrib=self.count,
            grid=self.plan.grid,
            meta=info,
            exposure=ex,
        )
