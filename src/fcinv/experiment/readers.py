"""Readers for measured data: Mantid MDHisto (SaveMD), NXSPE, plain 4D arrays, pathSQE output.

Every reader returns plain arrays in a dict; the containers build themselves from
those (:meth:`Volume4D.from_mdhisto`, :meth:`Volume4D.from_nxspe`,
:meth:`Volume4D.from_array_file`, :meth:`FoldedSpectrum.from_pathsqe`). No Mantid or
Horace is needed: everything is read with h5py / numpy.

Formats
-------
Mantid MDHistoWorkspace saved by ``SaveMD`` (NeXus/HDF5, SaveMD version 2)::

    /MDHistoWorkspace/data/<dim id>     bin boundaries of each dimension, attrs units, long_name, frame
    /MDHistoWorkspace/data/signal       C-order (n_d3, n_d2, n_d1, n_d0), attr axes = "d3:d2:d1:d0"
    /MDHistoWorkspace/data/errors_squared, num_events (float64), mask (int8, 1 = masked)

NXSPE (one file per sample orientation; the entry's name varies)::

    /<entry>/data/data, error          (n_det, n_E) float64; NaN = masked detector
    /<entry>/data/energy               (n_E + 1,) energy-transfer bin edges, meV
    /<entry>/data/polar, azimuthal     (n_det,) detector angles, degrees
    /<entry>/NXSPE_info/fixed_energy   Ei, meV;  psi: sample rotation, degrees;  ki_over_kf_scaling

Plain 4D array (HDF5 root or group, or NPZ), keys:

    signal           (n_H, n_K, n_L, n_E) float, NaN where not covered     } or ``counts``
    error | errors_squared   same shape (not needed with ``counts``)        } + ``norm``
    norm             optional, same shape: normalisation (exposure)
    H, K, L          axes in r.l.u.: n+1 edges or n evenly spaced centres
    E                energy axis in meV, likewise
    reciprocal_cell  optional (3, 3), 1/Å

pathSQE folded output ``folded_path_plot_<n>.npy``: the path segments' 2D images
(n_q_segment, n_E), data/normalisation, stacked along q with ``np.vstack``; NaN where
nothing was measured. ``.npz`` files (pathSQE's per-segment archives) are stacked the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from fcinv.errors import DataError
from fcinv.experiment.instrument import energy_to_k
from fcinv.experiment.volume import AXIS_NAMES, check_edges, edges_from_axis

log = logging.getLogger(__name__)


def _open_h5(path: str | Path, what: str) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file '{path}' does not exist. Check the path.")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"'{path}' is not a readable HDF5/NeXus file ({str(exc).splitlines()[0]}). Pass a {what} file.") from None


def _str(v) -> str:
    if isinstance(v, np.ndarray):
        v = v.ravel()[0] if v.size else ""
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    return str(v)


# ------------------------------------------------------------------ Mantid MDHisto
_DIM_PATTERNS = {
    "H": re.compile(r"^\[?H,0,0\]?$|^H$|^QX$"),
    "K": re.compile(r"^\[?0,K,0\]?$|^K$|^QY$"),
    "L": re.compile(r"^\[?0,0,L\]?$|^L$|^QZ$"),
    "E": re.compile(r"^DELTAE$|^E$|^ENERGYTRANSFER$|^DE$"),
}


def read_mdhisto(path: str | Path) -> dict:
    """Read a Mantid MDHistoWorkspace written by ``SaveMD`` (no Mantid needed).

    Returns
    -------
    dict with ``names`` (long names), ``ids``, ``units``, ``frames`` (lists, Mantid's
    dimension order d0..), ``edges`` (list of bin-boundary arrays), ``signal``,
    ``errors_squared``, ``num_events`` (float64 arrays of shape (n_d0, n_d1, ...)),
    ``mask`` (bool, True = masked) and ``coordinate_system`` (int or -1).
    """
    with _open_h5(path, "Mantid MDHisto") as f:
        if "MDHistoWorkspace" not in f:
            top = ", ".join(list(f.keys())[:5])
            raise DataError(f"'{path}' has no /MDHistoWorkspace group (top level: {top}). Save the histogram workspace with Mantid's SaveMD (an MDEventWorkspace must be binned first).")
        ws = f["MDHistoWorkspace"]
        if "data" not in ws or "signal" not in ws["data"]:
            raise DataError(f"'{path}' has no /MDHistoWorkspace/data/signal. The file is truncated or not written by SaveMD.")
        d = ws["data"]
        sig = d["signal"]
        axes = _str(sig.attrs.get("axes", ""))
        ids_rev = [a for a in axes.split(":") if a]
        if not ids_rev:
            ids_rev = [k for k in d if k not in ("signal", "errors_squared", "num_events", "mask")][::-1]
        ids = ids_rev[::-1]
        if len(ids) != sig.ndim:
            raise DataError(f"'{path}': signal has {sig.ndim} dimensions but the axes attribute names {len(ids)} ({axes!r}). The file is corrupt.")
        names, units, frames, edges = [], [], [], []
        for i in ids:
            if i not in d:
                raise DataError(f"'{path}': dimension {i!r} named in signal's axes has no dataset. The file is corrupt.")
            ds = d[i]
            edges.append(np.asarray(ds[()], dtype=float))
            names.append(_str(ds.attrs.get("long_name", i)))
            units.append(_str(ds.attrs.get("units", "")))
            frames.append(_str(ds.attrs.get("frame", "")))
        order = tuple(range(sig.ndim))[::-1]
        out = {
            "names": names,
            "ids": ids,
            "units": units,
            "frames": frames,
            "edges": edges,
            "signal": np.transpose(np.asarray(sig[()], dtype=float), order),
        }
        for key in ("errors_squared", "num_events"):
            out[key] = np.transpose(np.asarray(d[key][()], dtype=float), order) if key in d else None
        out["mask"] = np.transpose(np.asarray(d["mask"][()]) != 0, order) if "mask" in d else None
        out["coordinate_system"] = int(np.asarray(ws["coordinate_system"][()]).ravel()[0]) if "coordinate_system" in ws else -1
    shape = out["signal"].shape
    for k, (e, n) in enumerate(zip(out["edges"], shape)):
        if len(e) != n + 1:
            raise DataError(f"'{path}': dimension {out['names'][k]!r} has {len(e)} boundaries for {n} bins; expected {n + 1}. The file is corrupt.")
    return out


def mdhisto_axes(md: dict) -> list[int]:
    """Positions of H, K, L, E among an MDHisto's dimensions, or :class:`DataError` if not (H,K,L,E)."""
    if len(md["names"]) != 4:
        raise DataError(f"the workspace has {len(md['names'])} dimensions ({', '.join(md['names'])}); expected 4: [H,0,0], [0,K,0], [0,0,L], DeltaE. Bin it in 4D with these projections.")
    pos = []
    for ax in AXIS_NAMES:
        hits = [i for i, (n, i_d) in enumerate(zip(md["names"], md["ids"])) if _DIM_PATTERNS[ax].match(n.replace(" ", "").upper()) or _DIM_PATTERNS[ax].match(i_d.replace(" ", "").upper())]
        if ax == "E" and not hits:
            hits = [i for i, u in enumerate(md["units"]) if u.strip().lower() in ("mev", "deltae")]
        if len(hits) != 1:
            raise DataError(
                f"cannot identify the {ax} dimension among {md['names']}; only the projections [H,0,0], [0,K,0], [0,0,L], DeltaE are supported. "
                "Rebin in Mantid (BinMD/MDNorm) with u=1,0,0 v=0,1,0 w=0,0,1."
            )
        pos.append(hits[0])
    return pos


