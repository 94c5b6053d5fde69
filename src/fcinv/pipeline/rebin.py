"""Rebinning a folded spectrum onto another binning of the same q-path."""

from __future__ import annotations

import numpy as np

from fcinv.errors import GridError
from fcinv.experiment.folded import FoldedSpectrum
from fcinv.grid import SpectrumGrid


def rebin_spectrum(fs: FoldedSpectrum, grid: SpectrumGrid) -> FoldedSpectrum:
    """Linear interpolation of a folded spectrum onto ``grid`` (same path labels, any binning).

    Each path segment is mapped onto [0, 1] and interpolated there; energies are
    interpolated between bin centres. A target pixel is measured only when every
    source pixel it draws on was measured.
    """
    src = fs.grid
    if tuple(src.labels) != tuple(grid.labels) or not src.segment_bins or not grid.segment_bins:
        raise GridError(
            f"cannot rebin: the input path {'-'.join(src.labels) or '?'} differs from the model's "
            f"{'-'.join(grid.labels)}. Fold the data onto the model's path instead."
        )

    def seg_coords(g: SpectrumGrid) -> np.ndarray:
        out = []
        for k, nb in enumerate(g.segment_bins):
            out.append(k + (np.arange(nb) + 0.5) / nb)
        return np.concatenate(out)

    xs, xt = seg_coords(src), seg_coords(grid)
    es, et = src.energy, grid.energy
    img = np.where(fs.mask, fs.intensity, np.nan)

    def interp2(a: np.ndarray) -> np.ndarray:
        # along q (per segment: no interpolation across a segment boundary)
        seg_s, seg_t = np.floor(xs).astype(int), np.floor(xt).astype(int)
        tmp = np.full((len(xt), a.shape[1]), np.nan)
        for k in np.unique(seg_t):
            s_idx, t_idx = np.nonzero(seg_s == k)[0], np.nonzero(seg_t == k)[0]
            for j in range(a.shape[1]):
                tmp[t_idx, j] = (
                    np.interp(xt[t_idx], xs[s_idx], a[s_idx, j], left=np.nan, right=np.nan)
                    if len(s_idx) > 1
                    else a[s_idx[0], j]
                )
        out = np.full((len(xt), len(et)), np.nan)
        for i in range(len(xt)):
            out[i] = np.interp(et, es, tmp[i], left=np.nan, right=np.nan)
        return out

    inten = interp2(img)
    err = (
        interp2(np.where(fs.mask, fs.error, np.nan))
        if np.isfinite(fs.error).any()
        else np.full(grid.shape, np.nan)
    )
    meta = dict(fs.meta)
    meta["rebinned_from"] = {"shape": list(src.shape), "fingerprint": src.fingerprint()}
    return FoldedSpectrum.from_arrays(inten, grid, error=err, meta=meta)
