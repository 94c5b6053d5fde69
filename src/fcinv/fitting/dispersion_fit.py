"""Fit θ to measured phonon energies at arbitrary q (the triple-axis way).

Input: a table of points (CSV columns ``h, k, l`` in r.l.u. of the conventional
cell, ``energy_meV`` and ``sigma_meV`` — or ``energy_THz`` and ``sigma_THz`` — and
an optional ``branch``). The fit minimises

    Σ_i ((E_{b_i}(q_i; θ) − E_i) / σ_i)²  +  Σ_p ((θ_p − μ_p) / σ_p)²

(the second sum: the Gaussian prior of :mod:`fcinv.fitting.priors`, by default the training
domain, so directions the points leave open are held instead of drifting) by trust-region
least squares with the analytic Jacobian ∂E/∂θ_p = C²/(2E) · eᴴ M_p e.

Mode assignment, per point:

- ``branch`` an integer: that mode (0 = lowest at that q, counting all 3 × n_atoms branches
  in ascending energy, imaginary modes first);
- ``branch`` a polarisation label (``L``, ``T``, ``T1``, ``T2``, ``LA``, ``TO`` ...): the mode of
  that polarisation, from the eigenvectors at the current θ (:mod:`fcinv.fitting.labels`
  documents the convention: for [ζζ0], T1 along [1-10] and T2 along [001]);
- no label: the mode *nearest in energy at the current θ* (each point independently; near
  crossings this can swap branches silently, so label such points).

Assignments are redone at every evaluation of the residuals.

Outliers (on by default): a first fit with the soft-L1 loss (f_scale = 3, bounded influence
of any one point) is followed by flagging every point whose residual exceeds
``outlier_sigma`` (default 5) × max(1, 1.4826 · median |r|) and a plain least-squares fit of
the rest; flagged points are reported, not silently dropped. When more than
``max_outlier_fraction`` (10 %) would be flagged the misfit is systematic: nothing is left out
and a warning says so. ``outliers=False`` skips both.

A result is trusted (``success=True``) only when the final fit converged and no mode on a
full-zone mesh (and at the points) is imaginary; directions held by the prior are named.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcinv.errors import DataError
from fcinv.fitting._base import FitError, FitResult, mode_gradients, resolve_free
from fcinv.fitting.labels import assign_labelled, check_labels, parse_label, polarisation_axes
from fcinv.fitting.priors import (
    STABILITY_MESH,
    STABILITY_TOL_MEV,
    Prior,
    build_prior,
    mesh_lowest_mode,
    posterior_covariance,
    undetermined_directions,
)
from fcinv.units import EV_A2_AMU_TO_MEV, THZ_TO_MEV

log = logging.getLogger(__name__)

_E_FLOOR_MEV = 1e-3


# ------------------------------------------------------------------ the points
def _split_branches(raw, n: int, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer indices (−1 where none) and polarisation labels ("" where none) from a mixed column."""
    if raw is None:
        return np.full(n, -1, dtype=np.int64), ("",) * n
    arr = np.asarray(raw, dtype=object).ravel()
    if arr.shape != (n,):
        raise DataError(
            f"dispersion points have {n} energies but {arr.size} branch entries{_src(source)}. Pass one per point."
        )
    idx = np.full(n, -1, dtype=np.int64)
    lab = [""] * n
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, str) and v.strip() in ("", "-", "-1")):
            continue
        if isinstance(v, str):
            p = parse_label(v)
            if p is not None:
                lab[i] = p
                continue
            try:
                v = int(v.strip())
            except ValueError:
                raise DataError(
                    f"branch '{v}' of point {i}{_src(source)} is neither an index (0 = lowest mode) nor a label L, T, T1, T2, LA, TA, TA1, TA2, LO, TO, TO1, TO2. Fix the branch column."
                ) from None
        f = float(v)
        if f != round(f) or f < -1:
            raise DataError(
                f"branch {v!r} of point {i}{_src(source)}: indices must be integers >= 0 (or a label L/T/T1/T2, or empty for nearest-energy matching)."
            )
        idx[i] = int(f)
    return idx, tuple(lab)


