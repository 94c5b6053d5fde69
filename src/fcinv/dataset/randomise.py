"""Domain randomisation of training spectra over what changes between measurements.

One model should serve any ARCS-like run of a crystal, so a measurement-like
training set draws, besides θ, the conditions of the measurement:

=====================  ==============================================  ==================
condition              drawn as                                         per
=====================  ==============================================  ==================
``temperature_K``      uniform in ``temperature_K`` (default 5–300 K)   group of samples
``fwhm_scale``         uniform in ``fwhm_scale`` (default 0.8–1.25),    group of samples
                       multiplies the material's resolution FWHM(E)
``coverage_id``        uniform over the coverages given (index into     group of samples
                       ``meta["coverages"]``: full runs, single
                       orientations, ...)
``background``         B uniform in ``background`` (default 0–0.3 of    sample
                       the peak; see ``background_shape``)
``counts_scale``       P log-uniform in ``counts_scale`` (default       sample
                       30–10⁴ counts at the peak)
=====================  ==============================================  ==================

A fraction ``clean_fraction`` of the groups is *clean*: coverage 0 (the first
one), the lowest temperature (the first level of a palette), ``fwhm_scale`` 1, B = 0 and
P = ∞, so the set keeps noise-free, fully covered examples. ``measured_fraction``
(the share of finite pixels) is recorded too. The temperature, resolution and
coverage are drawn per *group* of ``group`` consecutive samples because a
physical forward model precomputes per measurement setting; B and P per sample.

``background_shape`` says what B is. ``"flat"`` (the default): a constant added to the
stored image. ``"fold"``: a flat background of the *raw* counts, as a real run has it, seen
through the fold's one-phonon corrections (Bose, ÷|Q|², ×E): the conditioner gives its image
G(q, E) per measurement setting (:meth:`PhysicalConditioner.background_image`, median 1 over
the measured pixels), and B is its median as a fraction of the clean peak. After ÷|Q|² the
low-|Q| images dominate G, so the background is far from flat (measured on the benchmark's
5 K, 120-orientation run of the DFT Ge set: max/median ≈ 60; docs/fidelity.md). With
``"fold"`` the counting noise is drawn in raw units too: counts ~ Poisson(P (I/G + B)), the
stored value G · counts / P, so the variance G (I + B G) / P grows where the corrections
amplify, as in a corrected fold. A constant in the stored image is removed by the min–max
preprocessing; a fold-shaped one is not, which is why the shipped ``ge`` model (trained with
``"flat"``) read the benchmark's corrected fold 47 % off on FC3 (docs/fidelity.md).

The spectrum stored for a sample is what a measurement would give after the
common preprocessing: the conditioned forward spectrum (NaN where the coverage
missed), counting noise and background by :func:`fcinv.noise.add_noise`
(``rescale=False``: counts/P, NaN kept), then
:func:`fcinv.dataset.preprocess.prepare_input` (min–max over measured pixels,
unmeasured → 0). All draws come from the generator's one RNG, in a fixed order,
so a set is deterministic for its seed and resumes exactly.

Forward objects are adapted by a *conditioner*: :class:`PaperConditioner` wraps
the paper's weight-1 :class:`fcinv.forward.ForwardModel` (temperature does not
enter it: recorded as NaN), :class:`PhysicalConditioner` wraps
``fcinv.forward.physical.PhysicalModel`` builds (one per coverage, temperature
and resolution set per group).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from fcinv.dataset.preprocess import prepare_input
from fcinv.errors import FcinvError

log = logging.getLogger(__name__)

#: Names and units of the per-sample conditions written to ``/conditions``.
CONDITION_UNITS = {
    "temperature_K": "K",
    "fwhm_scale": "1 (× the material's FWHM)",
    "coverage_id": "index into meta['coverages']",
    "background": "fraction of the clean peak (background_shape 'fold': the background image's median)",
    "counts_scale": "counts at the clean peak (inf: no counting noise)",
    "measured_fraction": "fraction of finite (measured) pixels",
    "clean": "1 for a clean sample (full coverage, no noise)",
}


#: What the drawn background B is (module docstring).
BACKGROUND_SHAPES = ("flat", "fold")


class RandomisationError(FcinvError):
    """A randomisation range or conditioner is malformed."""


def _range(name: str, r, *, positive: bool = False) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise RandomisationError(
            f"{name}={r!r} is not a (low, high) pair. Pass two numbers, e.g. {name}=(5, 300)."
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo or (positive and lo <= 0) or lo < 0:
        need = "0 < low <= high" if positive else "0 <= low <= high"
        raise RandomisationError(
            f"{name}=({lo:g}, {hi:g}) is not a valid range. Pass finite values with {need}."
        )
    return lo, hi


@dataclass(frozen=True)
class Randomisation:
    """Ranges of the measurement conditions (see the module docstring).

    Parameters
    ----------
    temperature_K
        (low, high) sample temperature, K.
    fwhm_scale
        (low, high) factor on the resolution FWHM.
    background
        (low, high) constant background B, fraction of the clean peak.
    counts_scale
        (low, high) counts P at the clean peak, drawn log-uniform.
    clean_fraction
        Fraction of groups that are clean (coverage 0, lowest T, FWHM × 1, no noise).
    group
        Samples that share one (temperature, resolution, coverage) setting.
    temperature_levels, fwhm_levels
        Optional discrete palettes: draw the temperature (the FWHM factor) uniformly from
        these values instead of the continuous range (a physical model precomputes per
        setting, so a palette bounds the number of builds). They must lie in the ranges.
    background_shape
        ``"flat"`` (a constant in the stored image) or ``"fold"`` (a flat raw background through
        the fold's corrections, with counting noise in raw units; module docstring). ``"fold"``
        needs a conditioner with ``background_image`` (:class:`PhysicalConditioner`).
    """

    temperature_K: tuple[float, float] = (5.0, 300.0)
    fwhm_scale: tuple[float, float] = (0.8, 1.25)
    background: tuple[float, float] = (0.0, 0.3)
    counts_scale: tuple[float, float] = (30.0, 1e4)
    clean_fraction: float = 0.1
    group: int = 25
    temperature_levels: tuple[float, ...] | None = None
    fwhm_levels: tuple[float, ...] | None = None
    background_shape: str = "flat"

    def __post_init__(self) -> None:
        if self.background_shape not in BACKGROUND_SHAPES:
            raise RandomisationError(
                f"background_shape={self.background_shape!r} is not known. Pass one of {', '.join(BACKGROUND_SHAPES)}."
            )
        object.__setattr__(self, "temperature_K", _range("temperature_K", self.temperature_K, positive=True))
        object.__setattr__(self, "fwhm_scale", _range("fwhm_scale", self.fwhm_scale, positive=True))
        object.__setattr__(self, "background", _range("background", self.background))
        object.__setattr__(self, "counts_scale", _range("counts_scale", self.counts_scale, positive=True))
        if not 0 <= self.clean_fraction <= 1:
            raise RandomisationError(
                f"clean_fraction={self.clean_fraction} is outside [0, 1]. Pass the share of clean groups, e.g. 0.1."
            )
        if int(self.group) != self.group or self.group < 1:
            raise RandomisationError(
                f"group={self.group} must be a positive integer (samples per measurement setting)."
            )
        for name, levels, (lo, hi) in (
            ("temperature_levels", self.temperature_levels, self.temperature_K),
            ("fwhm_levels", self.fwhm_levels, self.fwhm_scale),
        ):
            if levels is None:
                continue
            lv = tuple(float(v) for v in levels)
            if not lv or any(not lo <= v <= hi for v in lv):
                raise RandomisationError(
                    f"{name}={lv} must be non-empty and inside its range [{lo:g}, {hi:g}]. Pass values in the range."
                )
            object.__setattr__(self, name, lv)

    def draw(self, m: int, n_coverages: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Conditions of ``m`` consecutive samples (groups of :attr:`group`), shape (m,) each."""
        if n_coverages < 1:
            raise RandomisationError(
                "no coverage to draw from. Pass at least one coverage (e.g. full coverage)."
            )
        n_groups = -(-m // self.group)
        clean_g = rng.random(n_groups) < self.clean_fraction
        t_g = rng.uniform(*self.temperature_K, n_groups)
        s_g = rng.uniform(*self.fwhm_scale, n_groups)
        if self.temperature_levels is not None:
            t_g = np.asarray(self.temperature_levels)[rng.integers(0, len(self.temperature_levels), n_groups)]
        if self.fwhm_levels is not None:
            s_g = np.asarray(self.fwhm_levels)[rng.integers(0, len(self.fwhm_levels), n_groups)]
        c_g = rng.integers(0, n_coverages, n_groups)
        t_g = np.where(
            clean_g, self.temperature_levels[0] if self.temperature_levels else self.temperature_K[0], t_g
        )
        s_g = np.where(
            clean_g, 1.0 if self.fwhm_scale[0] <= 1.0 <= self.fwhm_scale[1] else self.fwhm_scale[0], s_g
        )
        c_g = np.where(clean_g, 0, c_g)
        b = rng.uniform(*self.background, m)
        lp = np.log10(self.counts_scale)
        p = 10.0 ** rng.uniform(lp[0], lp[1], m)
        rep = np.repeat(np.arange(n_groups), self.group)[:m]
        clean = clean_g[rep]
        return {
            "temperature_K": t_g[rep],
            "fwhm_scale": s_g[rep],
            "coverage_id": c_g[rep].astype(float),
            "background": np.where(clean, 0.0, b),
            "counts_scale": np.where(clean, np.inf, p),
            "clean": clean.astype(float),
        }

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in asdict(self).items()}


class Conditioner(Protocol):
    """A forward model that gives spectra under given measurement conditions."""

    names: list[str]
    coverages: list[str]
    uses_temperature: bool

    def is_stable(self, theta: np.ndarray) -> np.ndarray: ...

    def spectra_under(
        self, theta: np.ndarray, temperature_K: float, fwhm_scale: float, coverage_id: int
    ) -> np.ndarray:
        """(m, n_q, n_E) spectra, NaN where unmeasured."""
        ...

    def describe(self) -> dict: ...


class PaperConditioner:
    """The paper's weight-1 forward model under varied resolution and coverage masks.

    Parameters
    ----------
    model
        A :class:`fcinv.forward.ForwardModel` (or anything with ``spectra``,
        ``is_stable``, ``names`` and a ``broadening`` attribute).
    masks
        Optional ``{name: bool array (n_q, n_E)}``, True where measured; the first entry
        should be full coverage. Default: one full coverage.
    """

    uses_temperature = False

    def __init__(self, model, masks: dict[str, np.ndarray] | None = None):
        self.model = model
        self.grid = model.grid
        self.names = list(model.names)
        shape = tuple(model.grid.shape)
        masks = dict(masks or {"full": np.ones(shape, bool)})
        for k, v in masks.items():
            if np.shape(v) != shape:
                raise RandomisationError(
                    f"coverage mask '{k}' has shape {np.shape(v)}; the grid is {shape}. Pass one bool per (q, E) pixel."
                )
        self.masks = {k: np.asarray(v, bool) for k, v in masks.items()}
        self.coverages = list(self.masks)
        self._by_scale: dict[float, object] = {}

    def is_stable(self, theta):
        return self.model.is_stable(theta)

    def _scaled(self, s: float):
        key = round(float(s), 4)
        if key == 1.0:
            return self.model
        if key not in self._by_scale:
            from fcinv.forward import Broadening

            m = copy.copy(self.model)
            b = self.model.broadening
            m.broadening = Broadening(b.fwhm0 * key, b.fwhm1 * key, b.nsig)
            if len(self._by_scale) > 64:
                self._by_scale.clear()
            self._by_scale[key] = m
        return self._by_scale[key]

    def spectra_under(self, theta, temperature_K: float, fwhm_scale: float, coverage_id: int) -> np.ndarray:
        out = self._scaled(fwhm_scale).spectra(theta).astype(np.float64)
        mask = self.masks[self.coverages[int(coverage_id)]]
        out[:, ~mask] = np.nan
        return out

    def describe(self) -> dict:
        d = dict(self.model.describe())
        d["intensity"] = "paper"
        d["coverages"] = self.coverages
        return d


class PhysicalConditioner:
    """Physical forward models, one per coverage, with temperature and resolution set per group.

    Parameters
    ----------
    build
        ``build(coverage_name, temperature_K, fwhm_scale) -> model`` returning a forward
        object with ``spectra(theta) -> (m, n_q, n_E)`` (NaN where unmeasured) for that
        setting; it should cache what does not depend on the temperature and resolution.
    coverages
        Coverage names, the first normally full coverage.
    stability
        A forward object whose ``is_stable`` decides acceptance (e.g. the paper model
        on the same space: the same dynamical matrices).
    names
        Varied parameter names.
    description
        JSON-able description stored in the dataset.
    """

    uses_temperature = True

    def __init__(
        self, build: Callable, coverages: Sequence[str], stability, names: Sequence[str], description: dict
    ):
        if not coverages:
            raise RandomisationError("PhysicalConditioner needs at least one coverage name.")
        self.build = build
        self.grid = stability.grid
        self.coverages = list(coverages)
        self.stability = stability
        self.names = list(names)
        self.description = dict(description)

    def is_stable(self, theta):
        return self.stability.is_stable(theta)

    def spectra_under(self, theta, temperature_K: float, fwhm_scale: float, coverage_id: int) -> np.ndarray:
        model = self.build(self.coverages[int(coverage_id)], float(temperature_K), float(fwhm_scale))
        return np.asarray(model.spectra(theta), dtype=np.float64)

    def background_image(self, temperature_K: float, fwhm_scale: float, coverage_id: int) -> np.ndarray:
        """G(q, E): a flat raw background through the fold's corrections for that setting, median 1
        over the measured pixels, NaN where unmeasured (the built model's ``background``)."""
        model = self.build(self.coverages[int(coverage_id)], float(temperature_K), float(fwhm_scale))
        g = getattr(model, "background", None)
        if g is None:
            raise RandomisationError(
                "this conditioner's models give no background image. Use background_shape='flat'."
            )
        return np.asarray(g, dtype=np.float64)

    def describe(self) -> dict:
        d = dict(self.description)
        d["intensity"] = "physical"
        d["coverages"] = self.coverages
        return d


def fold_noise(
    spectra: np.ndarray,
    shape: np.ndarray,
    background: np.ndarray,
    counts_scale: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """A corrected fold's background and counting noise (``background_shape="fold"``).

    Parameters
    ----------
    spectra
        Shape (m, n_q, n_E): clean spectra of the corrected fold, NaN where unmeasured (min–max
        scaled here, I in [0, 1]).
    shape
        Same shape: G, the corrected image of a flat raw background (median 1 where measured).
    background, counts_scale
        Shape (m,): B (median of B·G as a fraction of the clean peak) and P (counts at the clean
        peak where G = 1; ``inf``: no counting noise).
    rng
        Source of the Poisson draws (one call).

    Returns
    -------
    numpy.ndarray
        Shape (m, n_q, n_E) float64: I + B·G without noise, G · Poisson(P (I/G + B)) / P with it;
        NaN where unmeasured; I where G is not positive (no background, no noise there).
    """
    x = np.asarray(spectra, dtype=np.float64)
    gshape = np.asarray(shape, dtype=np.float64)
    if gshape.shape != x.shape:
        raise RandomisationError(
            f"background image shape {gshape.shape} differs from the spectra's {x.shape}. Pass one per spectrum."
        )
    b = np.asarray(background, float).reshape(-1, 1, 1)
    p = np.asarray(counts_scale, float).reshape(-1, 1, 1)
    if np.any(~np.isfinite(b) | (b < 0)) or np.any(~(p > 0)):
        raise RandomisationError(
            "background B must be finite and >= 0 and counts P > 0 (inf: no noise). Check the ranges."
        )
    from fcinv.models.scaling import minmax_scale

    bad = ~np.isfinite(x)
    i = np.where(bad, 0.0, minmax_scale(x).astype(np.float64))
    flat = bad | ~np.isfinite(gshape) | ~(gshape > 0)  # G = 0 (E = 0 under ×E): no background, no noise
    gs = np.where(flat, 1.0, gshape)
    finite_p = np.isfinite(p)
    pp = np.where(finite_p, p, 1.0)
    lam = np.where(flat, 0.0, pp * (i / gs + b))
    counts = rng.poisson(lam).astype(np.float64)
    noisy = np.where(finite_p, gs * counts / pp, i + b * gs)
    noisy = np.where(flat, i, noisy)
    return np.where(bad, np.nan, noisy)


def measurement_like(
    conditioner: Conditioner, theta: np.ndarray, randomisation: Randomisation, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Measurement-like, preprocessed spectra of θ and their conditions.

    Parameters
    ----------
    conditioner
        The forward side (:class:`PaperConditioner` or :class:`PhysicalConditioner`).
    theta
        Shape (m, k), eV/Å², stable samples.
    randomisation
        The condition ranges.
    rng
        Draws the conditions and the counting noise (in that order).

    Returns
    -------
    spectra
        Shape (m, n_q, n_E) float32, :func:`~fcinv.dataset.preprocess.prepare_input` of the
        noisy spectra (0 where unmeasured).
    conditions
        Name → shape (m,) float64, see :data:`CONDITION_UNITS`.
    """
    from fcinv.noise import add_noise

    theta = np.atleast_2d(np.asarray(theta, float))
    m = len(theta)
    cond = randomisation.draw(m, len(conditioner.coverages), rng)
    raw = None
    g = randomisation.group
    for start in range(0, m, g):
        sl = slice(start, min(start + g, m))
        part = conditioner.spectra_under(
            theta[sl],
            cond["temperature_K"][start],
            cond["fwhm_scale"][start],
            int(cond["coverage_id"][start]),
        )
        if raw is None:
            raw = np.empty((m, *part.shape[1:]), np.float64)
        raw[sl] = part
    if randomisation.background_shape == "fold":
        if not hasattr(conditioner, "background_image"):
            raise RandomisationError(
                "background_shape='fold' needs a conditioner with background_image (the physical one). "
                "Use --intensity physical or background_shape='flat'."
            )
        shape = np.empty_like(raw)
        for start in range(0, m, g):
            shape[start : start + g] = conditioner.background_image(
                cond["temperature_K"][start], cond["fwhm_scale"][start], int(cond["coverage_id"][start])
            )
        noisy = fold_noise(raw, shape, cond["background"], cond["counts_scale"], rng)
    else:
        noisy = add_noise(raw, cond["background"], cond["counts_scale"], rng, rescale=False)
    cond["measured_fraction"] = np.isfinite(noisy).reshape(m, -1).mean(axis=1)
    if not conditioner.uses_temperature:
        cond["temperature_K"] = np.full(m, np.nan)
    return prepare_input(noisy), cond


__all__ = [
    "CONDITION_UNITS",
    "Conditioner",
    "PaperConditioner",
    "PhysicalConditioner",
    "Randomisation",
    "RandomisationError",
    "BACKGROUND_SHAPES",
    "fold_noise",
    "measurement_like",
]
