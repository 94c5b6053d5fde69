"""Test helpers of the experiment tests: the pathSQE Ge grid built independently of fcinv.crystal."""

from __future__ import annotations

import numpy as np

from fcinv.grid import SpectrumGrid

#: pathSQE's Ge path points (conventional r.l.u.) and segments: Γ–X–U|K–Γ–L–W–X.
GE_POINTS = {
    "Γ": (0, 0, 0),
    "X": (0, 1, 0),
    "U": (0.25, 1, 0.25),
    "K": (0.75, 0.75, 0),
    "L": (0.5, 0.5, 0.5),
    "W": (0.5, 1, 0),
}
GE_SEGMENTS = (("Γ", "X"), ("X", "U"), ("K", "Γ"), ("Γ", "L"), ("L", "W"), ("W", "X"))


def ge_path_grid(e_edges: np.ndarray | None = None, step: float = 0.025) -> SpectrumGrid:
    """The Ge path built independently of fcinv.crystal: each segment binned at ``step`` of its
    largest r.l.u. component, bin centres (40/10/30/20/20/20 = 140 bins); E 0-40 meV in 0.5 meV."""
    qs, nbs = [], []
    for a, b in GE_SEGMENTS:
        qa, qb = np.array(GE_POINTS[a], float), np.array(GE_POINTS[b], float)
        n = int(round(np.abs(qb - qa).max() / step))
        qs.append(qa + ((np.arange(n) + 0.5) / n)[:, None] * (qb - qa))
        nbs.append(n)
    ticks = tuple(float(t) for t in np.concatenate([[0], np.cumsum(nbs)]))
    labels = ("Γ", "X", "U|K", "Γ", "L", "W", "X")
    edges = np.arange(0.0, 40.0 + 1e-9, 0.5) if e_edges is None else np.asarray(e_edges, float)
    return SpectrumGrid(
        q_rlu=np.concatenate(qs),
        energy_edges=edges,
        labels=labels,
        ticks=ticks,
        material="Ge",
        segment_bins=tuple(nbs),
    )
