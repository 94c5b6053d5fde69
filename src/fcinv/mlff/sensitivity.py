"""θ of the ensemble members, their bounds, the reference member and the sensitivity ranking.

Reference member
    The stable member whose frequencies at the reported high-symmetry points (all
    branches; Ge: Γ, X, L; Nb: H, N, P) are closest, in root-mean-square, to the
    ensemble median of those frequencies (median over the stable members, point by point
    and branch by branch). It is the most typical member, so the parameters that are not
    sampled sit at a value no member disagrees with more than necessary.

Sensitivity of parameter p
    With every other parameter at the reference member's value (and the reference
    member's full force-constant set behind the forward model, so shells beyond the
    cutoff are kept), the broadened I(q, E) image on the material's default grid is
    differentiated with respect to θ_p (central difference, step 1 % of the ensemble
    range) and scaled by that range:

        S_p = (θ_p,max − θ_p,min) · rms_{q,E}[∂I/∂θ_p] / rms_{q,E}[I(θ_ref)]

    i.e. the rms change of the image, relative to the image, that moving θ_p across its
    ensemble range produces to first order (dimensionless). The first-order measure is
    used because the finite move saturates: once a branch shifts by more than the
    energy resolution, the difference of the two images stops growing (Ge: 1NN_xy shifts
    the branches by 12 meV rms and 3NN_xx by 2 meV, yet both move the image by ~100 %),
    and a move that turns modes imaginary removes their intensity. The finite move is
    reported beside it: ``S_range`` = rms[I(θ_p = max) − I(θ_p = min)] / rms[I(θ_ref)], and
    in frequency terms the rms and largest absolute change of the phonon energies over
    the path's bins and branches between the two ends (meV and THz), with a flag when an
    end has imaginary modes. Parameters are ranked by decreasing S_p; the top k are
    sampled (FC0…FC{k-1}).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fcinv.errors import FcinvError
from fcinv.forward.model import STABILITY_TOL_MEV
from fcinv.units import THZ_TO_MEV

log = logging.getLogger(__name__)

#: The image-change measure, stated once (stored in ensemble.json).
SENSITIVITY_MEASURE = (
    "S_p = (theta_p ensemble max - min) * rms over (q, E) of dI/dtheta_p / rms of I(theta_ref), dI/dtheta_p by central "
    "difference (step 1% of the range) at the reference member's theta with every other parameter fixed; default grid "
    "and broadening of the material. Also reported: S_range = rms[I(theta_p = max) - I(theta_p = min)] / rms[I(theta_ref)] "
    "and the rms / largest change of the path energies between those two ends"
)
#: Central-difference step, as a fraction of the ensemble range.
FD_STEP = 0.01
#: Step used for a parameter whose ensemble range is zero, eV/Å².
FD_STEP_MIN = 1e-6


class EnsembleError(FcinvError):
    """The ensemble has too few usable (stable) members for the requested step."""


def choose_reference(points: dict[str, dict[str, list[float]]]) -> tuple[str, dict[str, float]]:
    """The member closest to the ensemble median frequencies.

    Parameters
    ----------
    points
        Member name → {point label → frequencies (THz, sorted)}, stable members only.

    Returns
    -------
    name, distances
        The chosen member and every member's rms distance (THz) to the median.
    """
    if not points:
        raise EnsembleError(
            "no stable ensemble member to choose a reference from. Run more members or use a larger supercell."
        )
    names = list(points)
    labels = list(next(iter(points.values())))
    mat = np.array([np.concatenate([np.asarray(points[n][lab], float) for lab in labels]) for n in names])
    median = np.median(mat, axis=0)
    dist = np.sqrt(np.mean((mat - median) ** 2, axis=1))
    best = names[int(np.argmin(dist))]
    return best, {n: float(d) for n, d in zip(names, dist)}


def ensemble_bounds(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-parameter min and max over the members: ``theta`` shape (n_members, n_params), eV/Å²."""
    theta = np.asarray(theta, float)
    if theta.ndim != 2 or len(theta) == 0:
        raise EnsembleError(f"ensemble theta has shape {theta.shape}; need (n_members >= 1, n_params).")
    return theta.min(axis=0), theta.max(axis=0)


