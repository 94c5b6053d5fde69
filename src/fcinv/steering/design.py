"""The design criterion of measurement steering: which goniometer orientation to measure next.

Model of a measurement. A folded pixel (q, E) of an orientation o holds the sum of the counts of
the 4D bins that land there. With the simulator's convention (:mod:`fcinv.experiment.simulate`)
a 4D bin of exposure w measured for a time t at a count rate r collects Poisson counts of mean
r·t·w·(s·S + b), where S is the coherent one-phonon intensity (mbarn/meV per atom), s the
instrument scale (1/S̄ in the simulator: intensity 1 = the mean one-phonon intensity) and b the
flat background. Summed over the bins of a pixel,

    λ_o(q, E) = r·t_o·W_o(q, E)·(s·I_o(q, E; θ) + b),

with W_o = Σ w over the pixel's bins (:attr:`fcinv.forward.physical.Coverage.weight_sum`) and I_o
the physical model's fold with that orientation's coverage (:class:`~fcinv.forward.PhysicalModel`).

Fisher information. For Poisson counts, the information on x = (θ, s, b) of orientation o is

    F_o = Σ_pixels r·t_o·W_o · ∇y ∇yᵀ / y,   y = s·I_o + b,   ∇y = (s ∂I_o/∂θ, I_o, 1),

with ∂I_o/∂θ by central differences of ``PhysicalModel.spectra`` at the current θ (one batched call of
2k + 1 spectra per orientation; measured cost in ``docs/steering.md``). Orientations are
independent, so the information of a set of orientations is the sum of theirs; scale and
background are shared nuisance parameters (they are fitted), so the uncertainty on θ is the
marginal one, from the full inverse. The current posterior is Gaussian with precision

    P = P_prior + Σ_{measured o} F_o,

P_prior = diag(1/σ_prior²) on θ (the fit's training-domain prior, :func:`fcinv.fitting.priors.build_prior`;
or the ML/refined answer's σ when one is given) and a vanishing one on s and b.

Criterion (on the named parameters S, default FC0–FC3). ``"D"`` (default): the expected
information gain of measuring c,

    gain_D(c) = ½ [log det Σ_SS(P) − log det Σ_SS(P + F_c)]   (nats),

which for a linear-Gaussian model is exactly the expected Kullback–Leibler information gain on the
marginal posterior of S (D_s-optimal design). ``"A"``: the mean relative variance reduction,
gain_A(c) = mean_i [1 − Σ_ii(P + F_c)/Σ_ii(P)] over i in S. Both are computed for every candidate
in one batched solve; a candidate that repeats coverage already measured adds information only
along directions already constrained and gains little; one covering a segment nothing has
measured gains much.

Forecast and stop rule. :func:`forecast` measures greedily (the best candidate at each step,
repeats allowed) and records the predicted σ of S against beam time. :func:`stop_advice` says stop
when every σ of S is at or below its target, or when the next hour of greedy measurement is
predicted to shrink the largest σ/σ_now by less than a given fraction.

Approximations: the Jacobian is taken at the current θ (linearisation; recompute after the answer
moves); the pipeline's fit scales its covariance by χ²/dof (1 for a model that explains the data);
multiphonon and other unmodelled scattering is not in the information.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fcinv.errors import FcinvError

log = logging.getLogger(__name__)

Criterion = Literal["D", "A"]
#: Precision given to the scale and background when nothing constrains them (relative units).
_NUISANCE_PRECISION = 1e-8


class SteeringError(FcinvError):
    """Bad input to measurement steering (candidates, counting time, targets, criterion)."""


# ----------------------------------------------------------------------------- candidates
@dataclass(eq=False)
class OrientationInfo:
    """What one goniometer orientation measures, linearised at one θ.

    Attributes
    ----------
    psi
        Goniometer angle, degrees.
    exposure
        Shape (n_pix,) float64: W_o = Σ w of the covered pixels (exposure per unit rate and time).
    pixels
        Shape (n_pix,) int64: flat indices into the (n_q, n_E) grid of the covered pixels.
    intensity
        Shape (n_pix,) float64, mbarn/meV: I_o(θ) at the linearisation point.
    jacobian
        Shape (n_pix, k) float64, mbarn/meV per eV/Å²: ∂I_o/∂θ there.
    theta
        Shape (k,) float64, eV/Å²: the linearisation point.
    """

    psi: float
    exposure: np.ndarray
    pixels: np.ndarray
    intensity: np.ndarray
    jacobian: np.ndarray
    theta: np.ndarray

    @property
    def covered_fraction_pixels(self) -> int:
        """Number of covered (q, E) pixels."""
        return int(len(self.pixels))

    def fisher(self, *, scale: float, background: float, rate_time: float) -> np.ndarray:
        """Poisson Fisher information on (θ, s, b): shape (k + 2, k + 2).

        Parameters
        ----------
        scale
            s, counts-rate units per mbarn/meV (1/S̄ in the simulator).
        background
            b, in the same units as s·I.
        rate_time
            r·t: count rate (counts per minute in a bin of weight 1 at unit intensity) × minutes.
        """
        y = scale * self.intensity + background
        ok = y > 0
        g = np.concatenate(
            [scale * self.jacobian[ok], self.intensity[ok, None], np.ones((int(ok.sum()), 1))], axis=1
        )
        wts = rate_time * self.exposure[ok] / y[ok]
        return (g * wts[:, None]).T @ g


def _jacobian_steps(theta: np.ndarray, step: np.ndarray | float | None) -> np.ndarray:
    if step is None:
        return np.maximum(1e-3 * np.abs(theta), 1e-4)
    return np.broadcast_to(np.asarray(step, float), theta.shape).copy()


def linearise(model, theta, *, psi: float = float("nan"), step=None) -> OrientationInfo:
    """The :class:`OrientationInfo` of a physical model built on one orientation's coverage.

    Parameters
    ----------
    model
        A :class:`fcinv.forward.PhysicalModel` (no fold corrections: raw intensities) whose coverage is
        that of the orientation (:func:`fcinv.forward.coverage_for_run` with one angle, or
        :func:`fcinv.forward.coverage_from_fold` of its volume).
    theta
        Shape (k,) eV/Å², in ``model.names`` order.
    step
        Central-difference steps (eV/Å², scalar or (k,)); default max(1e-3|θ|, 1e-4).
    """
    t = np.asarray(theta, float).ravel()
    if t.shape != (model.k,):
        raise SteeringError(
            f"theta has {t.size} values; the model varies {model.k} ({model.names}). Pass one value per name."
        )
    if getattr(model, "corrections", None) is not None:
        raise SteeringError(
            "the steering model must predict raw intensities (corrections=None); the counts are Poisson "
            "there."
        )
    h = _jacobian_steps(t, step)
    X = np.vstack([t[None], t[None] + np.diag(h), t[None] - np.diag(h)])
    imgs = model.spectra(X).astype(np.float64).reshape(len(X), -1)
    wsum = model.coverage.weight_sum.ravel()
    pix = np.flatnonzero(wsum > 0)
    k = len(t)
    jac = ((imgs[1 : k + 1] - imgs[k + 1 :]) / (2 * h[:, None])).T
    return OrientationInfo(
        psi=float(psi), exposure=wsum[pix], pixels=pix, intensity=imgs[0, pix], jacobian=jac[pix], theta=t
    )


# ------------------------------------------------------------------------------ posterior
@dataclass(eq=False)
class Posterior:
    """Gaussian state of knowledge on (θ, s, b) as a precision matrix.

    Attributes
    ----------
    names
        The k parameter names of θ.
    theta
        Shape (k,) eV/Å²: the current answer (linearisation point).
    precision
        Shape (k + 2, k + 2): P = P_prior + Σ F_o.
    scale, background
        The current s and b (count-rate units).
    """

    names: tuple[str, ...]
    theta: np.ndarray
    precision: np.ndarray
    scale: float
    background: float
    history: list = field(default_factory=list)

    @classmethod
    def from_prior(
        cls, names: Sequence[str], theta, prior_sigma, *, scale: float, background: float
    ) -> Posterior:
        """Start from independent Gaussian σ on θ (training domain, or an answer's σ)."""
        t = np.asarray(theta, float).ravel()
        s = np.asarray(prior_sigma, float).ravel()
        if t.shape != (len(names),) or s.shape != t.shape:
            raise SteeringError(
                f"{len(names)} names but theta {t.shape} and sigma {s.shape}. Pass one value and one σ per "
                "name."
            )
        if not np.all(np.isfinite(s) & (s > 0)):
            raise SteeringError(
                f"prior σ must be finite and > 0; got {s.tolist()}. Pass the answer's σ or the training "
                "domain."
            )
        if not (np.isfinite(scale) and scale > 0 and np.isfinite(background) and background >= 0):
            raise SteeringError(
                f"scale = {scale}, background = {background}; pass a scale > 0 and a background >= 0."
            )
        k = len(t)
        P = np.zeros((k + 2, k + 2))
        P[:k, :k] = np.diag(1.0 / s**2)
        P[k, k] = _NUISANCE_PRECISION / scale**2
        P[k + 1, k + 1] = _NUISANCE_PRECISION / max(background, 1e-3) ** 2
        return cls(tuple(names), t, P, float(scale), float(background))

    @property
    def k(self) -> int:
        return len(self.names)

    def index(self, names: Sequence[str] | None) -> np.ndarray:
        """Rows of ``names`` (default: the first four, FC0–FC3)."""
        if names is None:
            return np.arange(min(4, self.k))
        bad = [n for n in names if n not in self.names]
        if bad:
            raise SteeringError(
                f"parameters {bad} are not in the model's {list(self.names)}. Name parameters it varies."
            )
        return np.array([self.names.index(n) for n in names])

    def covariance(self, extra: np.ndarray | None = None) -> np.ndarray:
        """Covariance of (θ, s, b), shape (k + 2, k + 2)."""
        P = self.precision if extra is None else self.precision + extra
        return np.linalg.inv(P)

    def sigma(self, names: Sequence[str] | None = None, extra: np.ndarray | None = None) -> np.ndarray:
        """Marginal σ of ``names`` (eV/Å²), shape (|S|,)."""
        return np.sqrt(np.diag(self.covariance(extra))[self.index(names)])

    def add(self, info: OrientationInfo, *, rate_time: float) -> None:
        """Add the information of a measured orientation."""
        self.precision = self.precision + info.fisher(
            scale=self.scale, background=self.background, rate_time=rate_time
        )
        self.history.append(info.psi)


# ------------------------------------------------------------------------------- ranking
def _sub_cov(P: np.ndarray, sel: np.ndarray) -> np.ndarray:
    C = np.linalg.inv(P)
    return C[np.ix_(sel, sel)]


def gains(
    post: Posterior, fishers: np.ndarray, *, names: Sequence[str] | None = None, criterion: Criterion = "D"
) -> np.ndarray:
    """The criterion's gain of each candidate information matrix, shape (n_cand,).

    Parameters
    ----------
    fishers
        Shape (n_cand, k + 2, k + 2): each candidate's Fisher information (its counting time included).
    """
    if criterion not in ("D", "A"):
        raise SteeringError(
            f"criterion = {criterion!r}; pass 'D' (expected information gain) or 'A' (mean variance "
            "reduction)."
        )
    sel = post.index(names)
    F = np.asarray(fishers, float)
    if F.ndim != 3 or F.shape[1:] != post.precision.shape:
        raise SteeringError(
            f"candidate information has shape {F.shape}; expected (n, {post.k + 2}, {post.k + 2})."
        )
    C0 = _sub_cov(post.precision, sel)
    Cn = np.linalg.inv(post.precision[None] + F)[:, sel][:, :, sel]
    if criterion == "D":
        _, ld0 = np.linalg.slogdet(C0)
        _, ldn = np.linalg.slogdet(Cn)
        return 0.5 * (ld0 - ldn)
    v0 = np.diag(C0)
    vn = np.diagonal(Cn, axis1=1, axis2=2)
    return np.mean(1.0 - vn / v0[None], axis=1)


@dataclass
class Ranking:
    """Candidates ranked by the criterion (best first)."""

    psi: np.ndarray
    gain: np.ndarray
    sigma_after: np.ndarray
    sigma_now: np.ndarray
    names: tuple[str, ...]
    criterion: str
    counting_time: float

    def rows(self, n: int | None = None) -> list[dict]:
        out = []
        for i in range(len(self.psi) if n is None else min(n, len(self.psi))):
            out.append(
                {
                    "rank": i + 1,
                    "psi_deg": float(self.psi[i]),
                    "gain": float(self.gain[i]),
                    "sigma_after": dict(zip(self.names, self.sigma_after[i].tolist())),
                }
            )
        return out


def rank(
    post: Posterior,
    candidates: Sequence[OrientationInfo],
    *,
    rate_time: float,
    names: Sequence[str] | None = None,
    criterion: Criterion = "D",
) -> Ranking:
    """Rank candidate orientations by the criterion's gain for one counting time each (``rate_time``: r·t)."""
    if not candidates:
        raise SteeringError(
            "no candidate orientations; pass a goniometer range (start, stop, step) or a list of angles."
        )
    if not (np.isfinite(rate_time) and rate_time > 0):
        raise SteeringError(
            f"rate × counting time = {rate_time}; pass a positive count rate and counting time."
        )
    F = np.stack(
        [c.fisher(scale=post.scale, background=post.background, rate_time=rate_time) for c in candidates]
    )
    g = gains(post, F, names=names, criterion=criterion)
    sel = post.index(names)
    Cn = np.linalg.inv(post.precision[None] + F)
    sig_after = np.sqrt(np.diagonal(Cn, axis1=1, axis2=2)[:, sel])
    order = np.argsort(-g, kind="stable")
    sel_names = tuple(post.names[i] for i in sel)
    return Ranking(
        psi=np.array([candidates[i].psi for i in order]),
        gain=g[order],
        sigma_after=sig_after[order],
        sigma_now=post.sigma(names),
        names=sel_names,
        criterion=criterion,
        counting_time=float("nan"),
    )


# ------------------------------------------------------------------------------ forecast
@dataclass
class Forecast:
    """Predicted σ of the named parameters against beam time."""

    minutes: np.ndarray
    sigma: np.ndarray
    psi: np.ndarray
    names: tuple[str, ...]
    strategy: str

    def time_to(self, target: np.ndarray) -> float:
        """First beam time (minutes) at which every σ is at or below ``target`` (inf if never)."""
        ok = np.all(self.sigma <= np.asarray(target)[None], axis=1)
        return float(self.minutes[np.argmax(ok)]) if ok.any() else float("inf")


def forecast(
    post: Posterior,
    candidates: Sequence[OrientationInfo],
    *,
    rate_time: float,
    minutes_per: float,
    n_steps: int,
    names: Sequence[str] | None = None,
    criterion: Criterion = "D",
    order: Sequence[int] | None = None,
) -> Forecast:
    """σ of ``names`` against beam time: greedy by the criterion, or measuring ``order`` (candidate indices).

    The posterior is not changed. ``minutes_per`` is the counting time of one orientation
    (``rate_time`` = rate × minutes_per).
    """
    P = post.precision.copy()
    sel = post.index(names)
    F = np.stack(
        [c.fisher(scale=post.scale, background=post.background, rate_time=rate_time) for c in candidates]
    )
    work = Posterior(post.names, post.theta, P, post.scale, post.background)
    mins, sig, psi = [0.0], [np.sqrt(np.diag(np.linalg.inv(P))[sel])], [np.nan]
    for step in range(n_steps):
        if order is None:
            j = int(np.argmax(gains(work, F, names=names, criterion=criterion)))
        else:
            j = int(order[step % len(order)])
        work.precision = work.precision + F[j]
        mins.append((step + 1) * minutes_per)
        sig.append(np.sqrt(np.diag(np.linalg.inv(work.precision))[sel]))
        psi.append(candidates[j].psi)
    return Forecast(
        np.array(mins),
        np.array(sig),
        np.array(psi),
        tuple(post.names[i] for i in sel),
        "adaptive (greedy " + criterion + ")" if order is None else "given order",
    )


def stop_advice(
    post: Posterior, fc: Forecast, *, target: np.ndarray | None, min_gain_per_hour: float = 0.05
) -> dict:
    """Stop when the σ target is reached, or the next hour shrinks max σ/σ_now by < ``min_gain_per_hour``.

    ``fc`` must be a greedy forecast from ``post``. Returns a JSON-able dict with ``stop`` (bool) and
    ``reason``.
    """
    if not (0 <= min_gain_per_hour < 1):
        raise SteeringError(f"min_gain_per_hour = {min_gain_per_hour}; pass a fraction in [0, 1), e.g. 0.05.")
    now = fc.sigma[0]
    hour = fc.sigma[np.searchsorted(fc.minutes, min(60.0, fc.minutes[-1]), side="left")]
    gain_hour = float(1.0 - np.max(hour / now))
    out: dict = {
        "sigma_now": dict(zip(fc.names, now.tolist())),
        "sigma_after_next_hour": dict(zip(fc.names, hour.tolist())),
        "gain_next_hour": gain_hour,
        "min_gain_per_hour": min_gain_per_hour,
    }
    if target is not None:
        tgt = np.broadcast_to(np.asarray(target, float), now.shape)
        out["target"] = dict(zip(fc.names, tgt.tolist()))
        if np.all(now <= tgt):
            return {**out, "stop": True, "reason": "σ target reached on " + ", ".join(fc.names)}
        out["minutes_to_target"] = fc.time_to(tgt)
    if fc.minutes[-1] < 60.0:
        out["note"] = f"forecast covers {fc.minutes[-1]:g} min only"
    if gain_hour < min_gain_per_hour:
        return {
            **out,
            "stop": True,
            "reason": f"the next hour shrinks the largest σ by {100 * gain_hour:.1f} % "
            f"< {100 * min_gain_per_hour:g} %",
        }
    return {
        **out,
        "stop": False,
        "reason": "keep measuring: target not reached and the next hour still gains",
    }
