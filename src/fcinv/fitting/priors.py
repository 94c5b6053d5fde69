"""What keeps a fit honest: the Gaussian prior, the undetermined directions, the stability check.

Prior (default: the training domain). For a parameter with training box [lo, hi] the prior is
N(μ, σ²) with μ = (lo + hi)/2 and σ = (hi − lo)/4: the box half-width is 2σ, so the whole box
is inside ±2σ and a value outside it costs more than 4 in χ². A parameter without a box (no
embedded reference, or a shell beyond the reference's space) gets μ = its start value and
σ = max(|start|, 0.1 · max |start|) (a weak prior, 100 % of the value). The prior enters the
fit as extra residuals (θ − μ)/σ, so χ² of the data and the prior's penalty are reported apart;
dof counts the data only. A user prior (JSON ``{name: [mean, sigma]}`` or
``{name: {"mean": m, "sigma": s}}``) overrides the default per name.

Undetermined directions: the SVD of the weighted data Jacobian in prior-σ units,
J̃ = J · diag(σ_prior). A singular value s of J̃ is the ratio of the data's to the prior's
information along its right-singular vector v, so s < 1 means the prior, not the data, fixes
θ along v: such directions are reported (named as combinations of parameter names, in prior-σ
units) as held by the prior. Without a prior, directions with s < 1e-6 · s_max are
reported as unconstrained (σ = inf there).

Stability: every result is checked on a Γ-centred full-zone mesh (irreducible points of an
N³ grid, default N = 8) plus the fitted q-points; a mode below −0.05 meV makes the result
unstable (``success=False``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcinv.errors import DataError, describe_exception, json_kind
from fcinv.fitting._base import FitError

log = logging.getLogger(__name__)

#: Modes below this signed energy (meV) make a result unstable.
STABILITY_TOL_MEV = 0.05
#: Default size of the full-zone stability mesh.
STABILITY_MESH = 8
#: Singular values of the prior-scaled data Jacobian below this are "held by the prior".
HELD_THRESHOLD = 1.0
#: Coefficients below this (of a unit direction) are left out of a direction's name.
NAME_COEFF = 0.2


@dataclass(frozen=True, eq=False)
class Prior:
    """An independent Gaussian prior on named parameters.

    Attributes
    ----------
    names
        Parameter names.
    mean, sigma
        Shape (k,) float64, eV/Å² (sigma > 0).
    source
        One line saying where each part came from.
    """

    names: tuple[str, ...]
    mean: np.ndarray
    sigma: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        m = np.asarray(self.mean, float).ravel()
        s = np.asarray(self.sigma, float).ravel()
        if m.shape != (len(self.names),) or s.shape != m.shape:
            raise FitError(
                f"prior has {len(self.names)} names but mean {m.shape} and sigma {s.shape}. Pass one mean and sigma per name."
            )
        bad = [
            n for n, a, b in zip(self.names, m, s) if not (math.isfinite(a) and math.isfinite(b) and b > 0)
        ]
        if bad:
            raise FitError(
                f"prior mean/sigma not finite or sigma <= 0 for {bad}. Pass finite means and positive sigmas (eV/Å²)."
            )
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "mean", m)
        object.__setattr__(self, "sigma", s)

    @classmethod
    def from_domain(cls, domain, source: str = "training domain") -> Prior:
        """μ = box centre, σ = box half-width / 2 (the module docstring)."""
        lo, hi = np.asarray(domain.low, float), np.asarray(domain.high, float)
        return cls(
            tuple(domain.names),
            0.5 * (lo + hi),
            0.25 * (hi - lo),
            f"{source}: centre of the box, half-width = 2σ",
        )

    @classmethod
    def weak(cls, names: Sequence[str], start: np.ndarray) -> Prior:
        """μ = start, σ = max(|start|, 0.1 max|start|) (100 % of the value)."""
        s = np.asarray(start, float)
        floor = max(0.1 * float(np.abs(s).max()), 1e-3)
        return cls(
            tuple(names),
            s.copy(),
            np.maximum(np.abs(s), floor),
            "weak: centred at the start, sigma = max(|start|, 0.1 max|start|)",
        )

    def residual(self, theta: np.ndarray) -> np.ndarray:
        """(θ − μ)/σ, shape (k,)."""
        return (np.asarray(theta, float) - self.mean) / self.sigma

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "unit": "eV/Å^2",
            "mean": dict(zip(self.names, self.mean.tolist())),
            "sigma": dict(zip(self.names, self.sigma.tolist())),
        }


def read_prior_json(path: str | Path) -> dict[str, tuple[float, float]]:
    """A user prior: JSON ``{name: [mean, sigma]}`` or ``{name: {"mean": m, "sigma": s}}`` (eV/Å²)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"prior file '{p}' does not exist. Pass a JSON {{name: [mean, sigma]}}, 'domain' or 'none'."
        )
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"prior file '{p}' is not valid JSON ({describe_exception(exc)}). Pass {{name: [mean, sigma]}}."
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("prior"), dict):
        doc = doc["prior"]
    if isinstance(doc, dict) and isinstance(doc.get("mean"), dict) and isinstance(doc.get("sigma"), dict):
        doc = {k: [doc["mean"][k], doc["sigma"].get(k)] for k in doc["mean"]}
    out: dict[str, tuple[float, float]] = {}
    if not isinstance(doc, dict):
        raise DataError(
            f"prior file '{p}' holds a JSON {json_kind(doc)}; pass an object {{name: [mean, sigma]}}."
        )
    for k, v in doc.items():
        if isinstance(v, dict):
            v = [v.get("mean"), v.get("sigma")]
        try:
            m, s = float(v[0]), float(v[1])
        except (TypeError, ValueError, IndexError):
            raise DataError(
                f"prior file '{p}': entry '{k}' = {v!r} is not [mean, sigma]. Pass two numbers (eV/Å²)."
            ) from None
        if not (math.isfinite(m) and math.isfinite(s) and s > 0):
            raise DataError(
                f"prior file '{p}': '{k}' has mean {m:g}, sigma {s:g}; pass a finite mean and a positive sigma."
            )
        out[str(k)] = (m, s)
    if not out:
        raise DataError(f"prior file '{p}' names no parameter. Pass {{name: [mean, sigma]}}.")
    return out


