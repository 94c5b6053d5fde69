"""Fit θ to measured phonon energies at arbitrary q (the triple-axis way).

Input: a table of points (CSV columns ``h, k, l`` in r.l.u. of the conventional
cell, ``energy_meV`` and ``sigma_meV`` — or ``energy_THz`` and ``sigma_THz`` — and
an optional ``branch``). The fit minimises the weighted residuals

    r_i = (E_{b_i}(q_i; θ) − E_i) / σ_i

by trust-region least squares with the analytic Jacobian ∂E/∂θ_p = C²/(2E) · eᵀ M_p e.

Mode assignment: a point with a ``branch`` label (an integer, 0 = lowest mode at
that q, counting all 3 × n_atoms branches in ascending energy, imaginary modes
first) is always compared with that branch. A point without a label is matched to
the model branch *nearest in energy at the current θ*; the matching is redone at
every evaluation of the residuals, each point independently (two points at one q
may match the same branch). Near branch crossings a wrong assignment biases the
fit; label such points or leave them out.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fcinv.errors import DataError
from fcinv.fitting._base import FitError, FitResult, covariance, mode_gradients, resolve_free
from fcinv.units import EV_A2_AMU_TO_MEV, THZ_TO_MEV

log = logging.getLogger(__name__)

_E_FLOOR_MEV = 1e-3


# ------------------------------------------------------------------ the points
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
        Shape (n,) int64: branch index (0 = lowest) or -1 to assign by nearest energy.
    source
        Where the points came from (a file name).
    """

    q_rlu: np.ndarray
    energy: np.ndarray
    sigma: np.ndarray
    branch: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        q = np.atleast_2d(np.asarray(self.q_rlu, dtype=float))
        e = np.asarray(self.energy, dtype=float).ravel()
        s = np.asarray(self.sigma, dtype=float).ravel()
        b = np.full(len(e), -1, dtype=np.int64) if self.branch is None else np.asarray(self.branch).ravel()
        n = len(e)
        if n == 0:
            raise DataError(f"no dispersion points{_src(self.source)}. Pass at least one (h, k, l, energy, sigma) row.")
        if q.shape != (n, 3) or s.shape != (n,) or b.shape != (n,):
            raise DataError(f"dispersion points have q {q.shape}, energy ({n},), sigma {s.shape}, branch {b.shape}; expected (n, 3), (n,), (n,), (n,).")
        for name, arr in (("h/k/l", q), ("energy", e), ("sigma", s)):
            bad = ~np.isfinite(arr).reshape(n, -1).all(axis=1)
            if np.any(bad):
                raise DataError(f"{name} is NaN or infinite in point {int(np.argmax(bad))}{_src(self.source)}. Remove the row or give a number.")
        if np.any(s <= 0):
            i = int(np.argmax(s <= 0))
            raise DataError(f"sigma of point {i} is {s[i]:g} meV{_src(self.source)}; standard errors must be positive. Fix the sigma column.")
        if not np.all(np.asarray(b) == np.round(np.asarray(b, dtype=float))) or np.any(np.asarray(b) < -1):
            raise DataError(f"branch labels must be integers >= 0 (or empty for nearest-energy matching){_src(self.source)}.")
        object.__setattr__(self, "q_rlu", q)
        object.__setattr__(self, "energy", e)
        object.__setattr__(self, "sigma", s)
        object.__setattr__(self, "branch", b.astype(np.int64))

    def __len__(self) -> int:
        return len(self.energy)


def _src(source: str) -> str:
    return f" of '{source}'" if source else ""


_ENERGY_COLUMNS = (("energy_mev", "sigma_mev", 1.0), ("energy_thz", "sigma_thz", THZ_TO_MEV))