@dataclass(frozen=True)
class Sensitivity:
    """Sensitivity of the spectrum to each parameter over its ensemble range.

    Attributes
    ----------
    names
        All parameter names, in the space's order.
    image
        Shape (n_params,): S_p, first order (dimensionless), see the module docstring.
    image_range
        Shape (n_params,): S_range, the finite move from min to max (dimensionless).
    freq_rms_mev, freq_max_mev
        Shape (n_params,): rms and largest |Δ energy| over the path, meV.
    lower, upper
        Shape (n_params,): the range each parameter was moved over, eV/Å².
    unstable
        Names of parameters whose move produced imaginary modes on the path at either end.
    """

    names: list[str]
    image: np.ndarray
    image_range: np.ndarray
    freq_rms_mev: np.ndarray
    freq_max_mev: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    unstable: list[str]

    @property
    def ranking(self) -> list[str]:
        """Names by decreasing S_p (ties broken by the frequency measure, then by name order)."""
        order = sorted(
            range(len(self.names)), key=lambda p: (-float(self.image[p]), -float(self.freq_rms_mev[p]), p)
        )
        return [self.names[p] for p in order]

    def top(self, k: int) -> list[str]:
        """The k most sensitive parameters, most sensitive first."""
        if not 1 <= k <= len(self.names):
            raise EnsembleError(
                f"top_k={k}; the space has {len(self.names)} parameters. Pass 1 <= k <= {len(self.names)}."
            )
        return self.ranking[:k]

    def rows(self) -> list[dict]:
        """One JSON-able row per parameter, in ranking order."""
        idx = {n: p for p, n in enumerate(self.names)}
        out = []
        for rank, n in enumerate(self.ranking):
            p = idx[n]
            out.append(
                {
                    "rank": rank,
                    "name": n,
                    "S_image": float(self.image[p]),
                    "S_range": float(self.image_range[p]),
                    "freq_rms_meV": float(self.freq_rms_mev[p]),
                    "freq_max_meV": float(self.freq_max_mev[p]),
                    "freq_rms_THz": float(self.freq_rms_mev[p] / THZ_TO_MEV),
                    "freq_max_THz": float(self.freq_max_mev[p] / THZ_TO_MEV),
                    "lower": float(self.lower[p]),
                    "upper": float(self.upper[p]),
                    "unstable_at_an_end": n in self.unstable,
                }
            )
        return out


def sensitivity(model, lower: np.ndarray, upper: np.ndarray) -> Sensitivity:
    """Move each parameter alone over [lower, upper] and measure the change of I(q, E).

    Parameters
    ----------
    model
        A :class:`fcinv.forward.ForwardModel` with every parameter free and ``theta_ref`` the
        reference member's θ.
    lower, upper
        Shape (n_params,), eV/Å²: ensemble bounds.
    """
    names = list(model.names)
    n = len(names)
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    if lower.shape != (n,) or upper.shape != (n,):
        raise EnsembleError(
            f"bounds have shapes {lower.shape}, {upper.shape}; the model varies {n} parameters. Pass one bound per parameter."
        )
    t0 = model.theta0
    span = upper - lower
    step = np.maximum(FD_STEP * span, FD_STEP_MIN)
    eye = np.eye(n)
    batch = np.concatenate(
        [
            t0 + step[:, None] * eye,
            t0 - step[:, None] * eye,
            np.where(eye > 0, lower[None], t0),
            np.where(eye > 0, upper[None], t0),
            t0[None],
        ]
    )
    spectra, freqs = model.spectra(batch, return_frequencies=True)
    spectra = spectra.astype(np.float64)
    plus, minus, at_lo, at_hi, ref = (
        spectra[:n],
        spectra[n : 2 * n],
        spectra[2 * n : 3 * n],
        spectra[3 * n : 4 * n],
        spectra[-1],
    )
    f_lo, f_hi = freqs[2 * n : 3 * n], freqs[3 * n : 4 * n]
    ref_rms = float(np.sqrt(np.mean(ref**2)))
    deriv = (plus - minus) / (2 * step[:, None, None])
    image = span * np.sqrt(np.mean(deriv**2, axis=(1, 2))) / ref_rms
    image_range = np.sqrt(np.mean((at_hi - at_lo) ** 2, axis=(1, 2))) / ref_rms
    df = f_hi - f_lo
    f_rms = np.sqrt(np.mean(df**2, axis=(1, 2)))
    f_max = np.abs(df).max(axis=(1, 2))
    unstable = [names[p] for p in range(n) if min(f_lo[p].min(), f_hi[p].min()) < -STABILITY_TOL_MEV]
    return Sensitivity(
        names=names,
        image=image,
        image_range=image_range,
        freq_rms_mev=f_rms,
        freq_max_mev=f_max,
        lower=lower,
        upper=upper,
        unstable=unstable,
    )


__all__ = [
    "SENSITIVITY_MEASURE",
    "EnsembleError",
    "Sensitivity",
    "choose_reference",
    "ensemble_bounds",
    "sensitivity",
]