# ------------------------------------------------------------------------- NXSPE
def read_nxspe(path: str | Path) -> dict:
    """Read one NXSPE file (any entry name).

    Returns
    -------
    dict with ``data``, ``error`` (n_det, n_E) float64 (NaN kept: masked detectors),
    ``energy_edges`` (n_E + 1,) meV, ``polar``, ``azimuthal`` (n_det,) degrees,
    ``polar_width``, ``azimuthal_width`` (degrees, or None), ``distance`` (m, or None),
    ``ei`` (meV), ``psi`` (degrees), ``ki_over_kf_scaling`` (bool), ``entry`` (str).
    """
    with _open_h5(path, "NXSPE") as f:
        entry = None
        for name, g in f.items():
            if isinstance(g, h5py.Group) and "data" in g and "NXSPE_info" in g:
                entry = name
                break
        if entry is None:
            raise DataError(f"'{path}' has no NXSPE entry (a group with data/ and NXSPE_info/; top level: {', '.join(f.keys())}). Pass an NXSPE file.")
        g = f[entry]
        d, info = g["data"], g["NXSPE_info"]

        def need(grp, key):
            if key not in grp:
                raise DataError(f"'{path}': NXSPE entry {entry!r} lacks {grp.name}/{key}. The file is truncated or not NXSPE.")
            return np.asarray(grp[key][()], dtype=float)

        def opt(grp, key):
            return np.asarray(grp[key][()], dtype=float).ravel() if key in grp else None

        out = {
            "entry": entry,
            "data": need(d, "data"),
            "error": need(d, "error"),
            "energy_edges": need(d, "energy").ravel(),
            "polar": need(d, "polar").ravel(),
            "azimuthal": need(d, "azimuthal").ravel(),
            "polar_width": opt(d, "polar_width"),
            "azimuthal_width": opt(d, "azimuthal_width"),
            "distance": opt(d, "distance"),
            "ei": float(need(info, "fixed_energy").ravel()[0]),
            "psi": float(need(info, "psi").ravel()[0]) if "psi" in info else 0.0,
            "ki_over_kf_scaling": bool(np.asarray(info["ki_over_kf_scaling"][()]).ravel()[0]) if "ki_over_kf_scaling" in info else True,
        }
    n_det = len(out["polar"])
    data, err, e = out["data"], out["error"], out["energy_edges"]
    if data.ndim != 2 or data.shape != err.shape or data.shape[0] != n_det or len(out["azimuthal"]) != n_det:
        raise DataError(f"'{path}': data {data.shape}, error {err.shape}, {n_det} polar and {len(out['azimuthal'])} azimuthal angles do not match; expected (n_det, n_E) twice and n_det angles.")
    if len(e) == data.shape[1]:
        raise DataError(f"'{path}': energy has {len(e)} values for {data.shape[1]} bins; NXSPE energy must hold the {data.shape[1] + 1} bin edges.")
    if len(e) != data.shape[1] + 1:
        raise DataError(f"'{path}': energy has {len(e)} edges for {data.shape[1]} energy bins; expected {data.shape[1] + 1}.")
    if not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
        raise DataError(f"'{path}': energy edges are not finite and increasing. The file is corrupt.")
    if not (np.all(np.isfinite(out["polar"])) and np.all(np.isfinite(out["azimuthal"]))):
        raise DataError(f"'{path}': detector angles contain NaN. The file is corrupt.")
    bad = np.isfinite(data) & ~np.isfinite(err)
    if np.any(bad):
        raise DataError(f"'{path}': error is NaN for {int(bad.sum())} pixels with finite data. The file is corrupt.")
    if not np.isfinite(out["ei"]) or out["ei"] <= 0:
        raise DataError(f"'{path}': fixed_energy (Ei) is {out['ei']}; expected a positive energy in meV.")
    return out


