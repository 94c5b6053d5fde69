"""Shared pieces of the fits: the result object, free-parameter selection, the covariance.

Uncertainties (both fits) are the textbook linearised ones: at the optimum x̂ with
weighted residual Jacobian J,

    cov(x̂) = s² (JᵀJ)⁻¹,   s² = Σ r² / (n − p)   (the reduced χ² when errors are known),

so they are statistical, local (the curvature at the optimum only) and assume the
model is right; they say nothing about a wrong branch assignment, a wrong local
minimum or a systematic misfit of the forward model. With ``absolute_sigma=True``
s² = 1 is used instead (trusting the given errors as absolute).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fcinv.errors import FcinvError, ForceConstantError

log = logging.getLogger(__name__)

#: One-line description of the uncertainties, stored with every result.
UNCERTAINTY_NOTE = (
    "sigma = sqrt(diag((J^T J / s^2 + prior precision)^-1)) at the optimum, s^2 = sum(r^2)/dof: statistical, local (linearised), "
    "data and prior (Laplace); assumes the model is right; excludes systematic errors, wrong minima and mode-assignment errors"
)


class FitError(FcinvError):
    """A fit cannot run on the given input, or (with ``strict=True``) did not converge."""


@dataclass
class FitResult:
    """The outcome of a least-squares fit of θ.

    Attributes
    ----------
    names
        The k fitted parameter names, in θ order.
    theta
        Shape (k,) float64, eV/Å²: the best fit.
    sigma
        Shape (k,) float64, eV/Å²: 1σ statistical uncertainty (``inf`` where the data do not
        constrain a parameter).
    covariance
        Shape (k, k) float64, (eV/Å²)²: the covariance of θ (see the module docstring).
    theta_start
        Shape (k,) float64, eV/Å²: where the (best) local fit started.
    cost
        ½ Σ r² of the weighted residuals at the optimum.
    dof
        Degrees of freedom, n_data − n_fitted (scale and background included where fitted).
    chi2
        Σ r² when the data carry errors, else None.
    n_iter
        Residual evaluations of the best local fit (all starts summed in ``n_eval_total``).
    wall_s
        Wall time of the whole fit, s.
    success
        True when the (best) local fit converged.
    message
        The optimiser's message, or why the fit is not trusted.
    method
        A short description of the algorithm.
    extra
        Fit-specific values (scale, background, rms residual, starts ...), JSON-able.
    """

    names: list[str]
    theta: np.ndarray
    sigma: np.ndarray
    covariance: np.ndarray
    theta_start: np.ndarray
    cost: float
    dof: int
    chi2: float | None
    n_iter: int
    wall_s: float
    success: bool
    message: str
    method: str
    n_eval_total: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def chi2_dof(self) -> float | None:
        """χ²/dof, or None when the data carry no errors."""
        if self.chi2 is None or self.dof <= 0:
            return None
        return self.chi2 / self.dof

    def theta_dict(self) -> dict[str, float]:
        """θ by name, eV/Å²."""
        return dict(zip(self.names, (float(v) for v in self.theta)))

    def as_dict(self) -> dict:
        """JSON-able summary (θ and σ by name, costs, timings, the uncertainty note)."""
        return {
            "names": list(self.names),
            "theta": self.theta_dict(),
            "sigma": dict(zip(self.names, (_json_float(v) for v in self.sigma))),
            "covariance": [[_json_float(v) for v in row] for row in self.covariance],
            "theta_start": dict(zip(self.names, (float(v) for v in self.theta_start))),
            "unit": "eV/Å^2",
            "cost": float(self.cost),
            "dof": int(self.dof),
            "chi2": None if self.chi2 is None else float(self.chi2),
            "chi2_dof": None if self.chi2_dof is None else float(self.chi2_dof),
            "n_iter": int(self.n_iter),
            "n_eval_total": int(self.n_eval_total),
            "wall_s": float(self.wall_s),
            "success": bool(self.success),
            "message": self.message,
            "method": self.method,
            "uncertainty": UNCERTAINTY_NOTE,
            **self.extra,
        }

    def summary_lines(self) -> list[str]:
        """Human-readable lines: one per parameter (θ ± σ) and a status line."""
        w = max(len(n) for n in self.names)
        lines = [f"{'parameter':<{w}}  {'theta (eV/Å²)':>14}  {'sigma':>10}  {'start':>10}"]
        for n, t, s, t0 in zip(self.names, self.theta, self.sigma, self.theta_start):
            lines.append(f"{n:<{w}}  {t:>14.5f}  {s:>10.5f}  {t0:>10.5f}")
        converged = bool(self.extra.get("converged", self.success))
        status = ("converged" if converged else "NOT CONVERGED") + (
            "" if self.extra.get("stable", True) else ", DYNAMICALLY UNSTABLE"
        )
        if converged and not self.success and self.extra.get("stable", True):
            status += ", NOT TRUSTED"
        chi = (
            f", χ²/dof = {self.chi2_dof:.3f} (dof {self.dof})"
            if self.chi2_dof is not None
            else f", dof {self.dof}"
        )
        lines.append(
            f"{status}: {self.message}; cost {self.cost:.6g}{chi}; {self.n_iter} evaluations, {self.wall_s:.2f} s"
        )
        return lines


def _json_float(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# ----------------------------------------------------------- free parameters
def resolve_free(
    space,
    spec: str | int | Sequence[str] | None,
    *,
    ranking: Sequence[str] | None = None,
    default: Sequence[str] | None = None,
) -> list[str]:
    """Turn a free-parameter selection into parameter names.

    Parameters
    ----------
    space
        The :class:`~fcinv.fcspace.FCSpace`.
    spec
        ``None`` (``default``), ``"all"`` (every parameter within the cutoff), an integer k or
        ``"top:k"`` (the first k of ``ranking``, the reference's sensitivity order), or a
        sequence of parameter names (``"1NN_xx"``) and/or shell names (``"2NN"``: all of
        its components). A single comma-separated string is split.
    ranking
        Parameter names by decreasing spectral sensitivity (``ensemble.json``'s ranking).
    default
        Returned for ``spec=None``.

    Returns
    -------
    list of str
        Distinct names, in the order given (shells expanded in the space's order).
    """
    if spec is None:
        if default is None:
            raise ForceConstantError("no free parameters given. Pass names, shells, 'all' or 'top:K'.")
        return list(default)
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    elif isinstance(spec, (int, np.integer)):
        items = [f"top:{int(spec)}"]
    else:
        items = [str(s).strip() for s in spec]
    if len(items) == 1 and items[0].lower() == "all":
        return list(space.names)
    if len(items) == 1 and items[0].lower().startswith("top"):
        raw = items[0][3:].lstrip(":-=")
        try:
            k = int(raw)
        except ValueError:
            raise ForceConstantError(
                f"free-parameter selection '{items[0]}' is not 'top:K' with an integer K. Pass e.g. top:8."
            ) from None
        if ranking is None:
            raise ForceConstantError(
                f"'{items[0]}' needs a sensitivity ranking, and {space.crystal.name} has no embedded reference. Name the parameters or shells instead (e.g. 1NN,2NN) or pass 'all'."
            )
        if not 1 <= k <= len(ranking):
            raise ForceConstantError(
                f"top:{k} is out of range; the ranking has {len(ranking)} parameters. Pass 1 <= K <= {len(ranking)}."
            )
        return list(ranking[:k])
    shells = {s.name: [f"{s.name}_{c}" for c in s.components] for s in space.shells}
    out: list[str] = []
    for it in items:
        names = shells.get(it, [it])
        for n in names:
            if n not in space.names:
                raise ForceConstantError(
                    f"unknown free parameter or shell '{it}'. Parameters of {space.crystal.name}: {', '.join(space.names)}; shells: {', '.join(shells)}; or 'all', 'top:K'."
                )
            if n not in out:
                out.append(n)
    if not out:
        raise ForceConstantError(
            "the free-parameter selection is empty. Pass names, shells, 'all' or 'top:K'."
        )
    return out


# ----------------------------------------------------------------- derivatives
def mode_gradients(Mp: np.ndarray, V: np.ndarray) -> np.ndarray:
    """∂ω²_n/∂θ_p = e_nᴴ M_p e_n for eigenvectors ``V`` (n_q, m, m) and basis matrices ``Mp`` (k, n_q, m, m): shape (n_q, m, k)."""
    MV = np.matmul(Mp, V[None])  # (k, n_q, m, m)
    g = np.einsum("qai,pqai->qip", V.conj(), MV)
    return g.real if np.iscomplexobj(g) else g


# ----------------------------------------------------------------- covariance
def covariance(
    jac: np.ndarray, cost: float, dof: int, *, absolute_sigma: bool = False, rcond: float = 1e-7
) -> tuple[np.ndarray, bool]:
    """s² (JᵀJ)⁻¹ from the weighted residual Jacobian at the optimum.

    Parameters
    ----------
    jac
        Shape (n_data, n_x): ∂r/∂x of the weighted residuals.
    cost
        ½ Σ r² at the optimum.
    dof
        n_data − n_x.
    absolute_sigma
        Use s² = 1 (errors taken as absolute) instead of s² = Σ r²/dof.
    rcond
        Singular values of the column-scaled J below ``rcond`` × the largest count as
        unconstrained directions.

    Returns
    -------
    (cov, degenerate)
        cov shape (n_x, n_x); parameters that load on an unconstrained direction get
        ``inf`` variance, and ``degenerate`` is True when there was one.
    """
    J = np.asarray(jac, dtype=float)
    # column scaling makes the threshold independent of the parameters' units
    norms = np.linalg.norm(J, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    Js = J / norms
    lam, V = np.linalg.eigh(Js.T @ Js)  # singular values² of Js, ascending
    ok = lam > (rcond**2) * max(float(lam[-1]), 1e-300)
    Vok = V[:, ok] / np.sqrt(lam[ok])
    cov = (Vok @ Vok.T) / np.outer(norms, norms)
    degenerate = not np.all(ok)
    if not absolute_sigma and dof <= 0:
        return np.full(cov.shape, np.inf), True
    cov = cov * (1.0 if absolute_sigma else 2.0 * cost / dof)
    if degenerate:
        bad = np.any(np.abs(V[:, ~ok]) > 1e-3, axis=1)
        cov[bad, :] = np.inf
        cov[:, bad] = np.inf
    return cov, degenerate


# ------------------------------------------------------------------ θ files
def read_theta_json(path) -> tuple[dict[str, float], dict]:
    """θ by name from a JSON file written by ``fcinv fit``, ``fit-dispersion``, ``infer`` or by hand.

    Accepted layouts (first match wins): a ``theta_full`` mapping (fits); a ``theta`` mapping;
    ``refined`` then ``ml`` mappings (``fcinv infer --json``); the top-level mapping itself.
    Values are numbers, or mappings with a ``theta`` or ``value`` key (the inference layout
    ``{name: {"theta": x, "sigma": s}}``).

    Returns
    -------
    (theta, document)
        θ by name (eV/Å²) and the whole parsed document.
    """
    import json
    from pathlib import Path

    from fcinv.errors import DataError, describe_exception, json_kind

    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"θ file '{p}' does not exist. Pass the JSON written by fcinv fit / fit-dispersion / infer."
        )
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"'{p}' is not valid JSON ({describe_exception(exc)}). Pass the JSON written by fcinv fit / fit-dispersion / infer."
        ) from None
    if not isinstance(doc, dict):
        raise DataError(
            f"'{p}' holds a JSON {json_kind(doc)}, not an object of θ by name. Pass e.g. {{\"1NN_xx\": -1.4, ...}}."
        )
    src = next(
        (doc[k] for k in ("theta_full", "theta", "refined", "ml") if isinstance(doc.get(k), dict)), doc
    )
    out: dict[str, float] = {}
    for k, v in src.items():
        if isinstance(v, dict):
            v = v.get("theta", v.get("value"))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
    if not out:
        raise DataError(
            f"'{p}' has no numeric θ values by parameter name. Pass the JSON written by fcinv fit / fit-dispersion / infer."
        )
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise DataError(f"'{p}' has non-finite θ for {bad}. Pass finite force constants (eV/Å²).")
    return out, doc
