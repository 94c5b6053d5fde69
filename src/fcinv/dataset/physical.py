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


class _Masked:
    """A physical model whose spectra are NaN where its coverage measured nothing."""

    def __init__(self, model):
        self.model = model
        self.mask = np.asarray(model.mask, bool)

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
            cache[key] = _Masked(physical_model(ref, names, coverage=cov, temperature_K=t, fwhm_scale=s))
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
    temperature_K: tuple[float, float] = (5.0, 300.0), clean_fraction: float = 0.1, group: int = 25
):
    """The default randomisation of physical sets: palettes :data:`TEMPERATURE_LEVELS` (within
    ``temperature_K``) and :data:`FWHM_LEVELS`."""
    from fcinv.dataset.randomise import Randomisation

    lo, hi = temperature_K
    levels = tuple(t for t in TEMPERATURE_LEVELS if lo <= t <= hi) or (float(lo), float(hi))
    return Randomisation(
        temperature_K=(lo, hi),
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
    "FWHM_LEVELS",
    "TEMPERATURE_LEVELS",
    "ei_for",
    "ei_rule",
    "physical_forward",
    "physical_model",
    "physical_randomisation",
]