def lattice_b_matrix(a: float, b: float, c: float, alpha: float = 90.0, beta: float = 90.0, gamma: float = 90.0) -> np.ndarray:
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
        raise DataError(f"lattice a={a}, b={b}, c={c}, angles {alpha}/{beta}/{gamma} is degenerate. Pass positive lengths (Å) and angles in degrees.")
    recip = np.linalg.inv(A).T  # rows a*, b*, c* (no 2π)
    # Busing-Levy: express in a frame with a* along x, b* in the xy plane
    _, r = np.linalg.qr(recip.T)
    s = np.sign(np.diag(r))
    return r * s[:, None]


def ub_from_vectors(b_matrix: np.ndarray, u: Sequence[float], v: Sequence[float]) -> np.ndarray:
    """UB (1/Å, without 2π) such that at ψ = 0, ``u`` (r.l.u.) points along the beam (+z) and ``v`` lies in the horizontal plane towards +x.

    Lab frame: z along the incident beam, y vertically up, x = y × z.
    """
    B = np.asarray(b_matrix, dtype=float)
    bu, bv = B @ np.asarray(u, float), B @ np.asarray(v, float)
    if np.linalg.norm(np.cross(bu, bv)) < 1e-9 * np.linalg.norm(bu) * np.linalg.norm(bv):
        raise DataError(f"u={list(u)} and v={list(v)} are parallel. Pass two non-parallel scattering-plane vectors.")
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
        raise DataError(f"UB has shape {ub.shape} or is singular. Pass a (3, 3) UB matrix (1/Å, Mantid convention) or lattice + u, v.")
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


