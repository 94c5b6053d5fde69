"""Numerical kernels of the simulated experiment (numba), kept apart from the containers.

Kernels receive plain arrays only.
"""

from __future__ import annotations

import math

import numpy as np

from fcinv.jit import cached_njit

_E_K2 = 2.0721247


@cached_njit()
def _coverage_pass(
    qs, rm, cos_psi, sin_psi, ki, ei, e0, de, ne, lim, dq, fill, out_q, out_e, out_o, out_w
):  # pragma: no cover - compiled
    n_o = cos_psi.shape[0]
    n_q = qs.shape[0]
    n = 0
    base_c = ei - _E_K2 * ki * ki
    scale = 2.0 * _E_K2 * ki
    emin = e0 - 2.0 * de
    emax = e0 + (ne + 2) * de
    for o in range(n_o):
        c = cos_psi[o]
        s = sin_psi[o]
        for i in range(n_q):
            qx = qs[i, 0]
            qy = qs[i, 1]
            qz = qs[i, 2]
            q2 = qx * qx + qy * qy + qz * qz
            qzl = -s * qx + c * qz
            en = base_c - _E_K2 * q2 + scale * qzl
            if en <= emin or en >= emax or en >= ei:
                continue
            kx = -(c * qx + s * qz)
            ky = -qy
            kz = ki - qzl
            kn = math.sqrt(kx * kx + ky * ky + kz * kz)
            if kn <= 0.0:
                continue
            inp = math.degrees(math.atan2(kx, kz))
            if inp < lim[0] or inp > lim[1]:
                continue
            oop = math.degrees(math.asin(min(1.0, max(-1.0, ky / kn))))
            if oop < lim[2] or oop > lim[3]:
                continue
            # energy spread over the bin: gradient 2 E_K2 kf . (R m)
            var = 0.0
            for k in range(3):
                g = 2.0 * _E_K2 * (kx * rm[o, 0, k] + ky * rm[o, 1, k] + kz * rm[o, 2, k])
                var += (g * dq[k]) ** 2
            width = max(math.sqrt(var), 1e-6)
            lo = en - 0.5 * width
            hi = en + 0.5 * width
            j = int(math.floor((lo - e0) / de))
            while True:
                blo = e0 + j * de
                if blo >= hi:
                    break
                if 0 <= j < ne:
                    ov = min(hi, blo + de) - max(lo, blo)
                    if ov > 1e-12:
                        if fill:
                            out_q[n] = i
                            out_e[n] = j
                            out_o[n] = o
                            out_w[n] = ov / width
                        n += 1
                j += 1
    return n


def coverage_kernel(
    qs: np.ndarray,
    rm: np.ndarray,
    psi_deg: np.ndarray,
    ki: float,
    ei: float,
    e_edges: np.ndarray,
    limits: np.ndarray,
    dq: np.ndarray,
) -> dict[str, np.ndarray]:
    """Measured (orientation, Q-bin, energy bin) entries and their weights; see ``simulate.coverage``.

    Parameters
    ----------
    qs
        Shape (n, 3) float64, 1/Å: Q-bin centres in the lab frame at ψ = 0.
    rm
        Shape (n_o, 3, 3) float64: R_y(ψ) @ (2π UB), mapping hkl to Q_lab.
    psi_deg
        Shape (n_o,) degrees.
    e_edges
        Evenly spaced energy edges, meV.
    limits
        (in-plane min, max, out-of-plane min, max), degrees.
    dq
        (ΔH, ΔK, ΔL), r.l.u.

    Returns
    -------
    dict of ``q``, ``e``, ``o`` (int64) and ``w`` (float64), sorted by orientation, then Q-bin, then energy.
    """
    qs = np.ascontiguousarray(qs, dtype=np.float64)
    p = np.deg2rad(np.asarray(psi_deg, dtype=np.float64))
    cos_psi, sin_psi = np.cos(p), np.sin(p)
    e0, de, ne = float(e_edges[0]), float(e_edges[1] - e_edges[0]), len(e_edges) - 1
    lim = np.asarray(limits, dtype=np.float64)
    dq = np.asarray(dq, dtype=np.float64)
    rm = np.ascontiguousarray(rm, dtype=np.float64)
    dummy_i = np.zeros(1, dtype=np.int64)
    dummy_f = np.zeros(1, dtype=np.float64)
    n = _coverage_pass(
        qs, rm, cos_psi, sin_psi, ki, ei, e0, de, ne, lim, dq, False, dummy_i, dummy_i, dummy_i, dummy_f
    )
    out = {
        "q": np.empty(n, np.int64),
        "e": np.empty(n, np.int64),
        "o": np.empty(n, np.int64),
        "w": np.empty(n, np.float64),
    }
    _coverage_pass(
        qs, rm, cos_psi, sin_psi, ki, ei, e0, de, ne, lim, dq, True, out["q"], out["e"], out["o"], out["w"]
    )
    return out
