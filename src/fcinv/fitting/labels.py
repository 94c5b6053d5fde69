"""Branch labels as dispersion tables write them, assigned by polarisation.

Accepted labels: ``L``, ``T``, ``T1``, ``T2``, optionally with ``A`` (acoustic) or ``O`` (optical)
after the first letter: ``LA``, ``TA``, ``TA1``, ``TA2``, ``LO``, ``TO``, ``TO1``, ``TO2``
(case-insensitive), besides integer indices (0 = lowest mode at that q).

Convention (q is the point's wavevector as the table gives it, conventional r.l.u., taken to
Cartesian with the conventional cell; for cubic crystals the same direction):

- ``L``: polarised along q̂; ``T``: perpendicular to q̂ (either transverse branch);
- along [ζζ0]-type lines (two equal |components|, one zero), ``T2`` is polarised along the cubic
  axis in which q has no component ([001] for [ζζ0]) and ``T1`` along q̂ × T2, i.e. along [1-10]
  for [ζζ0] (the in-plane transverse branch);
- elsewhere, T1 is the direction of the cubic axis least parallel to q̂ made perpendicular to q̂
  (ties broken x, y, z), and T2 = q̂ × T1; on [ζ00] and [ζζζ] the two transverse branches are
  degenerate, so T1 and T2 then simply name the two of them;
- ``A`` restricts the choice to the 3 lowest modes at that q, ``O`` to the others.

The polarisation weight of mode n along a unit vector u is w_u(n) = Σ_d |u · e_d(n)|² (e_d the
eigenvector's 3-vector on atom d; Σ over an orthonormal triad = 1). Points at the same q are
assigned together (Hungarian algorithm) to distinct modes, minimising
Σ (1 − w_label) + 0.1 · |E_model − E_point| / E_max (E_max: the largest measured or model
energy), so the polarisation decides and the energy
only breaks ties (an L point in a two-atom crystal without A/O gets the longitudinal mode
nearest in energy). The assignment is redone at every θ the fit evaluates.
"""

from __future__ import annotations

import re

import numpy as np

from fcinv.errors import DataError

_LABEL_RE = re.compile(r"^(L|T)(A|O)?(1|2)?$", re.IGNORECASE)
#: Weight of the energy mismatch (per E_max) against the polarisation mismatch.
ENERGY_TIE_BREAK = 0.1


def parse_label(text: str) -> str | None:
    """Normalise a polarisation label (``"ta1"`` → ``"TA1"``); None when it is not one. ``L1``/``L2`` are refused."""
    m = _LABEL_RE.match(text.strip())
    if not m or (m.group(1).upper() == "L" and m.group(3)):
        return None
    return text.strip().upper()


def polarisation_axes(q_cart: np.ndarray, q_rlu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L, T1, T2) unit vectors for one wavevector (module docstring); q must be non-zero."""
    l = q_cart / np.linalg.norm(q_cart)
    a = np.abs(np.asarray(q_rlu, float))
    amax = float(a.max())
    zero = a < 1e-6 * amax
    if int(zero.sum()) == 1:
        nz = a[~zero]
        if abs(nz[0] - nz[1]) <= 1e-6 * amax:  # [ζζ0]-type
            t2 = np.zeros(3)
            t2[int(np.argmax(zero))] = 1.0
            t2 = t2 - (t2 @ l) * l
            t2 /= np.linalg.norm(t2)
            t1 = np.cross(l, t2)
            t1 /= np.linalg.norm(t1)
            # sign convention: T1 ∝ [1-10] for [110] (irrelevant to weights)
            return l, t1, t2
    axes = np.eye(3)
    i = int(np.argmin(np.abs(axes @ l) + 1e-9 * np.arange(3)))
    t1 = axes[i] - (axes[i] @ l) * l
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(l, t1)
    return l, t1, t2 / np.linalg.norm(t2)


def label_weights(label: str, V: np.ndarray, axes: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Polarisation weight of every mode for ``label``: shape (m,). ``V`` (m, m): eigenvectors in columns."""
    m = V.shape[0]
    if axes is None:  # q = Γ: no direction to be polarised along
        return np.ones(m)
    e = V.T.reshape(m, m // 3, 3)  # (mode, atom, xyz)
    l, t1, t2 = axes
    wl = np.sum(np.abs(e @ l) ** 2, axis=1)
    kind = label[0]
    idx = label[-1] if label[-1] in "12" else ""
    if kind == "L":
        return wl
    if idx == "1":
        return np.sum(np.abs(e @ t1) ** 2, axis=1)
    if idx == "2":
        return np.sum(np.abs(e @ t2) ** 2, axis=1)
    return 1.0 - wl


def assign_labelled(labels: np.ndarray, groups: list[np.ndarray], E: np.ndarray, V: np.ndarray, energy: np.ndarray, axes: list) -> np.ndarray:
    """Mode index of every labelled point (−1 elsewhere).

    Parameters
    ----------
    labels
        Shape (n,) object: normalised label or "" (not labelled by polarisation).
    groups
        Index arrays of labelled points sharing one q.
    E
        Shape (n, m) meV, ascending per point; ``V`` shape (n, m, m): eigenvectors (columns).
    energy
        Shape (n,) meV: the measured energies.
    axes
        Per point, its (L, T1, T2) or None.
    """
    from scipy.optimize import linear_sum_assignment

    n, m = E.shape
    out = np.full(n, -1, dtype=np.int64)
    e_scale = max(float(np.max(np.abs(energy))), float(np.max(np.abs(E))), 1e-6)
    n_ac = min(3, m)
    for g in groups:
        cost = np.empty((len(g), m))
        for r, i in enumerate(g):
            lab = labels[i]
            w = label_weights(lab, V[i], axes[i])
            c = (1.0 - w) + ENERGY_TIE_BREAK * np.abs(E[i] - energy[i]) / e_scale
            if len(lab) > 1 and lab[1] in "AO":
                bad = np.arange(m) >= n_ac if lab[1] == "A" else np.arange(m) < n_ac
                c = np.where(bad, c + 10.0, c)
            cost[r] = c
        if len(g) <= m:
            rows, cols = linear_sum_assignment(cost)
            out[g[rows]] = cols
        else:  # more points than modes at one q: each its best mode
            out[g] = np.argmin(cost, axis=1)
    return out


def check_labels(labels, n_modes: int, source: str = "") -> None:
    """Refuse A/O labels in a crystal without optical modes."""
    if n_modes <= 3 and any(len(lab) > 1 and lab[1] == "O" for lab in labels if lab):
        src = f" of '{source}'" if source else ""
        raise DataError(f"optical labels (LO/TO) in a crystal with {n_modes} branches (no optical modes){src}. Use L, T, T1, T2.")
