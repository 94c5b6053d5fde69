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

from fcinv.errors import DataError, describe_exception
from fcinv.experiment.geometry import (  # noqa: F401  (re-exported: the geometry used to live here)
    AXIS_NAMES,
    check_edges,
    edges_from_axis,
    lattice_b_matrix,
    nxspe_to_points,
    rotation_y,
    ub_from_vectors,
)
from fcinv.io.atomic import atomic_path

log = logging.getLogger(__name__)


def _open_h5(path: str | Path, what: str) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file '{path}' does not exist. Check the path.")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(
            f"'{path}' is not a readable HDF5/NeXus file ({describe_exception(exc)}). Pass a {what} file."
        ) from None


def _numpy_reason(exc: BaseException) -> str:
    """A short cause for a failed ``np.load`` (numpy's text suggests unpickling; fcinv never unpickles)."""
    text = str(exc)
    if "pickle" in text:
        return "not a .npy/.npz array: no NumPy header, or object data that fcinv does not unpickle"
    if isinstance(exc, EOFError):
        return "the file is empty or ends early"
    return describe_exception(exc)


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
            raise DataError(
                f"'{path}' has no /MDHistoWorkspace group (top level: {top}). Save the histogram workspace "
                "with Mantid's SaveMD (an MDEventWorkspace must be binned first)."
            )
        ws = f["MDHistoWorkspace"]
        if "data" not in ws or "signal" not in ws["data"]:
            raise DataError(
                f"'{path}' has no /MDHistoWorkspace/data/signal. The file is truncated or not written by "
                "SaveMD."
            )
        d = ws["data"]
        sig = d["signal"]
        axes = _str(sig.attrs.get("axes", ""))
        ids_rev = [a for a in axes.split(":") if a]
        if not ids_rev:
            ids_rev = [k for k in d if k not in ("signal", "errors_squared", "num_events", "mask")][::-1]
        ids = ids_rev[::-1]
        if len(ids) != sig.ndim:
            raise DataError(
                f"'{path}': signal has {sig.ndim} dimensions but the axes attribute names {len(ids)} "
                f"({axes!r}). The file is corrupt."
            )
        names, units, frames, edges = [], [], [], []
        for i in ids:
            if i not in d:
                raise DataError(
                    f"'{path}': dimension {i!r} named in signal's axes has no dataset. The file is corrupt."
                )
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
        out["coordinate_system"] = (
            int(np.asarray(ws["coordinate_system"][()]).ravel()[0]) if "coordinate_system" in ws else -1
        )
    shape = out["signal"].shape
    for k, (e, n) in enumerate(zip(out["edges"], shape)):
        if len(e) != n + 1:
            raise DataError(
                f"'{path}': dimension {out['names'][k]!r} has {len(e)} boundaries for {n} bins; expected "
                f"{n + 1}. The file is corrupt."
            )
    return out


