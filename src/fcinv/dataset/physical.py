"""Training sets with the physical intensities (``fcinv dataset --intensity physical``).

The spectra are those of :class:`fcinv.forward.physical.PhysicalModel`: the coherent
one-phonon intensity of the *folded measurement* with the structure factor at every
covered image, Debye–Waller, Bose and 1/ω at the sample temperature and the ARCS-like
instrument's energy-dependent resolution at the material's incident energy (:func:`ei_for`: Ge and
Nb 40 meV, a prepared material the ``ei_meV`` its material.json records), **predicted for a fold made with
``fcinv fold --one-phonon T``** (the corrections Bose T, ÷|Q|², ×E, T the sample
temperature): that is the input the shipped ``ge`` model expects.

Coverages (:data:`COVERAGES`, built once per process by
:func:`fcinv.forward.physical.coverage_for_run` from the instrument geometry, no S(Q, E)):

- ``run120``: a full run, 120 orientations ψ = 0…119° (the issue's simulated ARCS run);
- ``run30``: 30 orientations ψ = 0…29°;
- ``single0`` and ``single60``: one orientation, ψ = 0° and 60°;
- ``full``: every image of every zone with |Q| <= 8 Å⁻¹, weight 1 (an idealised fold).

With ``--randomise`` (:mod:`fcinv.dataset.randomise`) the temperature is drawn from
:data:`TEMPERATURE_LEVELS` (5–300 K) and the resolution factor from :data:`FWHM_LEVELS`, one
physical model being built (and cached) per (coverage, temperature, resolution) drawn;
without it every spectrum uses ``run120`` at the lowest temperature given.
Unmeasured pixels (no coverage) are NaN before preprocessing, i.e. 0 in the stored set.

Background (:func:`physical_randomisation`, ``background_shape="fold"`` of
:mod:`fcinv.dataset.randomise`): a real run's flat background in the raw counts is, after the
fold's corrections, f_j · Σ_t w_t / |Q_t|² / Σ_t w_t at each pixel (:func:`fold_background`),
computed per (coverage, temperature) from the same coverage and energy factor as the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from fcinv.errors import DataError

log = logging.getLogger(__name__)

#: Coverage name → goniometer angles ψ (degrees) of an ARCS-like run at :func:`ei_for` (None: full coverage).
COVERAGES: dict[str, tuple[float, ...] | None] = {
    "run120": tuple(float(x) for x in range(120)),
    "run30": tuple(float(x) for x in range(30)),
    "single0": (0.0,),
    "single60": (60.0,),
    "full": None,
}
#: The coverages drawn by default with --randomise (the first is the clean samples' one).
DEFAULT_COVERAGES = ("run120", "run30", "single0", "single60")
#: Temperatures (K) drawn with --randomise; the first is the clean samples' one.
TEMPERATURE_LEVELS = (5.0, 50.0, 150.0, 300.0)
#: Resolution factors drawn with --randomise (× the instrument FWHM(E)).
FWHM_LEVELS = (0.85, 1.0, 1.2)
#: B range of a fold-shaped background (the median of B·G as a fraction of the clean peak); the
#: benchmark's simulated runs of the DFT Ge set (background 0.1 of the mean one-phonon intensity)
#: lie at 0.018 (5 K, 120 orientations), docs/fidelity.md.
FOLD_BACKGROUND = (0.0, 0.1)
#: Incident energy of the training runs of a material whose material.json gives no ``ei_meV`` (Ge, Nb), meV.
EI_MEV = 40.0
#: A new material's incident energy: this many times its energy range's upper end (and at least
#: :data:`EI_MEV`), so that the highest modes lie well inside the kinematic range (Ef = Ei - E > 0
#: over the whole |Q| range of the path's zones): ``fcinv prepare`` writes it as ``ei_meV``.
EI_PER_E_MAX = 1.6


def ei_rule(e_max_meV: float) -> float:
    """The incident energy (meV) of a new material with energy range 0..``e_max_meV``:
    max(:data:`EI_MEV`, :data:`EI_PER_E_MAX` × ``e_max_meV``)."""
    return float(max(EI_MEV, EI_PER_E_MAX * float(e_max_meV)))


def ei_for(material: str) -> float:
    """The incident energy (meV) of ``material``'s physical training runs: ``ei_meV`` of its
    material.json, else :data:`EI_MEV` (the convention of the shipped Ge model)."""
    from fcinv.crystal import material_info

    ei = material_info(material).get("ei_meV")
    if ei is None:
        return EI_MEV
    ei = float(ei)
    if not (np.isfinite(ei) and ei > 0):
        raise DataError(f"ei_meV = {ei} in the material.json of {material}; write a positive energy in meV.")
    return ei


def _require_physical() -> None:
    import importlib.util

    if importlib.util.find_spec("fcinv.forward.physical") is None:
        raise DataError(
            "--intensity physical needs fcinv.forward.physical (the physical forward model), absent from this installation. Use --intensity paper."
        )


def _check_coverages(names: Sequence[str] | None) -> list[str]:
    names = list(names or DEFAULT_COVERAGES)
    bad = [n for n in names if n not in COVERAGES]
    if bad:
        raise DataError(f"unknown coverage {bad}. Known coverages: {', '.join(COVERAGES)}.")
    return names


@lru_cache(maxsize=8)
def _coverage(material: str, name: str, ei: float):
    from fcinv.crystal import Crystal, default_grid
    from fcinv.forward.physical import coverage_for_run, full_coverage

    crystal = Crystal.from_name(material)
    grid = default_grid(crystal)
    psi = COVERAGES[name]
    if psi is None:
        return full_coverage(crystal, grid)
    log.info("coverage %s of %s: %d orientations at Ei %g meV", name, material, len(psi), ei)
    return coverage_for_run(crystal, grid, ei=ei, psi=psi)


def physical_model(
    ref,
    names: Sequence[str],
    *,
    coverage: str = "run120",
    temperature_K: float = 5.0,
    fwhm_scale: float = 1.0,
    ei: float | None = None,
):
    """One :class:`~fcinv.forward.physical.PhysicalModel` of ``ref`` varying ``names``.

    Parameters
    ----------
    ref
        A :class:`fcinv.reference.MaterialReference` (its space, θ_ref and tail are used).
    names
        Varied parameters.
    coverage
        A name of :data:`COVERAGES`.
    temperature_K
        Sample temperature; the model predicts a fold corrected with ``--one-phonon temperature_K``.
    fwhm_scale
        Factor on the ARCS-like instrument's FWHM(E).
    ei
        Incident energy, meV (coverage and resolution); default :func:`ei_for` ``(ref.material)``.
    """
    from fcinv.experiment.fold import Corrections
    from fcinv.experiment.instrument import Instrument
    from fcinv.forward.physical import PhysicalModel

    _check_coverages([coverage])
    ei = ei_for(ref.material) if ei is None else float(ei)
    inst0 = Instrument(ei=ei)
    inst = Instrument(ei=ei, elastic_fwhm_fraction=inst0.elastic_fwhm_fraction * float(fwhm_scale))
    tail = ref.tail_for(list(names))
    return PhysicalModel(
        ref.space,
        _grid(ref.material),
        ref.theta_ref,
        reference=ref.pairs if tail == "reference" else None,
        free=list(names),
        coverage=_coverage(ref.material, coverage, ei),
        temperature=float(temperature_K),
        resolution=inst,
        corrections=Corrections(
            bose_temperature=float(temperature_K) if temperature_K > 0 else None, q2=True, energy=True
        ),
    )


def _grid(material: str):
    from fcinv.crystal import Crystal, default_grid

    return default_grid(Crystal.from_name(material))


def fold_background(coverage, energy_factor, crystal, *, q2: bool = True) -> np.ndarray:
    """The corrected fold of a flat raw background, median 1 over the measured pixels.

    Each 4D bin of a fold with ``--one-phonon T`` is divided by |Q|² and multiplied by the
    energy factor f_j (Bose, E) before the weighted sum over images and zones, so a background b
    flat in the raw counts becomes b · f_j · Σ_t w_t |Q_t|⁻² / Σ_t w_t per pixel (q, E).

    Parameters
    ----------
    coverage
        The :class:`fcinv.forward.coverage.Coverage` of the fold (terms, weights, Q_t).
    energy_factor
        Shape (n_E,): the corrections' f_j (the model's ``energy_factor``).
    crystal
        The :class:`fcinv.crystal.Crystal` (conventional lattice, for |Q| in Å⁻¹).
    q2
        Whether the fold divides by |Q|².

    Returns
    -------
    numpy.ndarray
        Shape (n_q, n_E) float64, NaN where unmeasured; its median over measured pixels with
        G > 0 is 1.
    """
    g = coverage.grid
    recip = 2.0 * np.pi * np.linalg.inv(np.asarray(crystal.conventional_lattice, float))  # columns b_i
    qabs = np.linalg.norm(coverage.hkl() @ recip.T, axis=1)
    inv_q2 = 1.0 / np.maximum(qabs, 1e-6) ** 2 if q2 else np.ones_like(qabs)
    n = g.n_q * g.n_e
    num, den = np.zeros(n), np.zeros(n)
    per = coverage.e_idx >= 0
    t = coverage.t_idx[per]
    cell = coverage.pixel[t] * g.n_e + coverage.e_idx[per]
    num += np.bincount(cell, weights=coverage.w[per] * inv_q2[t], minlength=n)
    den += np.bincount(cell, weights=coverage.w[per], minlength=n)
    num, den = num.reshape(g.shape), den.reshape(g.shape)
    if np.any(~per):  # entries for every energy bin
        t = coverage.t_idx[~per]
        pix = coverage.pixel[t]
        num += np.bincount(pix, weights=coverage.w[~per] * inv_q2[t], minlength=g.n_q)[:, None]
        den += np.bincount(pix, weights=coverage.w[~per], minlength=g.n_q)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / den, np.nan) * np.asarray(energy_factor, float)[None, :]
    pos = np.isfinite(out) & (out > 0)
    if not pos.any():
        raise DataError(
            "the coverage gives no positive background image. Check the coverage and corrections."
        )
    return out / float(np.median(out[pos]))


class _Masked:
    """A physical model whose spectra are NaN where its coverage measured nothing; ``background``
    is the setting's :func:`fold_background` (or None)."""

    def __init__(self, model, background: np.ndarray | None = None):
        self.model = model
        self.mask = np.asarray(model.mask, bool)
        self.background = None
        if background is not None:
            bg = np.array(background, dtype=np.float64)
            bg[~self.mask] = np.nan
            self.background = bg

    def spectra(self, theta):
        s = np.asarray(self.model.spectra(theta), dtype=np.float64)
        s[:, ~self.mask] = np.nan
        return s