@dataclass(frozen=True, eq=False)
class DispersionPoints:
    """Measured phonon energies.

    Parameters
    ----------
    q_rlu
        Shape (n, 3) float64, r.l.u. of the conventional cell.
    energy
        Shape (n,) float64, meV.
    sigma
        Shape (n,) float64, meV: standard errors (> 0).
    branch
        Shape (n,): per point an integer index (0 = lowest), a polarisation label (``"L"``,
        ``"T1"``, ``"TA"`` ...; see :mod:`fcinv.fitting.labels`), or −1 / ``""`` / None to
        assign by nearest energy; None for all unassigned. Stored as ``branch`` (int64, −1
        where none) and ``label`` (str, "" where none).
    source
        Where the points came from (a file name).
    label
        Polarisation labels (filled from ``branch``; pass only to give both separately).
    """

    q_rlu: np.ndarray
    energy: np.ndarray
    sigma: np.ndarray
    branch: np.ndarray | None
    source: str = ""
    label: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        q = np.atleast_2d(np.asarray(self.q_rlu, dtype=float))
        e = np.asarray(self.energy, dtype=float).ravel()
        s = np.asarray(self.sigma, dtype=float).ravel()
        n = len(e)
        if n == 0:
            raise DataError(
                f"no dispersion points{_src(self.source)}. Pass at least one (h, k, l, energy, sigma) row."
            )
        if q.shape != (n, 3) or s.shape != (n,):
            raise DataError(
                f"dispersion points have q {q.shape}, energy ({n},), sigma {s.shape}; expected (n, 3), (n,), (n,)."
            )
        b, lab = _split_branches(self.branch, n, self.source)
        if self.label is not None:
            given = tuple("" if not x else (parse_label(str(x)) or "?") for x in self.label)
            if len(given) != n or "?" in given:
                raise DataError(
                    f"labels {list(self.label)[:5]}... are not {n} polarisation labels (L, T, T1, T2, LA, TO ...){_src(self.source)}."
                )
            lab = tuple(g or l for g, l in zip(given, lab))
        both = [i for i in range(n) if lab[i] and b[i] >= 0]
        if both:
            raise DataError(
                f"point {both[0]} has both a branch index and a label{_src(self.source)}. Give one."
            )
        for name, arr in (("h/k/l", q), ("energy", e), ("sigma", s)):
            bad = ~np.isfinite(arr).reshape(n, -1).all(axis=1)
            if np.any(bad):
                raise DataError(
                    f"{name} is NaN or infinite in point {int(np.argmax(bad))}{_src(self.source)}. Remove the row or give a number."
                )
        if np.any(s <= 0):
            i = int(np.argmax(s <= 0))
            raise DataError(
                f"sigma of point {i} is {s[i]:g} meV{_src(self.source)}; standard errors must be positive. Fix the sigma column."
            )
        object.__setattr__(self, "q_rlu", q)
        object.__setattr__(self, "energy", e)
        object.__setattr__(self, "sigma", s)
        object.__setattr__(self, "branch", b)
        object.__setattr__(self, "label", lab)

    def __len__(self) -> int:
        return len(self.energy)

    @property
    def names(self) -> list[str]:
        """Per point: its label, its index as text, or ``"nearest"``."""
        return [lab or (str(int(b)) if b >= 0 else "nearest") for lab, b in zip(self.label, self.branch)]

    def subset(self, keep: np.ndarray) -> DispersionPoints:
        """The points where ``keep`` (bool (n,)) is True."""
        k = np.asarray(keep, bool)
        lab = tuple(x for x, y in zip(self.label, k) if y)
        return DispersionPoints(
            self.q_rlu[k], self.energy[k], self.sigma[k], self.branch[k], source=self.source, label=lab
        )


def _src(source: str) -> str:
    return f" of '{source}'" if source else ""