def mdhisto_axes(md: dict) -> list[int]:
    """Positions of H, K, L, E among an MDHisto's dimensions, or :class:`DataError` if not (H,K,L,E)."""
    if len(md["names"]) != 4:
        raise DataError(
            f"the workspace has {len(md['names'])} dimensions ({', '.join(md['names'])}); expected 4: "
            "[H,0,0], [0,K,0], [0,0,L], DeltaE. Bin it in 4D with these projections."
        )
    pos = []
    for ax in AXIS_NAMES:
        hits = [
            i
            for i, (n, i_d) in enumerate(zip(md["names"], md["ids"]))
            if _DIM_PATTERNS[ax].match(n.replace(" ", "").upper())
            or _DIM_PATTERNS[ax].match(i_d.replace(" ", "").upper())
        ]
        if ax == "E" and not hits:
            hits = [i for i, u in enumerate(md["units"]) if u.strip().lower() in ("mev", "deltae")]
        if len(hits) != 1:
            raise DataError(
                f"cannot identify the {ax} dimension among {md['names']}; only the projections [H,0,0], "
                "[0,K,0], [0,0,L], DeltaE are supported. "
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
            raise DataError(
                f"'{path}' has no NXSPE entry (a group with data/ and NXSPE_info/; top level: "
                f"{', '.join(f.keys())}). Pass an NXSPE file."
            )
        g = f[entry]
        d, info = g["data"], g["NXSPE_info"]

        def need(grp, key):
            if key not in grp:
                raise DataError(
                    f"'{path}': NXSPE entry {entry!r} lacks {grp.name}/{key}. The file is truncated or not "
                    "NXSPE."
                )
            return numbers(grp, key)

        def numbers(grp, key):
            try:
                return np.asarray(grp[key][()], dtype=float)
            except (TypeError, ValueError):
                kind = "text" if grp[key].dtype.kind in "SUO" else str(grp[key].dtype)
                raise DataError(
                    f"'{path}': {grp.name}/{key} holds {kind} values, not numbers. The file is corrupt or "
                    "not NXSPE."
                ) from None

        def scalar(grp, key):
            v = need(grp, key).ravel()
            if v.size == 0:
                raise DataError(f"'{path}': {grp.name}/{key} is empty. The file is truncated or not NXSPE.")
            return float(v[0])

        def opt(grp, key):
            return numbers(grp, key).ravel() if key in grp else None

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
            "ei": scalar(info, "fixed_energy"),
            "psi": scalar(info, "psi") if "psi" in info else 0.0,
            "ki_over_kf_scaling": bool(np.asarray(info["ki_over_kf_scaling"][()]).ravel()[0])
            if "ki_over_kf_scaling" in info
            else True,
        }
    n_det = len(out["polar"])
    data, err, e = out["data"], out["error"], out["energy_edges"]
    if data.ndim != 2 or data.shape != err.shape or data.shape[0] != n_det or len(out["azimuthal"]) != n_det:
        raise DataError(
            f"'{path}': data {data.shape}, error {err.shape}, {n_det} polar and {len(out['azimuthal'])} "
            "azimuthal angles do not match; expected (n_det, n_E) twice and n_det angles."
        )
    if len(e) == data.shape[1]:
        raise DataError(
            f"'{path}': energy has {len(e)} values for {data.shape[1]} bins; NXSPE energy must hold the "
            f"{data.shape[1] + 1} bin edges."
        )
    if len(e) != data.shape[1] + 1:
        raise DataError(
            f"'{path}': energy has {len(e)} edges for {data.shape[1]} energy bins; expected "
            f"{data.shape[1] + 1}."
        )
    if not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
        raise DataError(f"'{path}': energy edges are not finite and increasing. The file is corrupt.")
    if not (np.all(np.isfinite(out["polar"])) and np.all(np.isfinite(out["azimuthal"]))):
        raise DataError(f"'{path}': detector angles contain NaN. The file is corrupt.")
    bad = np.isfinite(data) & ~np.isfinite(err)
    if np.any(bad):
        raise DataError(
            f"'{path}': error is NaN for {int(bad.sum())} pixels with finite data. The file is corrupt."
        )
    if not np.isfinite(out["ei"]) or out["ei"] <= 0:
        raise DataError(f"'{path}': fixed_energy (Ei) is {out['ei']}; expected a positive energy in meV.")
    return out


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
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(
                f"'{path}' is not a readable NPZ file ({_numpy_reason(exc)}). Pass an .npz or HDF5 file."
            ) from None
    else:
        with _open_h5(path, "4D array") as f:
            g = f[group] if group else f
            raw = {k: np.asarray(g[k][()]) for k in keys if k in g}
    if "signal" not in raw and "counts" not in raw:
        raise DataError(
            f"'{path}' has neither 'signal' nor 'counts' (keys: {', '.join(raw) or 'none'}). Store the 4D "
            "array under 'signal' (with 'error') or 'counts' (with 'norm')."
        )
    main = raw.get("signal", raw.get("counts"))
    assert main is not None
    if main.ndim != 4:
        raise DataError(f"'{path}': the 4D array has shape {main.shape}; expected (n_H, n_K, n_L, n_E).")
    missing = [a for a in AXIS_NAMES if a not in raw]
    if missing:
        raise DataError(
            f"'{path}' lacks the axis arrays {missing}. Store H, K, L (r.l.u.) and E (meV) as bin edges or "
            "centres."
        )
    edges = check_edges(
        [edges_from_axis(raw[a], n, a, str(path)) for a, n in zip(AXIS_NAMES, main.shape)], str(path)
    )
    return {
        "edges": list(edges),
        "signal": raw.get("signal"),
        "counts": raw.get("counts"),
        "error": raw.get("error"),
        "errors_squared": raw.get("errors_squared"),
        "norm": raw.get("norm"),
        "reciprocal_cell": raw.get("reciprocal_cell"),
    }


def write_array4d(
    path: str | Path,
    edges: Sequence[np.ndarray],
    signal: np.ndarray,
    error: np.ndarray,
    norm: np.ndarray | None = None,
) -> None:
    """Write the plain 4D-array layout (NPZ when ``path`` ends in .npz, else HDF5 with unit attributes)."""
    path = Path(path)
    arrays = {"signal": signal, "error": error, **dict(zip(AXIS_NAMES, edges))}
    if norm is not None:
        arrays["norm"] = norm
    from fcinv.experiment import _h5

    if path.suffix.lower() == ".npz":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        return
    with _h5.atomic_h5(path) as f:
        for k, v in arrays.items():
            _h5.put(
                f,
                k,
                v,
                "meV" if k == "E" else "r.l.u." if k in ("H", "K", "L") else "arb. units",
                compress=True,
            )


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
        raise DataError(
            f"pathSQE file '{path}' does not exist. Check the path (pathSQE writes "
            "folding_progess/folded_path_plot_<n>.npy)."
        )
    seg_bins = None
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = sorted(
                    z.files, key=lambda s: int(s.split("_")[-1]) if s.split("_")[-1].isdigit() else s
                )
                segs = [np.asarray(z[n], dtype=float) for n in names]
            if any(s.ndim != 2 for s in segs) or len({s.shape[1] for s in segs}) != 1:
                raise DataError(
                    f"pathSQE archive '{path}' holds arrays of shapes {[s.shape for s in segs]}; expected "
                    "2D (n_q_segment, n_E) images with one n_E."
                )
            seg_bins = [s.shape[0] for s in segs]
            img = np.vstack(segs)
        else:
            img = np.asarray(np.load(path, allow_pickle=False), dtype=float)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(
            f"'{path}' is not a NumPy array file ({_numpy_reason(exc)}). Pass pathSQE's "
            "folded_path_plot_<n>.npy, or name the file's format with --format."
        ) from None
    img = np.squeeze(img)
    if img.ndim != 2:
        raise DataError(
            f"pathSQE file '{path}' holds an array of shape {img.shape}; expected a 2D (n_q, n_E) image."
        )
    if transpose:
        img = img.T
    if np.any(np.isinf(img)):
        raise DataError(
            f"pathSQE file '{path}' has {int(np.isinf(img).sum())} infinite values (data/0). Mask them as "
            "NaN."
        )
    return {"intensity": img, "segment_bins": seg_bins}