def physical_forward(
    ref,
    names: Sequence[str],
    *,
    coverages: Sequence[str] | None = None,
    temperature_K: float = 5.0,
    randomised: bool = False,
    max_models: int = 64,
):
    """The forward side of a physical training set.

    Returns a :class:`~fcinv.forward.physical.PhysicalModel` (coverage ``run120``, or the
    first of ``coverages``, at ``temperature_K``) without ``randomised``; with it a
    :class:`~fcinv.dataset.randomise.PhysicalConditioner` that builds and caches (up to
    ``max_models``) one model per (coverage, temperature, resolution) drawn.
    """
    from fcinv.dataset.randomise import PhysicalConditioner

    _require_physical()
    names = list(names)
    covs = _check_coverages(coverages)
    if not randomised:
        return physical_model(ref, names, coverage=covs[0], temperature_K=temperature_K)
    cache: dict = {}

    def build(cov: str, t: float, s: float):
        key = (cov, round(t, 3), round(s, 4))
        if key not in cache:
            if len(cache) >= max_models:
                cache.pop(next(iter(cache)))
            log.info("physical model for coverage %s, %g K, FWHM x %g", *key)
            pm = physical_model(ref, names, coverage=cov, temperature_K=t, fwhm_scale=s)
            bg = fold_background(
                _coverage(ref.material, cov, ei_for(ref.material)), pm.energy_factor, ref.crystal
            )
            cache[key] = _Masked(pm, bg)
        return cache[key]

    stability = ref.forward_model(free=names)
    desc = {
        "material": ref.material,
        "n_shells": ref.n_shells,
        "cutoff_A": ref.space.cutoff,
        "all_names": list(ref.space.names),
        "free": names,
        "tail": ref.tail_for(names),
        "ei_meV": ei_for(ref.material),
        "instrument": "ARCS-like (fcinv.experiment.instrument.Instrument)",
        "corrections": "predicts a fold with --one-phonon T (Bose T, divide by |Q|^2, multiply by E), T the sample temperature",
        "coverages_psi_deg": {
            c: (None if COVERAGES[c] is None else [COVERAGES[c][0], COVERAGES[c][-1], len(COVERAGES[c])])
            for c in covs
        },
        "model": "fcinv.forward.physical.PhysicalModel (coherent one-phonon, Debye-Waller from theta)",
    }
    return PhysicalConditioner(build, covs, stability, names, desc)