def read_points(path: str | Path) -> DispersionPoints:
    """Read a dispersion-point CSV (columns in the module docstring; ``#`` starts a comment line).

    Raises
    ------
    DataError
        A missing file or column, a non-numeric, NaN or non-positive-sigma entry, named with its line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dispersion-point file '{path}' does not exist. Pass a CSV with columns h,k,l,energy_meV,sigma_meV[,branch].")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"'{path}' is empty. Pass a CSV with a header h,k,l,energy_meV,sigma_meV[,branch] and one row per point.")
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in ("h", "k", "l") if c not in header]
    units = next(((e, s, f) for e, s, f in _ENERGY_COLUMNS if e in header and s in header), None)
    if missing or units is None:
        need = missing + ([] if units else ["energy_meV", "sigma_meV"])
        raise DataError(f"'{path}' lacks the column(s) {need} (header: {','.join(header)}). The header must be h,k,l,energy_meV,sigma_meV[,branch] (or energy_THz,sigma_THz).")
    ecol, scol, factor = units
    cols = {c: header.index(c) for c in ("h", "k", "l", ecol, scol)}
    bcol = header.index("branch") if "branch" in header else None
    q, e, s, b = [], [], [], []
    for lineno, row in enumerate(reader, start=2):
        if len(row) < len(header):
            raise DataError(f"'{path}' data row {lineno - 1} has {len(row)} fields, the header {len(header)}. Give every column on every row.")
        vals = {}
        for c, i in cols.items():
            txt = row[i].strip()
            try:
                v = float(txt)
            except ValueError:
                raise DataError(f"'{path}' data row {lineno - 1}: {c} = '{txt}' is not a number. Fix or remove the row.") from None
            if not math.isfinite(v):
                raise DataError(f"'{path}' data row {lineno - 1}: {c} is {txt}. Remove the row or give a finite number.")
            vals[c] = v
        if vals[scol] <= 0:
            raise DataError(f"'{path}' data row {lineno - 1}: {scol} = {vals[scol]:g}; standard errors must be positive. Fix the sigma column.")
        br = row[bcol].strip() if bcol is not None else ""
        if br in ("", "-", "-1"):
            b.append(-1)
        else:
            try:
                bi = int(br)
            except ValueError:
                raise DataError(f"'{path}' data row {lineno - 1}: branch = '{br}' is not an integer (0 = lowest mode). Leave it empty for nearest-energy matching.") from None
            if bi < 0:
                raise DataError(f"'{path}' data row {lineno - 1}: branch = {bi}; pass an index >= 0 (0 = lowest mode) or leave it empty.")
            b.append(bi)
        q.append((vals["h"], vals["k"], vals["l"]))
        e.append(vals[ecol] * factor)
        s.append(vals[scol] * factor)
    return DispersionPoints(np.array(q, float).reshape(-1, 3), np.array(e), np.array(s), np.array(b, dtype=np.int64), source=str(path))


def write_points(path: str | Path, points: DispersionPoints) -> Path:
    """Write points as CSV (meV; branch empty where unassigned)."""
    path = Path(path)
    rows = ["h,k,l,energy_meV,sigma_meV,branch"]
    for q, e, s, b in zip(points.q_rlu, points.energy, points.sigma, points.branch):
        rows.append(f"{q[0]:.6g},{q[1]:.6g},{q[2]:.6g},{e:.6f},{s:.6f},{'' if b < 0 else int(b)}")
    path.write_text("\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------------- the model
class _DispersionProblem:
    """Weighted residuals and Jacobian of the point fit, with nearest-branch matching."""

    def __init__(self, space, points: DispersionPoints, theta_ref: np.ndarray, free_idx: np.ndarray, reference):
        from fcinv.forward import LinearDynamics

        self.dyn = LinearDynamics(space, points.q_rlu, theta_ref, free_idx, reference)
        self.points = points
        self.m = space.crystal.n_modes
        bad = points.branch >= self.m
        if np.any(bad):
            i = int(np.argmax(bad))
            raise FitError(f"point {i} has branch {points.branch[i]}, but {space.crystal.name} has {self.m} branches (0..{self.m - 1}). Fix the branch column.")
        self.n_eval = 0
        self._key: bytes | None = None

    def _eval(self, theta: np.ndarray):
        key = theta.tobytes()
        if key != self._key:
            dyn = self.dyn
            D = dyn.Mc + np.einsum("p,pqij->qij", theta, dyn.Mp)
            w2, V = np.linalg.eigh(D)
            C = EV_A2_AMU_TO_MEV
            E = np.sign(w2) * np.sqrt(np.abs(w2)) * C
            g = mode_gradients(dyn.Mp, V)
            dE = C * C / (2.0 * np.maximum(np.abs(E), _E_FLOOR_MEV))[..., None] * g
            self._key, self.E, self.dE = key, E, dE
            self.n_eval += 1
        return self.E, self.dE

    def assign(self, E: np.ndarray) -> np.ndarray:
        """Branch of each point: its label, else the nearest in energy."""
        nearest = np.argmin(np.abs(E - self.points.energy[:, None]), axis=1)
        return np.where(self.points.branch >= 0, self.points.branch, nearest)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        E, _ = self._eval(theta)
        b = self.assign(E)
        return (E[np.arange(len(b)), b] - self.points.energy) / self.points.sigma

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        E, dE = self._eval(theta)
        b = self.assign(E)
        return dE[np.arange(len(b)), b] / self.points.sigma[:, None]


def scaled_start(space, points: DispersionPoints, theta_full: np.ndarray, *, n_iter: int = 8) -> np.ndarray:
    """Scale a full θ (no reference FC set) by one factor so its energies match the points on average.

    Every energy scales as √α when θ scales by α, so α follows from a weighted
    linear fit of measured on model energies (nearest-branch matched, re-matched a few times).

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
        raise FitError("the start θ has no positive phonon energy at the points. Pass a stable start (e.g. --springs 1NN=3 2NN=1).")
    c = float(points.energy.max()) / e_max
    w = 1.0 / points.sigma**2
    for _ in range(n_iter):
        cE = c * E
        b = prob.assign(cE)
        em = E[np.arange(len(b)), b]
        denom = float(np.sum(w * em * em))
        if denom <= 0:
            break
        c = float(np.sum(w * em * points.energy)) / denom
    if not c > 0:
        raise FitError("could not scale the start θ to the points (non-positive scale). Pass a better start θ.")
    return theta_full * c * c