# ------------------------------------------------------------------ plain arrays
def read_array4d(path: str | Path, group: str | None = None) -> dict:
    """Read a plain 4D array with its axes from HDF5 or NPZ (keys in the module docstring).

    Returns
    -------
    dict with ``edges`` (4 arrays), ``signal``, ``error`` (or None), ``errors_squared`` (or None),
    ``counts`` (or None), ``norm`` (or None), ``reciprocal_cell`` (or None).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"4D array file '{path}' does not exist. Check the path.")
    keys = ("signal", "counts", "error", "errors_squared", "norm", "reciprocal_cell", *AXIS_NAMES)
    raw: dict[str, np.ndarray | None] = {}
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: np.asarray(z[k]) for k in keys if k in z.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"'{path}' is not a readable NPZ file ({exc}). Pass an .npz or HDF5 file.") from None
    else:
        with _open_h5(path, "4D array") as f:
            g = f[group] if group else f
            raw = {k: np.asarray(g[k][()]) for k in keys if k in g}
    if "signal" not in raw and "counts" not in raw:
        raise DataError(f"'{path}' has neither 'signal' nor 'counts' (keys: {', '.join(raw) or 'none'}). Store the 4D array under 'signal' (with 'error') or 'counts' (with 'norm').")
    main = raw.get("signal", raw.get("counts"))
    assert main is not None
    if main.ndim != 4:
        raise DataError(f"'{path}': the 4D array has shape {main.shape}; expected (n_H, n_K, n_L, n_E).")
    missing = [a for a in AXIS_NAMES if a not in raw]
    if missing:
        raise DataError(f"'{path}' lacks the axis arrays {missing}. Store H, K, L (r.l.u.) and E (meV) as bin edges or centres.")
    edges = check_edges([edges_from_axis(raw[a], n, a, str(path)) for a, n in zip(AXIS_NAMES, main.shape)], str(path))
    return {
        "edges": list(edges),
        "signal": raw.get("signal"),
        "counts": raw.get("counts"),
        "error": raw.get("error"),
        "errors_squared": raw.get("errors_squared"),
        "norm": raw.get("norm"),
        "reciprocal_cell": raw.get("reciprocal_cell"),
    }


def write_array4d(path: str | Path, edges: Sequence[np.ndarray], signal: np.ndarray, error: np.ndarray, norm: np.ndarray | None = None) -> None:
    """Write the plain 4D-array layout (NPZ when ``path`` ends in .npz, else HDF5 with unit attributes)."""
    path = Path(path)
    arrays = {"signal": signal, "error": error, **dict(zip(AXIS_NAMES, edges))}
    if norm is not None:
        arrays["norm"] = norm
    if path.suffix.lower() == ".npz":
        np.savez_compressed(path, **arrays)
        return
    from fcinv.experiment import _h5

    with _h5.atomic_h5(path) as f:
        for k, v in arrays.items():
            _h5.put(f, k, v, "meV" if k == "E" else "r.l.u." if k in ("H", "K", "L") else "arb. units", compress=True)


# ------------------------------------------------------------------------ pathSQE
def read_pathsqe_folded(path: str | Path, *, transpose: bool = False) -> dict:
    """Read pathSQE's folded output: ``.npy`` (one stacked image) or ``.npz`` (one image per segment).

    Returns
    -------
    dict with ``intensity`` (n_q, n_E) float64 (NaN = not measured) and ``segment_bins``
    (list of q-bins per segment for .npz input, else None).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pathSQE file '{path}' does not exist. Check the path (pathSQE writes folding_progess/folded_path_plot_<n>.npy).")
    seg_bins = None
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = sorted(z.files, key=lambda s: int(s.split("_")[-1]) if s.split("_")[-1].isdigit() else s)
                segs = [np.asarray(z[n], dtype=float) for n in names]
            if any(s.ndim != 2 for s in segs) or len({s.shape[1] for s in segs}) != 1:
                raise DataError(f"pathSQE archive '{path}' holds arrays of shapes {[s.shape for s in segs]}; expected 2D (n_q_segment, n_E) images with one n_E.")
            seg_bins = [s.shape[0] for s in segs]
            img = np.vstack(segs)
        else:
            img = np.asarray(np.load(path, allow_pickle=False), dtype=float)
    except (OSError, ValueError) as exc:
        raise DataError(f"'{path}' is not a readable NumPy file ({str(exc).splitlines()[0]}). Pass pathSQE's folded_path_plot_<n>.npy.") from None
    img = np.squeeze(img)
    if img.ndim != 2:
        raise DataError(f"pathSQE file '{path}' holds an array of shape {img.shape}; expected a 2D (n_q, n_E) image.")
    if transpose:
        img = img.T
    if np.any(np.isinf(img)):
        raise DataError(f"pathSQE file '{path}' has {int(np.isinf(img).sum())} infinite values (data/0). Mask them as NaN.")
    return {"intensity": img, "segment_bins": seg_bins}