_ENERGY_COLUMNS = (("energy_mev", "sigma_mev", 1.0), ("energy_thz", "sigma_thz", THZ_TO_MEV))


def read_points(path: str | Path) -> DispersionPoints:
    """Read a dispersion-point CSV (columns in the module docstring; ``#`` starts a comment line).

    The ``branch`` column holds an integer index (0 = lowest mode), a polarisation label
    (``L``, ``T``, ``T1``, ``T2``, ``LA``, ``TA1``, ``TO`` ...) or nothing (nearest energy).

    Raises
    ------
    DataError
        A missing file or column, a non-numeric, NaN or non-positive-sigma entry, named with its line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"dispersion-point file '{path}' does not exist. Pass a CSV with columns h,k,l,energy_meV,sigma_meV[,branch]."
        )
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataError(
            f"'{path}' is empty. Pass a CSV with a header h,k,l,energy_meV,sigma_meV[,branch] and one row per point."
        )
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in ("h", "k", "l") if c not in header]
    units = next(((e, s, f) for e, s, f in _ENERGY_COLUMNS if e in header and s in header), None)
    if missing or units is None:
        need = missing + ([] if units else ["energy_meV", "sigma_meV"])
        raise DataError(
            f"'{path}' lacks the column(s) {need} (header: {','.join(header)}). The header must be h,k,l,energy_meV,sigma_meV[,branch] (or energy_THz,sigma_THz)."
        )
    ecol, scol, factor = units
    cols = {c: header.index(c) for c in ("h", "k", "l", ecol, scol)}
    bcol = header.index("branch") if "branch" in header else None
    q, e, s, b = [], [], [], []
    for lineno, row in enumerate(reader, start=2):
        if len(row) < len(header):
            raise DataError(
                f"'{path}' data row {lineno - 1} has {len(row)} fields, the header {len(header)}. Give every column on every row."
            )
        vals = {}
        for c, i in cols.items():
            txt = row[i].strip()
            try:
                v = float(txt)
            except ValueError:
                raise DataError(
                    f"'{path}' data row {lineno - 1}: {c} = '{txt}' is not a number. Fix or remove the row."
                ) from None
            if not math.isfinite(v):
                raise DataError(
                    f"'{path}' data row {lineno - 1}: {c} is {txt}. Remove the row or give a finite number."
                )
            vals[c] = v
        if vals[scol] <= 0:
            raise DataError(
                f"'{path}' data row {lineno - 1}: {scol} = {vals[scol]:g}; standard errors must be positive. Fix the sigma column."
            )
        br = row[bcol].strip() if bcol is not None else ""
        if br in ("", "-", "-1"):
            b.append("")
        elif parse_label(br) is not None:
            b.append(parse_label(br))
        else:
            try:
                bi = int(br)
            except ValueError:
                raise DataError(
                    f"'{path}' data row {lineno - 1}: branch = '{br}' is neither an index (0 = lowest mode) nor a label L, T, T1, T2, LA, TA, TA1, TA2, LO, TO, TO1, TO2. "
                    "Leave it empty for nearest-energy matching."
                ) from None
            if bi < 0:
                raise DataError(
                    f"'{path}' data row {lineno - 1}: branch = {bi}; pass an index >= 0 (0 = lowest mode), a label, or leave it empty."
                )
            b.append(str(bi))
        q.append((vals["h"], vals["k"], vals["l"]))
        e.append(vals[ecol] * factor)
        s.append(vals[scol] * factor)
    return DispersionPoints(np.array(q, float).reshape(-1, 3), np.array(e), np.array(s), b, source=str(path))


def write_points(path: str | Path, points: DispersionPoints) -> Path:
    """Write points as CSV (meV; branch: the label, the index, or empty where unassigned)."""
    path = Path(path)
    rows = ["h,k,l,energy_meV,sigma_meV,branch"]
    for q, e, s, b, lab in zip(points.q_rlu, points.energy, points.sigma, points.branch, points.label):
        rows.append(f"{q[0]:.6g},{q[1]:.6g},{q[2]:.6g},{e:.6f},{s:.6f},{lab or ('' if b < 0 else int(b))}")
    path.write_text("\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------------- the model
class _DispersionProblem:
    """Weighted residuals and Jacobian of the point fit; Cartesian D(q) so eigenvectors carry polarisation.

    D(q; θ) = D_ref(q) − Σ_free θ_ref,p B_p(q) + Σ_free θ_p B_p(q), complex Hermitian in the
    (atom, x, y, z) basis of the crystal's Cartesian frame.
    """

    def __init__(
        self, space, points: DispersionPoints, theta_ref: np.ndarray, free_idx: np.ndarray, reference
    ):
        q = points.q_rlu
        units = space.unit_pairs()
        B = np.stack([units[p].dynamical_matrices(q) for p in free_idx])  # (k, n, m, m)
        if reference is not None:
            D_ref = reference.dynamical_matrices(q)
        else:
            all_B = np.stack([u.dynamical_matrices(q) for u in units])
            D_ref = np.einsum("p,pqij->qij", theta_ref, all_B)
        self.Dc = D_ref - np.einsum("p,pqij->qij", theta_ref[free_idx], B)
        self.B = B
        self.points = points
        self.m = space.crystal.n_modes
        bad = points.branch >= self.m
        if np.any(bad):
            i = int(np.argmax(bad))
            raise FitError(
                f"point {i} has branch {points.branch[i]}, but {space.crystal.name} has {self.m} branches (0..{self.m - 1}). Fix the branch column."
            )
        check_labels(points.label, self.m, points.source)
        # polarisation axes (Cartesian) of labelled points, and groups of labelled points sharing a q
        lat = space.crystal.conventional_lattice
        q_cart = q @ np.linalg.inv(lat).T
        self.labels = np.array(points.label, dtype=object)
        self.axes = [None] * len(points)
        for i, lab in enumerate(points.label):
            if lab and np.linalg.norm(q[i]) > 1e-8:
                self.axes[i] = polarisation_axes(q_cart[i], q[i])
        lab_idx = np.nonzero([bool(x) for x in points.label])[0]
        keys: dict[tuple, list[int]] = {}
        for i in lab_idx:
            keys.setdefault(tuple(np.round(q[i], 6)), []).append(int(i))
        self.groups = [np.array(v) for v in keys.values()]
        self.n_eval = 0
        self._key: bytes | None = None
        self.active = np.ones(len(points), bool)

    def _eval(self, theta: np.ndarray):
        key = theta.tobytes()
        if key != self._key:
            D = self.Dc + np.einsum("p,pqij->qij", theta, self.B)
            w2, V = np.linalg.eigh(D)
            C = EV_A2_AMU_TO_MEV
            E = np.sign(w2) * np.sqrt(np.abs(w2)) * C
            g = mode_gradients(self.B, V)
            dE = C * C / (2.0 * np.maximum(np.abs(E), _E_FLOOR_MEV))[..., None] * g
            self._key, self.E, self.dE, self.V = key, E, dE, V
            self._branch = self._assign(E, V)
            self.n_eval += 1
        return self.E, self.dE

    def _assign(self, E: np.ndarray, V: np.ndarray) -> np.ndarray:
        pts = self.points
        nearest = np.argmin(np.abs(E - pts.energy[:, None]), axis=1)
        out = np.where(pts.branch >= 0, pts.branch, nearest)
        if self.groups:
            lab = assign_labelled(self.labels, self.groups, E, V, pts.energy, self.axes)
            out = np.where(lab >= 0, lab, out)
        return out

    def assign(self, theta: np.ndarray) -> np.ndarray:
        """Mode of each point at ``theta``: its index, its polarisation label's mode, else the nearest in energy."""
        self._eval(theta)
        return self._branch

    def data_residual(self, theta: np.ndarray) -> np.ndarray:
        E, _ = self._eval(theta)
        b = self._branch
        return ((E[np.arange(len(b)), b] - self.points.energy) / self.points.sigma)[self.active]

    def data_jacobian(self, theta: np.ndarray) -> np.ndarray:
        _, dE = self._eval(theta)
        b = self._branch
        return (dE[np.arange(len(b)), b] / self.points.sigma[:, None])[self.active]