def training_domain(ref, names: Sequence[str]):
    """The material's training domain over ``names`` (all in ``ref.space``), from its embedded reference."""
    import importlib

    gen = importlib.import_module("fcinv.dataset.generate")

    names = list(names)
    if hasattr(ref, "domain"):  # the reference's own training domain (every parameter's, ensemble-wide)
        return ref.domain(names)
    builder = getattr(gen, "ensemble_domain", None)
    if builder is not None:  # the ensemble-wide domain, where the dataset module provides it
        try:
            dom = builder(ref, names)
            if list(dom.names) == names:
                return dom
        except Exception as exc:  # noqa: BLE001 - fall back to the documented widening
            log.info("ensemble_domain unavailable (%s); using widened_domain", exc)
    idx = ref.space.index(names)
    return gen.widened_domain(names, ref.lower[idx], ref.upper[idx], ref.theta_ref[idx])


def build_prior(names: Sequence[str], start: np.ndarray, *, spec="domain", ref=None) -> Prior | None:
    """The prior over the fitted ``names``.

    Parameters
    ----------
    names
        The fitted parameter names.
    start
        Shape (k,), eV/Å²: their start values (centre of the weak prior where no box exists).
    spec
        ``"domain"`` (default: the training domain of ``ref`` where it covers a name, else the weak
        prior), ``"weak"`` (the weak prior for all), ``"none"`` / None (no prior), a :class:`Prior`
        (reordered to ``names``; names it lacks get the default), or a path to a JSON prior file
        (its names override the default).
    ref
        The material's embedded reference (:class:`fcinv.reference.MaterialReference`) or None.
    """
    names = list(names)
    start = np.asarray(start, float)
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    mean = start.copy()
    weak = Prior.weak(names, start)
    sigma = weak.sigma.copy()
    parts = []
    have = np.zeros(len(names), bool)
    if not (isinstance(spec, str) and spec.lower() == "weak") and ref is not None:
        inside = [n for n in names if n in ref.space.names]
        if inside:
            dom = training_domain(ref, inside)
            p = Prior.from_domain(dom)
            for n, m, s in zip(p.names, p.mean, p.sigma):
                i = names.index(n)
                mean[i], sigma[i], have[i] = m, s, True
            parts.append(f"training domain for {len(inside)} (centre, half-width = 2σ)")
    user: dict[str, tuple[float, float]] = {}
    if isinstance(spec, Prior):
        user = {n: (float(m), float(s)) for n, m, s in zip(spec.names, spec.mean, spec.sigma)}
        src = spec.source or "given"
    elif isinstance(spec, (str, Path)) and str(spec).lower() not in ("domain", "weak"):
        user = read_prior_json(spec)
        src = f"file {spec}"
    if user:
        unknown = [k for k in user if k not in names]
        if unknown:
            log.warning("prior entries %s are not fitted parameters; ignored", unknown)
        n_used = 0
        for k, (m, s) in user.items():
            if k in names:
                i = names.index(k)
                mean[i], sigma[i], have[i] = m, s, True
                n_used += 1
        parts.append(f"user prior ({src}) for {n_used}")
    if not np.all(have):
        parts.append(
            f"weak prior (centred at the start, σ = max(|start|, 0.1 max|start|)) for {int((~have).sum())}"
        )
    return Prior(tuple(names), mean, sigma, "; ".join(parts))