def physical_randomisation(
    temperature_K: tuple[float, float] = (5.0, 300.0),
    clean_fraction: float = 0.1,
    group: int = 25,
    background_shape: str = "flat",
    background: tuple[float, float] | None = None,
):
    """The default randomisation of physical sets: palettes :data:`TEMPERATURE_LEVELS` (within
    ``temperature_K``) and :data:`FWHM_LEVELS`; ``background_shape`` as in
    :class:`~fcinv.dataset.randomise.Randomisation` with B in ``background`` (default: 0–0.3 for
    ``"flat"``, :data:`FOLD_BACKGROUND` for ``"fold"``)."""
    from fcinv.dataset.randomise import Randomisation

    lo, hi = temperature_K
    levels = tuple(t for t in TEMPERATURE_LEVELS if lo <= t <= hi) or (float(lo), float(hi))
    if background is None:
        background = FOLD_BACKGROUND if background_shape == "fold" else (0.0, 0.3)
    return Randomisation(
        temperature_K=(lo, hi),
        background=tuple(background),
        background_shape=background_shape,
        fwhm_scale=(min(FWHM_LEVELS), max(FWHM_LEVELS)),
        clean_fraction=clean_fraction,
        group=group,
        temperature_levels=levels,
        fwhm_levels=FWHM_LEVELS,
    )


__all__ = [
    "COVERAGES",
    "DEFAULT_COVERAGES",
    "EI_MEV",
    "EI_PER_E_MAX",
    "FOLD_BACKGROUND",
    "FWHM_LEVELS",
    "TEMPERATURE_LEVELS",
    "ei_for",
    "ei_rule",
    "fold_background",
    "physical_forward",
    "physical_model",
    "physical_randomisation",
]
