"""Geometry of a single-crystal measurement: 4D axes, lattice → UB, sample rotations, kinematics.

Pure functions on arrays, no file access: the readers (:mod:`fcinv.experiment.readers`) and the
containers (:mod:`fcinv.experiment.volume`) both build on this module, and it imports neither.

Conventions: lab frame z along the incident beam, y vertically up, x = y × z; UB in Mantid's
convention (1/Å, without 2π), so Q_sample / 2π = UB @ hkl; ψ rotates the sample about +y.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fcinv.errors import DataError
from fcinv.experiment.instrument import energy_to_k

__all__ = [
    "AXIS_NAMES",
    "AXIS_UNITS",
    "check_edges",
    "edges_from_axis",
    "lattice_b_matrix",
    "normalise_lattice",
    "nxspe_to_points",
    "rotation_y",
    "ub_from_vectors",
]

AXIS_NAMES = ("H", "K", "L", "E")
AXIS_UNITS = ("r.l.u.", "r.l.u.", "r.l.u.", "meV")


# ------------------------------------------------------------------ 4D axes
def check_edges(edges: Sequence[np.ndarray], what: str = "the volume") -> tuple[np.ndarray, ...]:
    """Validate four 1-D increasing finite edge arrays; return them as float64."""
    if len(edges) != 4:
        raise DataError(
            f"{what} has {len(edges)} axes; expected 4 (H, K, L in r.l.u., E in meV). Pass one edge array "
            "per axis."
        )
    out = []
    for name, e in zip(AXIS_NAMES, edges):
        e = np.asarray(e, dtype=float)
        if e.ndim != 1 or len(e) < 2:
            raise DataError(
                f"{what}: axis {name} has edges of shape {e.shape}; expected a 1-D array of at least 2 bin "
                "edges."
            )
        if not np.all(np.isfinite(e)):
            raise DataError(f"{what}: axis {name} edges contain NaN or inf. Pass finite bin edges.")
        if not np.all(np.diff(e) > 0):
            i = int(np.argmin(np.diff(e)))
            raise DataError(
                f"{what}: axis {name} edges are not increasing (edge {i + 1} = {e[i + 1]:g} after "
                f"{e[i]:g}). Pass monotonically increasing bin edges."
            )
        out.append(e)
    return tuple(out)


def edges_from_axis(values: np.ndarray, n_bins: int, name: str, what: str) -> np.ndarray:
    """Bin edges from an axis given either as ``n_bins + 1`` edges or as ``n_bins`` evenly spaced centres."""
    v = np.asarray(values, dtype=float).ravel()
    if len(v) == n_bins + 1:
        return v
    if len(v) == n_bins:
        if n_bins < 2:
            raise DataError(f"{what}: axis {name} has a single centre; give its 2 bin edges instead.")
        d = np.diff(v)
        if not np.allclose(d, d[0], rtol=1e-6, atol=1e-9):
            raise DataError(
                f"{what}: axis {name} gives {n_bins} unevenly spaced centres; pass the {n_bins + 1} bin "
                "edges instead."
            )
        return np.concatenate([v - d[0] / 2, [v[-1] + d[0] / 2]])
    raise DataError(
        f"{what}: axis {name} has {len(v)} values for {n_bins} bins; expected {n_bins + 1} edges or "
        f"{n_bins} centres."
    )


# ------------------------------------------------------------------ lattice and orientation
def normalise_lattice(lattice: Sequence[float]) -> list[float]:
    """``a`` (cubic), ``a, b, c`` or ``a, b, c, α, β, γ`` → six numbers (Å, degrees)."""
    lat = [float(x) for x in lattice]
    if len(lat) == 1:
        lat = lat * 3
    if len(lat) == 3:
        lat = lat + [90.0, 90.0, 90.0]
    if len(lat) != 6:
        raise DataError(
            f"lattice has {len(lattice)} numbers; pass a (cubic), a b c, or a b c alpha beta gamma "
            "(Å, degrees)."
        )
    return lat


def lattice_b_matrix(
    a: float, b: float, c: float, alpha: float = 90.0, beta: float = 90.0, gamma: float = 90.0
) -> np.ndarray:
    """Busing–Levy B matrix (1/Å, without 2π): columns give the reciprocal vectors in a Cartesian frame.

    Angles in degrees. ``B @ hkl`` is Q/2π in the crystal Cartesian frame (a* along x).
    """
    al, be, ga = np.deg2rad([alpha, beta, gamma])
    A = np.array(
        [
            [a, 0.0, 0.0],
            [b * np.cos(ga), b * np.sin(ga), 0.0],
            [c * np.cos(be), c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga), 0.0],
        ]
    )
    A[2, 2] = np.sqrt(max(c * c - A[2, 0] ** 2 - A[2, 1] ** 2, 0.0))
    if not np.all(np.isfinite(A)) or abs(np.linalg.det(A)) < 1e-9:
        raise DataError(
            f"lattice a={a}, b={b}, c={c}, angles {alpha}/{beta}/{gamma} is degenerate. Pass positive "
            "lengths (Å) and angles in degrees."
        )
    recip = np.linalg.inv(A).T  # rows a*, b*, c* (no 2π)
    # Busing-Levy: express in a frame with a* along x, b* in the xy plane
    _, r = np.linalg.qr(recip.T)
    s = np.sign(np.diag(r))
    return r * s[:, None]


def ub_from_vectors(b_matrix: np.ndarray, u: Sequence[float], v: Sequence[float]) -> np.ndarray:
    """UB (1/Å, without 2π): at ψ = 0, ``u`` (r.l.u.) points along the beam (+z), ``v`` lies in the
    horizontal plane towards +x.

    Lab frame: z along the incident beam, y vertically up, x = y × z.
    """
    B = np.asarray(b_matrix, dtype=float)
    bu, bv = B @ np.asarray(u, float), B @ np.asarray(v, float)
    for name, vec, b in (("u", u, bu), ("v", v, bv)):
        if not (np.all(np.isfinite(b)) and np.linalg.norm(b) > 0):
            raise DataError(
                f"{name}={list(vec)} is not a direction (zero or not finite). Pass a non-zero r.l.u. "
                f"vector, e.g. --{name} {'1 0 0' if name == 'u' else '0 1 0'}."
            )
    if np.linalg.norm(np.cross(bu, bv)) < 1e-9 * np.linalg.norm(bu) * np.linalg.norm(bv):
        raise DataError(
            f"u={list(u)} and v={list(v)} are parallel. Pass two non-parallel scattering-plane vectors."
        )
    ez = bu / np.linalg.norm(bu)
    ex = bv - (bv @ ez) * ez
    ex /= np.linalg.norm(ex)
    ey = np.cross(ez, ex)
    U = np.stack([ex, ey, ez])  # rows: crystal-frame directions of lab x, y, z
    return U @ B


def rotation_y(psi_deg: np.ndarray | float) -> np.ndarray:
    """Right-handed rotation(s) about the vertical (+y) axis; shape (..., 3, 3)."""
    p = np.deg2rad(np.asarray(psi_deg, dtype=float))
    c, s = np.cos(p), np.sin(p)
    z, o = np.zeros_like(p), np.ones_like(p)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def nxspe_to_points(nx: dict, ub: np.ndarray, *, psi_offset: float = 0.0) -> dict:
    """Convert one NXSPE orientation to (H, K, L, E) points.

    Kinematics: ki = √(Ei/2.0721) ẑ, kf = √((Ei−E)/2.0721) n̂(polar, azimuthal) with
    n̂ = (sin 2θ cos φ, sin 2θ sin φ, cos 2θ); Q_lab = ki − kf (Mantid's inelastic convention);
    Q_sample = R_y(ψ)ᵀ Q_lab; hkl = (2π UB)⁻¹ Q_sample. Energy points are the bin centres;
    bins with E >= Ei are dropped.

    Parameters
    ----------
    nx
        Output of :func:`read_nxspe`.
    ub
        Shape (3, 3), 1/Å without 2π (Mantid's UB), e.g. from :func:`ub_from_vectors`.
    psi_offset
        Added to the file's psi, degrees.

    Returns
    -------
    dict with ``hkl`` (n, 3) r.l.u., ``energy`` (n,) meV, ``signal``, ``error`` (n,), masked
    (NaN) pixels kept as NaN signal.
    """
    ub = np.asarray(ub, dtype=float)
    if ub.shape != (3, 3) or abs(np.linalg.det(ub)) < 1e-12:
        raise DataError(
            f"UB has shape {ub.shape} or is singular. Pass a (3, 3) UB matrix (1/Å, Mantid convention) or "
            "lattice + u, v."
        )
    ei = nx["ei"]
    e = nx["energy_edges"]
    ec = 0.5 * (e[1:] + e[:-1])
    ok_e = ec < ei
    ec = ec[ok_e]
    ki = energy_to_k(ei)
    kf = energy_to_k(ei - ec)  # (n_E,)
    tth, phi = np.deg2rad(nx["polar"]), np.deg2rad(nx["azimuthal"])
    n_hat = np.stack([np.sin(tth) * np.cos(phi), np.sin(tth) * np.sin(phi), np.cos(tth)], -1)  # (n_det, 3)
    q_lab = np.array([0.0, 0.0, ki])[None, None, :] - kf[None, :, None] * n_hat[:, None, :]  # (n_det, n_E, 3)
    r = rotation_y(nx["psi"] + psi_offset)
    q_sample = q_lab @ r  # row-vector form of R^T q
    hkl = q_sample.reshape(-1, 3) @ np.linalg.inv(2 * np.pi * ub).T
    n_det = len(tth)
    return {
        "hkl": hkl,
        "energy": np.broadcast_to(ec, (n_det, len(ec))).ravel().copy(),
        "signal": nx["data"][:, ok_e].ravel(),
        "error": nx["error"][:, ok_e].ravel(),
    }