def scaled_start(space, points: DispersionPoints, theta_full: np.ndarray, *, n_iter: int = 8) -> np.ndarray:
    """Scale a full θ (no reference FC set) by one factor so its energies match the points on average.

    Every energy scales as √α when θ scales by α, so α follows from a weighted
    linear fit of measured on model energies (labels and indices honoured, others nearest-matched,
    re-matched a few times).

    Returns
    -------
    numpy.ndarray
        Shape (n_params,), eV/Å²: α · ``theta_full``.
    """
    theta_full = space.check_theta(theta_full, what="the start θ")
    prob = _DispersionProblem(space, points, theta_full, np.arange(space.n_params), None)
    E, _ = prob._eval(theta_full)
    e_max = float(np.max(E))
    if not e_max > 0:
        raise FitError(
            "the start θ has no positive phonon energy at the points. Pass a stable start (e.g. --springs 1NN=3 2NN=1)."
        )
    c = float(points.energy.max()) / e_max
    w = 1.0 / points.sigma**2
    for _ in range(n_iter):
        b = prob._assign(c * E, prob.V)
        em = E[np.arange(len(b)), b]
        denom = float(np.sum(w * em * em))
        if denom <= 0:
            break
        c = float(np.sum(w * em * points.energy)) / denom
    if not c > 0:
        raise FitError(
            "could not scale the start θ to the points (non-positive scale). Pass a better start θ."
        )
    return theta_full * c * c


