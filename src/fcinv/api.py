"""The public Python API: what ``import fcinv`` offers a user writing a script.

>>> import fcinv
>>> spectrum = fcinv.simulate("Ge", {"1NN_xx": -2.0})      # a FoldedSpectrum (forward model)
>>> result = fcinv.invert(spectrum, model="ge")            # an FCResult: θ ± σ
>>> print(result.table())
>>> result.to_json("fcs.json"); result.to_phonopy("fcs/")

Every function takes plain values or paths and returns fcinv objects: :class:`~fcinv.material.Material`,
:class:`~fcinv.inference.FCPredictor`, :class:`~fcinv.result.FCResult`,
:class:`~fcinv.experiment.folded.FoldedSpectrum`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fcinv.errors import DataError


def load_material(name_or_path):
    """An embedded material (``"Ge"``, ``"Nb"``), a material folder or a structure file.

    Returns a :class:`~fcinv.material.Material`.
    """
    from fcinv.material import load_material as _load

    return _load(name_or_path)


def load_model(name_or_dir, kind: str = "auto", device: str | None = "cpu"):
    """A shipped model (``"ge"``, ``"nb"``) or a checkpoint folder → :class:`~fcinv.inference.FCPredictor`."""
    from fcinv.inference import load_model as _load

    return _load(name_or_dir, kind=kind, device=device)  # type: ignore[arg-type]


def invert(
    data,
    model="ge",
    *,
    material=None,
    refine: bool = False,
    k_samples: int = 100,
    seed: int = 0,
    corrections: Any = "one-phonon",
    q_tolerance: float = 0.05,
    rebin: bool = False,
    refine_fn=None,
    **options: Any,
):
    """Force constants ± σ from a measurement.

    Parameters
    ----------
    data
        A path (a folded spectrum, a 4D volume of any registered format, pathSQE output; several
        paths for NXSPE), a :class:`~fcinv.experiment.folded.FoldedSpectrum` or a
        :class:`~fcinv.experiment.volume.Volume4D`.
    model
        A shipped model name, a checkpoint folder or an :class:`~fcinv.inference.FCPredictor`.
    material
        Default: the model's.
    refine
        Refine the ML answer by a least-squares fit (``refine_fn`` replaces the default fit).
    k_samples, seed
        Latent samples for the ML mean and spread, and their seed.
    corrections
        For 4D input: ``"one-phonon"`` (Bose at 5 K, /|Q|², ×E), a
        :class:`~fcinv.experiment.fold.Corrections`, or ``None`` for the raw intensity.
    q_tolerance
        Folding tube radius, r.l.u.
    rebin
        Interpolate a folded spectrum on another binning of the same path onto the model's grid.
    **options
        File options of :func:`fcinv.io.open_measurement` (``ub``, ``u``, ``v``, ``norm_path`` ...).

    Returns
    -------
    FCResult
        θ ± σ by name; refined results keep the ML one in ``parts["ml"]``.
    """
    from fcinv.pipeline.core import Pipeline, PipelineConfig, one_phonon_corrections

    corr = one_phonon_corrections(5.0) if corrections == "one-phonon" else corrections
    cfg = PipelineConfig(
        k_samples=k_samples, seed=seed, q_tolerance=q_tolerance, corrections=corr, rebin=rebin
    )
    return Pipeline(model, material, refine=refine_fn, config=cfg).invert(data, refine=refine, **options)


def fit(
    data,
    material="Ge",
    *,
    free: Sequence[str] | int | None = None,
    n_starts: int = 8,
    seed: int = 0,
    corrections: Any = "one-phonon",
    q_tolerance: float = 0.05,
    **fit_options: Any,
):
    """The classical baseline: a least-squares fit of θ to a measured I(q, E), as an FCResult.

    Parameters
    ----------
    data
        As :func:`invert` (4D data is folded onto the material's default grid).
    material
        What :func:`load_material` takes.
    free
        The fitted parameters (names, or the first n of the ranking); default: the sampled ones.
    n_starts
        Multi-start fits from the training domain.
    **fit_options
        Passed to :func:`fcinv.fitting.fit_spectrum` (``weighting``, ``max_nfev`` ...).
    """
    from fcinv.fitting import fit_spectrum
    from fcinv.io.provenance import Provenance
    from fcinv.io.registry import open_measurement
    from fcinv.pipeline.core import fold_measurement, one_phonon_corrections
    from fcinv.result import FCResult

    mat = load_material(material)
    grid = mat.grid()
    if isinstance(data, (str, Path)) or (isinstance(data, Sequence) and not isinstance(data, str)):
        data = open_measurement(data, grid=grid, lattice=mat.lattice)
    corr = one_phonon_corrections(5.0) if corrections == "one-phonon" else corrections
    fs = fold_measurement(data, mat, grid, q_tolerance=q_tolerance, corrections=corr)
    fm = mat.forward_model(grid=grid)
    fit_options.setdefault("domain", mat.domain(list(fm.names)) if mat.reference_available else None)
    res = fit_spectrum(fm, fs, free=free, n_starts=n_starts, seed=seed, **fit_options)
    return FCResult.from_fit(res, material=mat.name, provenance=Provenance.now(seed=seed))


def simulate(material="Ge", theta: Mapping[str, float] | None = None, *, grid=None, broadening=None):
    """The forward model's I(q, E) of θ on the material's grid, as a fully measured FoldedSpectrum.

    Parameters
    ----------
    material
        What :func:`load_material` takes.
    theta
        Parameter values by name (eV/Å²) overriding the material's reference (zeros without one).
    grid, broadening
        Default: the material's.

    Returns
    -------
    FoldedSpectrum
        ``meta`` holds the full θ, the frequencies and the forward model's description.
    """
    from fcinv.experiment.folded import FoldedSpectrum

    mat = load_material(material)
    full = mat.theta_full(dict(theta or {}))
    fm = mat.forward_model(free=list(mat.space.names), grid=grid, broadening=broadening, theta=full)
    spec, freqs = fm.spectra(full[None], return_frequencies=True)
    if not np.all(np.isfinite(spec)):
        raise DataError("the simulated spectrum is not finite. Check θ (eV/Å²) for extreme values.")
    meta = {
        "source": "fcinv.simulate",
        "material": mat.name,
        "theta": dict(zip(mat.space.names, full.tolist())),
        "frequencies_meV": np.round(freqs[0], 6).tolist(),
        "forward_model": fm.describe(),
        "corrections": [],
    }
    return FoldedSpectrum.from_arrays(spec[0].astype(float), fm.grid, meta=meta)