def fit_dispersion(
    space,
    points: DispersionPoints,
    theta_ref,
    *,
    free: str | int | Sequence[str] | None = None,
    ranking: Sequence[str] | None = None,
    theta_start=None,
    reference=None,
    max_nfev: int = 200,
    ftol: float = 1e-12,
    xtol: float = 1e-12,
    absolute_sigma: bool = False,
    strict: bool = False,
) -> FitResult:
    """Fit θ to measured phonon energies.

    Parameters
    ----------
    space
        The :class:`~fcinv.fcspace.FCSpace` of the crystal.
    points
        The measured energies (see :func:`read_points`).
    theta_ref
        Shape (n_params,), eV/Å²: values of the parameters that are not fitted (and the
        projection of ``reference`` when one is given).
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
    max_nfev
        Residual evaluations before the fit stops as not converged.
    absolute_sigma
        Use the given σ as absolute (s² = 1) in the covariance instead of s² = χ²/dof.
    strict
        Raise :class:`FitError` when the fit did not converge.

    Returns
    -------
    FitResult
        θ, σ, χ² (the points carry errors, so χ² and χ²/dof are always given); ``extra``
        holds ``energy_model_meV`` and ``branch`` per point, ``residual_meV``,
        ``rms_residual_meV``, ``rms_residual_THz``, ``theta_full``, ``n_points``,
        ``n_labelled``, ``lowest_mode_meV`` (at the points).
    """
    from scipy.optimize import least_squares

    t_wall = time.perf_counter()
    theta_ref = space.check_theta(theta_ref, what="theta_ref")
    names = resolve_free(space, free, ranking=ranking, default=space.names)
    free_idx = space.index(names)
    k = len(names)
    if len(points) <= k:
        raise FitError(f"{len(points)} points cannot determine {k} parameters. Measure more points or free fewer parameters (e.g. --free 1NN,2NN).")
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
            raise FitError(f"theta_start has {t.size} values; pass {k} (the free parameters {', '.join(names)}) or all {space.n_params}, or a dict by name.")
    if not np.all(np.isfinite(x0)):
        raise FitError("theta_start contains NaN or inf. Pass finite force constants (eV/Å²).")
    prob = _DispersionProblem(space, points, theta_ref, free_idx, reference)
    with np.errstate(over="ignore", invalid="ignore"):
        res = least_squares(prob.residual, x0, jac=prob.jacobian, method="trf", x_scale="jac", ftol=ftol, xtol=xtol, gtol=ftol, max_nfev=max_nfev)
    theta = res.x
    dof = len(points) - k
    cov, degenerate = covariance(res.jac, res.cost, dof, absolute_sigma=absolute_sigma)
    sig = np.sqrt(np.diag(cov))
    E, _ = prob._eval(theta)
    branch = prob.assign(E)
    e_model = E[np.arange(len(branch)), branch]
    resid = e_model - points.energy
    rms = float(np.sqrt(np.mean(resid**2)))
    success = bool(res.status > 0 and np.isfinite(res.cost))
    msg = res.message
    if degenerate:
        msg += f"; the points do not constrain {[n for n, s in zip(names, sig) if not np.isfinite(s)]} (σ = inf)"
    lowest = float(E.min())
    if lowest < -0.05:
        msg += f"; imaginary modes at the points (lowest {lowest:.2f} meV)"
    if not success:
        text = f"the dispersion fit did not converge after {res.nfev} evaluations ({res.message}). Free fewer parameters, give a better start, or raise max_nfev."
        if strict:
            raise FitError(text)
        log.warning(text)
    full = theta_ref.copy()
    full[free_idx] = theta
    extra = {
        "material": space.crystal.name,
        "theta_full": dict(zip(space.names, full.tolist())),
        "free": list(names),
        "reference_fc": "full FC set" if reference is not None else "theta_ref",
        "assignment": "branch label where given, else nearest model energy at the current θ (re-matched every evaluation)",
        "n_points": len(points),
        "n_labelled": int(np.sum(points.branch >= 0)),
        "energy_model_meV": e_model.tolist(),
        "branch": branch.tolist(),
        "residual_meV": resid.tolist(),
        "rms_residual_meV": rms,
        "rms_residual_THz": rms / THZ_TO_MEV,
        "lowest_mode_meV": lowest,
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
        chi2=float(2.0 * res.cost),
        n_iter=int(prob.n_eval),
        wall_s=time.perf_counter() - t_wall,
        success=success,
        message=msg,
        method="weighted least squares (scipy trf, analytic Jacobian) to dispersion points, nearest-energy mode matching",
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