# ------------------------------------------------------------ undetermined directions
def name_direction(v: np.ndarray, names: Sequence[str]) -> str:
    """A unit direction as ``+0.71·1NN_xy −0.71·2NN_xx`` (coefficients ≥ 0.2, largest first, sign fixed)."""
    v = np.asarray(v, float)
    v = v / (np.linalg.norm(v) or 1.0)
    if v[int(np.argmax(np.abs(v)))] < 0:
        v = -v
    order = np.argsort(-np.abs(v))
    keep = [i for i in order if abs(v[i]) >= NAME_COEFF] or [int(order[0])]
    return " ".join(f"{v[i]:+.2f}·{names[i]}" for i in keep)


def undetermined_directions(jac_data: np.ndarray, names: Sequence[str], prior: Prior | None) -> list[dict]:
    """Directions of θ the data leave to the prior (or leave open without one); module docstring.

    Parameters
    ----------
    jac_data
        Shape (n_data, k): ∂r/∂θ of the weighted data residuals (θ columns only).
    names
        The k parameter names.
    prior
        The prior (its σ scales the columns), or None.

    Returns
    -------
    list of dict
        Per direction: ``label`` (its name), ``coefficients`` (by name, unit vector in prior-σ
        units, or in column-normalised units without a prior), ``singular_value`` and ``held_by``.
    """
    J = np.asarray(jac_data, float)
    if J.size == 0:
        return []
    if prior is not None:
        Js = J * prior.sigma[None, :]
        thr, held = HELD_THRESHOLD, "prior"
    else:
        norms = np.linalg.norm(J, axis=0)
        Js = J / np.where(norms > 0, norms, 1.0)
        thr, held = None, "nothing (unconstrained)"
    # singular values and right-singular vectors from the k × k normal matrix (never the n × n U)
    lam, V = np.linalg.eigh(Js.T @ Js)
    s_full = np.sqrt(np.maximum(lam, 0.0))
    if thr is None:
        thr = 1e-6 * max(float(s_full.max()), 1e-300)
    out = []
    for i in np.nonzero(s_full < thr)[0]:
        v = V[:, i]
        if v[int(np.argmax(np.abs(v)))] < 0:
            v = -v
        out.append(
            {
                "label": name_direction(v, names),
                "coefficients": {n: float(c) for n, c in zip(names, v) if abs(c) >= 1e-3},
                "singular_value": float(s_full[i]),
                "held_by": held,
            }
        )
    return out


def posterior_covariance(
    jac_data: np.ndarray, chi2: float, dof: int, prior_precision: np.ndarray, *, absolute_sigma: bool = False
) -> np.ndarray:
    """Laplace covariance (J_dᵀJ_d / s² + diag(prior precision))⁻¹; s² = χ²/dof unless ``absolute_sigma``.

    Directions with neither data nor prior information get infinite variance.
    """
    J = np.asarray(jac_data, float)
    n_x = J.shape[1]
    s2 = 1.0 if absolute_sigma else (chi2 / dof if dof > 0 else float("inf"))
    if not math.isfinite(s2) or s2 <= 0:
        s2 = 1.0 if s2 == 0 else s2
    F = (J.T @ J) / s2 if math.isfinite(s2) else np.zeros((n_x, n_x))
    F = F + np.diag(np.asarray(prior_precision, float))
    d = np.sqrt(np.maximum(np.diag(F), 0.0))
    d = np.where(d > 0, d, 1.0)
    Fs = F / np.outer(d, d)
    lam, V = np.linalg.eigh(Fs)
    ok = lam > 1e-12 * max(float(lam[-1]), 1e-300)
    cov = (V[:, ok] / lam[ok]) @ V[:, ok].T / np.outer(d, d)
    if not np.all(ok):
        bad = np.any(np.abs(V[:, ~ok]) > 1e-3, axis=1)
        cov[bad, :] = np.inf
        cov[:, bad] = np.inf
    return cov


# ------------------------------------------------------------------- stability
def mesh_lowest_mode(
    space, theta_full: np.ndarray, *, reference=None, theta_ref=None, mesh: int = STABILITY_MESH, extra_q=None
) -> tuple[float, list[float]]:
    """Lowest signed mode energy (meV) on the irreducible points of a Γ-centred ``mesh``³ grid (and ``extra_q``).

    Returns
    -------
    (lowest, q)
        The lowest energy (meV) and the q-point (conventional r.l.u.) where it occurs.
    """
    from fcinv.forward import LinearDynamics, mesh_qpoints
    from fcinv.units import EV_A2_AMU_TO_MEV

    theta_full = space.check_theta(theta_full)
    tref = theta_full if theta_ref is None else space.check_theta(theta_ref, what="theta_ref")
    q = mesh_qpoints(space, int(mesh))
    if extra_q is not None and len(extra_q):
        q = np.vstack([q, np.atleast_2d(np.asarray(extra_q, float))])
    dyn = LinearDynamics(space, q, tref, np.arange(space.n_params), reference)
    w2 = dyn.omega2(np.ascontiguousarray(theta_full[None]))[0]  # (n_q, m)
    i = int(np.argmin(w2.min(axis=1)))
    lo = float(w2[i].min())
    return float(np.sign(lo) * np.sqrt(abs(lo)) * EV_A2_AMU_TO_MEV), [float(x) for x in q[i]]
