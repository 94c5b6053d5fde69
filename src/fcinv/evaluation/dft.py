"""A trained model against a real crystal: the full DFT Ge set as the truth of a clean spectrum.

The truth is a force-constant file as it is (every pair of the phonopy supercell, nothing
projected or hybridised). Its spectrum is made with the forward model of the chosen
intensity convention *from the full set* (``from_pairs``: D(q) of the whole file); the
θ truth is the file's projection onto the model's parameters. The model's prediction is
then compared per parameter (relative error, distance in its own σ) and as a dispersion:
the path energies of the predicted θ (the model's tail convention: zero beyond the cutoff
for an all-parameter model) against the full file's own, rms in THz.

This is a validation, not a unit test: the DFT set was made by neither the ensemble nor
the training sets.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: meV per THz.
THZ_TO_MEV = 4.135667696


def dft_truth_spectrum(ref, names, pairs, *, intensity: str = "physical", coverage: str = "run120", temperature_K: float = 5.0):
    """Clean spectrum of a full FC set (``pairs``) in the model's convention.

    Returns
    -------
    spectrum
        Shape (n_q, n_E), float64 (NaN where the coverage measured nothing).
    theta
        Shape (len(names),) eV/Å²: the projection of ``pairs`` onto ``names``.
    """
    proj = ref.space.project(pairs).theta
    theta = proj[ref.space.index(list(names))]
    if intensity == "physical":
        from fcinv.dataset.physical import physical_model

        m = physical_model(ref, list(ref.space.names), coverage=coverage, temperature_K=temperature_K)
        # the same settings, D(q) from the whole file
        from fcinv.forward.physical import PhysicalModel

        full = PhysicalModel(ref.space, m.grid, proj, reference=pairs, coverage=m.coverage, temperature=m.temperature,
                             resolution=m.resolution, corrections=m.corrections)
        s = np.asarray(full.spectra(proj[None])[0], dtype=np.float64)
        s[~np.asarray(full.mask, bool)] = np.nan
        return s, theta
    from fcinv.forward import ForwardModel

    fm = ref.forward_model(free=list(names))
    full = ForwardModel(ref.space, fm.grid, proj, reference=pairs, broadening=fm.broadening)
    return np.asarray(full.spectra(proj[None])[0], dtype=np.float64), theta


def dft_check(predictor, ref, pairs, *, intensity: str = "physical", coverage: str = "run120", temperature_K: float = 5.0,
              k_samples: int = 100, seed: int = 0) -> dict:
    """Predict θ from the clean spectrum of a full FC set and compare with its projection.

    Parameters
    ----------
    predictor
        A :class:`fcinv.inference.FCPredictor`.
    ref
        The material's :class:`~fcinv.reference.MaterialReference` (same space as the model's).
    pairs
        The full FC set (e.g. :func:`fcinv.fcspace.read_phonopy` of the DFT Ge files).
    intensity, coverage, temperature_K
        How the truth spectrum is made (:func:`dft_truth_spectrum`).

    Returns
    -------
    dict
        Per parameter ``truth``, ``pred``, ``sigma``, ``rel_err``, ``n_sigma``; ``max_rel_err_fc0_3``;
        ``disp_rms_THz`` (path, predicted θ with the model's tail against the full file's own).
    """
    from fcinv.dataset.preprocess import prepare_input
    from fcinv.forward import ForwardModel

    names = list(predictor.names)
    spec, truth = dft_truth_spectrum(ref, names, pairs, intensity=intensity, coverage=coverage, temperature_K=temperature_K)
    pred = predictor.predict(prepare_input(spec), k_samples=k_samples, seed=seed)
    fm = ref.forward_model(free=names)
    full_theta = fm.full_theta(pred.theta)[0]
    tail = ref.tail_for(names)
    model = ForwardModel(ref.space, fm.grid, ref.theta_ref, reference=ref.pairs if tail == "reference" else None)
    f_pred = model.frequencies(full_theta)[0]
    proj = ref.space.project(pairs).theta
    f_true = ForwardModel(ref.space, fm.grid, proj, reference=pairs).frequencies(proj)[0]
    rel = np.abs(pred.theta - truth) / np.maximum(np.abs(truth), 1e-12)
    nsig = np.abs(pred.theta - truth) / np.where(pred.sigma > 0, pred.sigma, np.nan)
    rows = {n: {"truth": float(t), "pred": float(p), "sigma": float(s), "rel_err": float(r), "n_sigma": float(z)}
            for n, t, p, s, r, z in zip(names, truth, pred.theta, pred.sigma, rel, nsig)}
    return {
        "intensity": intensity, "coverage": coverage if intensity == "physical" else "full", "temperature_K": temperature_K,
        "names": names, "per_parameter": rows, "max_rel_err_fc0_3": float(rel[:4].max()),
        "disp_rms_THz": float(np.sqrt(np.mean((f_pred - f_true) ** 2)) / THZ_TO_MEV), "tail": tail,
    }


def read_dft_ge(directory: str | Path):
    """The DFT Ge set (``FORCE_CONSTANTS`` + ``POSCAR``, 4×4×4 supercell) as a PairFC."""
    from fcinv.crystal import Crystal
    from fcinv.fcspace import read_phonopy

    d = Path(directory)
    return read_phonopy(Crystal.from_name("Ge"), d / "FORCE_CONSTANTS", d / "POSCAR", (4, 4, 4))


__all__ = ["dft_check", "dft_truth_spectrum", "read_dft_ge"]