def _start(space, theta_ref, names, free_idx, theta_start) -> np.ndarray:
    k = len(names)
    if theta_start is None:
        x0 = theta_ref[free_idx].copy()
    elif isinstance(theta_start, dict):
        full = theta_ref.copy()
        for n, v in theta_start.items():
            full[space.index([n])[0]] = float(v)
        x0 = full[free_idx]
    else:
        t = np.asarray(theta_start, dtype=float).ravel()
        if t.shape == (k,):
            x0 = t
        elif t.shape == (space.n_params,):
            x0 = t[free_idx]
        else:
            raise FitError(
                f"theta_start has {t.size} values; pass {k} (the free parameters {', '.join(names)}) or all {space.n_params}, or a dict by name."
            )
    if not np.all(np.isfinite(x0)):
        raise FitError("theta_start contains NaN or inf. Pass finite force constants (eV/Å²).")
    return x0


def fit_dispersion(
    space,
    points: DispersionPoints,
    theta_ref,
    *,
    free: str | int | Sequence[str] | None = None,
    ranking: Sequence[str] | None = None,
    theta_start=None,
    reference=None,
    prior: Prior | str | None = "domain",
    material_reference=None,
    outliers: bool = True,
    outlier_sigma: float = 5.0,
    max_outlier_fraction: float = 0.1,
    stability_mesh: int = STABILITY_MESH,
    max_nfev: int = 200,
    ftol: float = 1e-12,
    xtol: float = 1e-12,
    absolute_sigma: bool = False,
    strict: bool = False,
) -> FitResult:
    """Fit θ to measured phonon energies (module docstring for the method).

    Parameters
    ----------
    space
        The :class:`~fcinv.fcspace.FCSpace` of the crystal (any shell count).
    points
        The measured energies (see :func:`read_points`).
    theta_ref
        Shape (n_params,), eV/Å²: values of the parameters that are not fitted (and the
        projection of ``reference`` onto ``space`` when one is given).
    free
        Names, shells, ``"all"`` (default: every parameter within the cutoff) or ``"top:K"``
        (with ``ranking``); see :func:`~fcinv.fitting.resolve_free`.
    ranking
        Parameter names by decreasing sensitivity, for ``"top:K"``.
    theta_start
        Shape (k,) for the free names, a dict by name, or a full (n_params,) vector;
        default: their ``theta_ref`` values.
    reference
        A full reference FC set (PairFC) for D_ref (beyond-cutoff terms kept fixed).
    prior
        ``"domain"`` (default: the training domain of ``material_reference`` where it covers a
        name, else the weak prior), ``"weak"``, a :class:`~fcinv.fitting.priors.Prior`, a JSON
        path, or ``None``/``"none"`` (no prior: undetermined directions then get σ = inf and may
        drift); see :func:`fcinv.fitting.priors.build_prior`.
    material_reference
        The embedded :class:`~fcinv.reference.MaterialReference` whose training domain is the
        default prior (None: the weak prior).
    outliers
        Robust first stage and flagging of outlying points (module docstring); False: one plain fit.
    outlier_sigma
        Flagging threshold in units of max(1, the robust residual scale).
    max_outlier_fraction
        When more than this fraction of the points would be flagged the misfit is systematic:
        nothing is left out and a warning says so.
    stability_mesh
        N of the Γ-centred N³ mesh of the stability check.
    max_nfev
        Residual evaluations per stage before the fit stops as not converged.
    absolute_sigma
        Use the given σ as absolute (s² = 1) in the covariance instead of s² = χ²/dof.
    strict
        Raise :class:`FitError` when the result is not trusted (unconverged or unstable).

    Returns
    -------
    FitResult
        θ, σ (Laplace: data and prior), χ² of the data; ``success`` False when the fit did not
        converge or the result has imaginary modes. ``extra`` holds ``energy_model_meV`` and
        ``branch`` per point, ``branch_label``, ``residual_meV``, ``rms_residual_meV``,
        ``rms_residual_THz``, ``theta_full``, ``n_points``, ``n_labelled``, ``outliers``
        (flagged points), ``undetermined`` (directions held by the prior), ``prior``,
        ``prior_chi2``, ``lowest_mode_meV`` (mesh and points), ``stable``, ``warnings``.
    """
    from scipy.optimize import least_squares

    t_wall = time.perf_counter()
    theta_ref = space.check_theta(theta_ref, what="theta_ref")
    names = resolve_free(space, free, ranking=ranking, default=space.names)
    free_idx = space.index(names)
    k = len(names)
    if len(points) <= k and prior is None:
        raise FitError(
            f"{len(points)} points cannot determine {k} parameters without a prior. Measure more points, free fewer parameters (e.g. --free 1NN,2NN) or use a prior."
        )
    if len(points) < 2:
        raise FitError(
            f"{len(points)} point cannot support a fit with a residual check. Measure more points."
        )
    x0 = _start(space, theta_ref, names, free_idx, theta_start)
    pri = build_prior(names, x0, spec=prior, ref=material_reference)
    prob = _DispersionProblem(space, points, theta_ref, free_idx, reference)

    def res_all(x):
        r = prob.data_residual(x)
        return r if pri is None else np.concatenate([r, pri.residual(x)])

    def jac_all(x):
        J = prob.data_jacobian(x)
        return J if pri is None else np.vstack([J, np.diag(1.0 / pri.sigma)])

    warnings: list[str] = []
    flagged: list[dict] = []
    n_total = 0
    with np.errstate(over="ignore", invalid="ignore"):
        x = x0
        if outliers:
            rob = least_squares(
                res_all,
                x,
                jac=jac_all,
                method="trf",
                loss="soft_l1",
                f_scale=3.0,
                x_scale="jac",
                ftol=1e-10,
                xtol=1e-10,
                gtol=1e-10,
                max_nfev=max_nfev,
            )
            n_total += rob.nfev
            if np.all(np.isfinite(rob.x)):
                x = rob.x
            r = prob.data_residual(x)
            scale = max(1.0, 1.4826 * float(np.median(np.abs(r))))
            bad = np.abs(r) > outlier_sigma * scale
            if np.mean(bad) > max_outlier_fraction:
                warnings.append(
                    f"{int(bad.sum())} points ({100 * np.mean(bad):.0f} %) lie beyond {outlier_sigma:g}× the robust scale: a systematic misfit "
                    "(wrong labels, too few shells?), not outliers; none left out"
                )
            elif np.any(bad) and int((~bad).sum()) >= 2:
                prob.active = ~bad
                for i in np.nonzero(bad)[0]:
                    flagged.append(
                        {
                            "point": int(i),
                            "q_rlu": points.q_rlu[i].tolist(),
                            "energy_meV": float(points.energy[i]),
                            "sigma_meV": float(points.sigma[i]),
                            "branch": points.names[i],
                            "residual_sigma_robust_fit": float(r[i]),
                        }
                    )
        res = least_squares(
            res_all,
            x,
            jac=jac_all,
            method="trf",
            x_scale="jac",
            ftol=ftol,
            xtol=xtol,
            gtol=ftol,
            max_nfev=max_nfev,
        )
        n_total += res.nfev
    theta = res.x
    r_data = prob.data_residual(theta)
    J_data = prob.data_jacobian(theta)
    n_used = int(prob.active.sum())
    dof = n_used - k
    chi2 = float(np.sum(r_data**2))
    prec = np.zeros(k) if pri is None else 1.0 / pri.sigma**2
    if pri is None and dof <= 0:
        cov = np.full((k, k), np.inf)
    else:
        cov = posterior_covariance(J_data, chi2, dof, prec, absolute_sigma=absolute_sigma)
    sig = np.sqrt(np.diag(cov))
    undetermined = undetermined_directions(J_data, names, pri)
    E, _ = prob._eval(theta)
    branch = prob.assign(theta)
    e_model = E[np.arange(len(branch)), branch]
    resid = e_model - points.energy
    rms = float(np.sqrt(np.mean(resid[prob.active] ** 2)))
    full = theta_ref.copy()
    full[free_idx] = theta
    lowest_pts = float(E.min())
    lowest_mesh, q_low = mesh_lowest_mode(
        space,
        full,
        reference=reference,
        theta_ref=theta_ref if reference is not None else None,
        mesh=stability_mesh,
    )
    lowest = min(lowest_pts, lowest_mesh)
    stable = lowest > -STABILITY_TOL_MEV
    converged = bool(res.status > 0 and np.isfinite(res.cost) and np.all(np.isfinite(theta)))
    msg = res.message
    if not converged:
        warnings.append(
            f"NOT CONVERGED after {n_total} evaluations ({res.message}): free fewer parameters, give a better start, or raise max_nfev"
        )
    if not stable:
        where = (
            f"at q = {np.round(q_low, 3).tolist()} r.l.u. on the {stability_mesh}³ mesh"
            if lowest_mesh <= lowest_pts
            else "at a fitted point"
        )
        warnings.append(
            f"DYNAMICALLY UNSTABLE: lowest mode {lowest:.2f} meV {where}; the result is not a physical crystal"
        )
    if undetermined:
        held = "held by the prior" if pri is not None else "unconstrained (no prior)"
        warnings.append(
            f"{len(undetermined)} direction(s) the points do not determine, {held}: "
            + "; ".join(d["label"] for d in undetermined)
        )
    if flagged:
        warnings.append(
            f"{len(flagged)} outlying point(s) flagged and left out: "
            + ", ".join(f"#{f['point']} ({f['residual_sigma_robust_fit']:.3g}σ)" for f in flagged[:8])
        )
    n_nearest = int(np.sum((points.branch < 0) & np.array([not x for x in points.label])))
    if n_nearest:
        warnings.append(
            f"{n_nearest} point(s) without a branch label matched by nearest energy (can swap branches at crossings; label them L/T/T1/T2)"
        )
    success = converged and stable
    if not success:
        text = "; ".join(w for w in warnings if w.startswith(("NOT", "DYN")))
        if strict:
            raise FitError(f"the dispersion fit is not trusted: {text}.")
        log.warning("the dispersion fit is not trusted: %s", text)
    extra = {
        "material": space.crystal.name,
        "theta_full": dict(zip(space.names, full.tolist())),
        "free": list(names),
        "n_shells": _shell_count(space),  # distinct distances, as load_reference counts them
        "cutoff_A": float(space.cutoff),
        "reference_fc": "full FC set" if reference is not None else "theta_ref",
        "assignment": "integer index as given; L/T/T1/T2 by polarisation from the eigenvectors (fcinv.fitting.labels); unlabelled: nearest energy; re-matched every evaluation",
        "n_points": len(points),
        "n_used": n_used,
        "n_labelled": int(np.sum((points.branch >= 0) | np.array([bool(x) for x in points.label]))),
        "energy_model_meV": e_model.tolist(),
        "branch": branch.tolist(),
        "branch_label": points.names,
        "residual_meV": resid.tolist(),
        "rms_residual_meV": rms,
        "rms_residual_THz": rms / THZ_TO_MEV,
        "outliers": flagged,
        "outlier_rejection": f"soft-L1 first stage, flag |r| > {outlier_sigma:g} max(1, robust scale)"
        if outliers
        else "off",
        "undetermined": undetermined,
        "prior": None if pri is None else pri.as_dict(),
        "prior_chi2": None if pri is None else float(np.sum(pri.residual(theta) ** 2)),
        "lowest_mode_meV": lowest,
        "lowest_mode_q_rlu": q_low
        if lowest_mesh <= lowest_pts
        else points.q_rlu[int(np.argmin(E.min(axis=1)))].tolist(),
        "stability_mesh": int(stability_mesh),
        "stable": bool(stable),
        "converged": converged,
        "warnings": warnings,
        "source": points.source,
    }
    return FitResult(
        names=list(names),
        theta=theta.copy(),
        sigma=sig,
        covariance=cov,
        theta_start=np.asarray(x0, float).copy(),
        cost=float(res.cost),
        dof=int(dof),
        chi2=chi2,
        n_iter=int(prob.n_eval),
        wall_s=time.perf_counter() - t_wall,
        success=success,
        message=msg
        + (
            ""
            if success
            else " [" + "; ".join(w.split(":")[0] for w in warnings if w.startswith(("NOT", "DYN"))) + "]"
        ),
        method="weighted least squares (scipy trf, analytic Jacobian) to dispersion points with a Gaussian prior"
        + (", soft-L1 outlier stage" if outliers else "")
        + "; modes by index / polarisation label / nearest energy",
        n_eval_total=int(prob.n_eval),
        extra=extra,
    )


def model_energies(space, theta_full, q_rlu: np.ndarray, *, reference=None, theta_ref=None) -> np.ndarray:
    """Signed phonon energies of a full θ at any q-points: shape (n_q, n_modes), meV.

    With ``reference`` (and its projection ``theta_ref``), D = D_ref + Σ (θ − θ_ref)_p B_p.
    """
    from fcinv.forward import LinearDynamics

    theta_full = space.check_theta(theta_full)
    tref = theta_full if theta_ref is None else space.check_theta(theta_ref, what="theta_ref")
    dyn = LinearDynamics(space, q_rlu, tref, np.arange(space.n_params), reference)
    w2 = dyn.omega2(theta_full[None])[0]
    return np.sign(w2) * np.sqrt(np.abs(w2)) * EV_A2_AMU_TO_MEV


def model_modes(
    space, theta_full, points: DispersionPoints, *, reference=None, theta_ref=None
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (n, m) meV and the assigned mode (n,) of every point at a full θ (same rules as the fit)."""
    tref = space.check_theta(theta_full if theta_ref is None else theta_ref, what="theta_ref")
    prob = _DispersionProblem(space, points, tref, np.arange(space.n_params), reference)
    t = space.check_theta(theta_full)
    E, _ = prob._eval(t)
    return E, prob.assign(t)


def _shell_count(space) -> int:
    from fcinv.reference import shell_count

    return shell_count(space)
