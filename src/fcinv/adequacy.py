"""Data adequacy: does this spectrum hold enough to stand behind an answer? (issue 11, item 3)

:func:`assess` returns a :class:`Verdict` with every inference: what was measured (grid
coverage; per path segment, the fraction of pixels and the energies), how unlike the
calibration inputs the spectrum looks (out-of-distribution score), and which parameters the
measured pixels constrain (from the forward model's Jacobian on the mask).
:func:`check_spectrum` refuses inputs that constrain nothing; :func:`check_k_samples` and
:func:`check_mergeable` guard two CLI options.

Thresholds (:data:`THRESHOLDS`; each below-threshold finding is one warning line):

- ``min_coverage`` = 0.15: fewer measured pixels than 15 % of the grid (a single
  orientation of a full ARCS-like run measures 40–60 %; the real MARI file of issue 11 6 %);
- ``min_energy_span`` = 0.5: the measured energies span less than half of the grid's
  energy window (e.g. all below 10 meV of 0–40 meV);
- ``min_segment_coverage`` = 0.05: a path segment with fewer than 5 % of its pixels measured
  is named as unmeasured;
- ``ood_percentile`` = 99: the reconstruction error or the latent Mahalanobis distance lies
  above the 99th percentile of the reference inputs stored with the calibration;
- ``min_sensitivity`` = 0.05: a parameter whose measured pixels hold less than 5 % of its
  full-grid sensitivity Σ (∂I/∂θ_j)² is reported as not constrained by the data (its value
  then comes from the training prior).

Refusal (:class:`AdequacyError`): no finite pixel, no positive intensity (an all-zero or
negative spectrum), a constant spectrum, or no parameter constrained at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fcinv.errors import FcinvError

log = logging.getLogger(__name__)

#: Documented thresholds (module docstring).
THRESHOLDS: dict[str, float] = {
    "min_coverage": 0.15,
    "min_energy_span": 0.5,
    "min_segment_coverage": 0.05,
    "ood_percentile": 99.0,
    "min_sensitivity": 0.05,
}


class AdequacyError(FcinvError):
    """The input constrains no parameter: the model would answer with its training prior."""


class MixedRunsError(FcinvError):
    """Runs of different incident energy or instrument were asked to be merged."""


def _image_and_mask(spectrum) -> tuple[np.ndarray, np.ndarray]:
    """(intensity with NaN at unmeasured pixels, measured mask) of a FoldedSpectrum or an array."""
    if hasattr(spectrum, "mask") and hasattr(spectrum, "intensity"):
        img = np.where(np.asarray(spectrum.mask, bool), np.asarray(spectrum.intensity, float), np.nan)
    else:
        img = np.asarray(spectrum, float)
    if img.ndim != 2:
        raise AdequacyError(
            f"spectrum has shape {img.shape}; pass one (n_q, n_E) image (NaN = not measured)."
        )
    return img, np.isfinite(img)


def check_spectrum(spectrum) -> np.ndarray:
    """Refuse a spectrum that constrains nothing; return its measured mask (n_q, n_E) bool.

    Parameters
    ----------
    spectrum
        A :class:`~fcinv.experiment.folded.FoldedSpectrum` or an (n_q, n_E) array, NaN = not measured.

    Raises
    ------
    AdequacyError
        No finite pixel; no positive intensity (all zero or negative); a constant spectrum.
    """
    img, mask = _image_and_mask(spectrum)
    n = int(mask.sum())
    if n == 0:
        raise AdequacyError(
            f"the spectrum has no measured pixel (all {img.size} are NaN/unmeasured). Fold data that cover "
            "the model's path."
        )
    vals = img[mask]
    vmax = float(vals.max())
    if vmax <= 0:
        what = "zero" if vmax == 0 and float(vals.min()) == 0 else "zero or negative"
        raise AdequacyError(
            f"every measured pixel ({n}) is {what} (max {vmax:g}); such a spectrum constrains no force "
            "constant. "
            "Check the normalisation, background subtraction and the file."
        )
    if float(vals.min()) == vmax:
        raise AdequacyError(
            f"the spectrum is constant ({vmax:g} on all {n} measured pixels); it constrains no force "
            "constant. Check the file."
        )
    return mask


def check_k_samples(k_samples: int) -> int:
    """Latent samples for a σ: must be an integer >= 2 (K = 1 or 0 gives σ = 0, not an uncertainty)."""
    if isinstance(k_samples, bool) or not isinstance(k_samples, (int, np.integer)) or int(k_samples) < 2:
        raise FcinvError(
            f"--k-samples {k_samples!r}: the spread over latent samples needs at least 2 of them. Pass "
            "--k-samples 2 or more (default 100)."
        )
    return int(k_samples)


def _eis(meta: Mapping[str, Any]) -> list[float]:
    """Incident energies (meV) named in a run's metadata (a value or a list per key)."""
    for key in ("ei_meV", "ei", "Ei", "incident_energy", "fixed_energy"):
        v = meta.get(key)
        if v is not None:
            return [float(x) for x in np.atleast_1d(np.asarray(v, float)).ravel()]
    inst = meta.get("instrument")
    return _eis(inst) if isinstance(inst, Mapping) else []


def _instrument(meta: Mapping[str, Any]) -> str | None:
    inst = meta.get("instrument")
    if isinstance(inst, Mapping):
        name = inst.get("name")
        return None if name is None else str(name)
    for key in ("instrument_name", "instrument"):
        if meta.get(key) is not None:
            return str(meta[key])
    return None


def check_mergeable(
    metas: Sequence[Mapping[str, Any]], *, allow_mixed: bool = False, ei_rtol: float = 0.01
) -> dict:
    """Refuse to merge runs of different Ei or instrument unless ``allow_mixed``.

    Parameters
    ----------
    metas
        One metadata mapping per run (a volume's ``meta``): Ei under ``ei_meV``/``ei``/``Ei``
        (a value or a list, or ``instrument.ei``), the instrument's name under ``instrument.name``
        or ``instrument``.
    allow_mixed
        Merge anyway (the result lists what differs), as ``fold --allow-mixed``.
    ei_rtol
        Relative tolerance on Ei.

    Returns
    -------
    dict
        ``{"ei_meV": [...], "instruments": [...], "mixed": bool}``.

    Raises
    ------
    MixedRunsError
        The runs differ and ``allow_mixed`` is False.
    """
    per_run = [_eis(m) for m in metas]
    eis = [e for run in per_run for e in run]
    insts = [_instrument(m) for m in metas]
    known = eis
    mixed_ei = bool(known) and (max(known) - min(known)) > ei_rtol * max(abs(v) for v in known)
    names = {i for i in insts if i is not None}
    mixed = mixed_ei or len(names) > 1
    info = {"ei_meV": eis, "instruments": insts, "mixed": mixed}
    if mixed and not allow_mixed:
        parts = []
        if mixed_ei:
            parts.append("Ei " + ", ".join(f"{e:g}" for e in sorted(set(eis))) + " meV")
        if len(names) > 1:
            parts.append("instruments " + ", ".join(sorted(names)))
        raise MixedRunsError(
            f"the {len(metas)} runs differ in {' and '.join(parts)}; their intensities and resolutions do "
            "not add up. "
            "Fold them separately, or pass --allow-mixed to merge anyway."
        )
    if mixed:
        log.warning("merging runs of mixed Ei/instrument: %s", info)
    return info


def _segments(grid) -> list[tuple[str, int, int]]:
    labels = list(getattr(grid, "labels", ()) or ())
    bins = list(getattr(grid, "segment_bins", ()) or ())
    if not bins:
        return [("path", 0, grid.n_q)]
    out, a = [], 0
    for i, nb in enumerate(bins):
        name = f"{labels[i]}-{labels[i + 1]}" if i + 1 < len(labels) else f"segment {i}"
        out.append((name, a, a + nb))
        a += nb
    return out


def sensitivity(model, theta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fraction of each parameter's full-grid sensitivity Σ(∂I/∂θ_j)² held by the measured pixels.

    Parameters
    ----------
    model
        A forward model varying the parameters (``names``, ``spectra``; the paper model's
        analytic Jacobian is used when available, else central differences).
    theta
        Shape (k,), eV/Å²: where to linearise (the answer).
    mask
        Shape (n_q, n_E) bool: measured pixels.

    Returns
    -------
    numpy.ndarray
        Shape (k,) in [0, 1].
    """
    from fcinv.forward import ForwardModel

    t = np.asarray(model.check(theta)[0], float)
    if isinstance(model, ForwardModel):
        from fcinv.fitting import spectrum_and_jacobian

        _, jac = spectrum_and_jacobian(model, t)
    else:
        k = len(t)
        h = 1e-3 * np.maximum(np.abs(t), 0.05 * max(float(np.abs(t).max()), 1e-6))
        batch = np.repeat(t[None], 2 * k, axis=0)
        batch[np.arange(k), np.arange(k)] += h
        batch[k + np.arange(k), np.arange(k)] -= h
        imgs = np.asarray(model.spectra(batch), float)
        jac = ((imgs[:k] - imgs[k:]) / (2.0 * h)[:, None, None]).transpose(1, 2, 0)
    j2 = np.nan_to_num(jac, nan=0.0) ** 2
    full = j2.reshape(-1, j2.shape[-1]).sum(axis=0)
    meas = j2[np.asarray(mask, bool)].sum(axis=0)
    return np.where(full > 0, meas / np.where(full > 0, full, 1.0), 0.0)


@dataclass
class Verdict:
    """The data-adequacy verdict of one inference (JSON via :meth:`as_dict`, text via :meth:`table_lines`).

    Attributes
    ----------
    coverage
        Fraction of grid pixels measured.
    energy_range_meV
        (min, max) energy of the measured pixels' bin centres.
    energy_span
        Measured energy span / the grid's energy window.
    segments
        Per path segment: name, pixel coverage, measured energy range.
    ood
        Out-of-distribution scores (percentiles among the reference inputs), or {} without a reference.
    constrained
        Parameter name → fraction of its sensitivity on the measured pixels (empty without a model).
    warnings
        One line per finding below a threshold.
    thresholds
        The thresholds used.
    """

    coverage: float
    energy_range_meV: tuple[float, float]
    energy_span: float
    segments: list[dict]
    ood: dict = field(default_factory=dict)
    constrained: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    thresholds: dict = field(default_factory=lambda: dict(THRESHOLDS))

    @property
    def ok(self) -> bool:
        """True when no finding is below a threshold."""
        return not self.warnings

    @property
    def unconstrained(self) -> list[str]:
        return [n for n, v in self.constrained.items() if v < self.thresholds["min_sensitivity"]]

    def as_dict(self) -> dict:
        return {
            "verdict": "adequate" if self.ok else "warning",
            "coverage": self.coverage,
            "energy_range_meV": list(self.energy_range_meV),
            "energy_span": self.energy_span,
            "segments": self.segments,
            "ood": self.ood,
            "constrained": self.constrained,
            "unconstrained": self.unconstrained,
            "warnings": list(self.warnings),
            "thresholds": dict(self.thresholds),
        }

    def table_lines(self) -> list[str]:
        """Human-readable lines for the inference table (warnings first, prefixed ``WARNING:``)."""
        lines = [f"WARNING: {w}" for w in self.warnings]
        lo, hi = self.energy_range_meV
        lines.append(
            f"data: {100 * self.coverage:.1f}% of the grid measured, energies {lo:.1f}-{hi:.1f} meV "
            f"({100 * self.energy_span:.0f}% of the window)"
        )
        lines.append(
            "segments: " + ", ".join(f"{s['name']} {100 * s['coverage']:.0f}%" for s in self.segments)
        )
        if self.ood:
            pct = self.ood["recon_percentile"]
            txt = f"OOD: reconstruction error at the {pct:.0f}th percentile of the reference"
            if "latent_percentile" in self.ood:
                txt += f", latent distance at the {self.ood['latent_percentile']:.0f}th"
            lines.append(txt)
        if self.constrained:
            lines.append(
                "constrained by the data (share of sensitivity measured): "
                + ", ".join(f"{n} {100 * v:.0f}%" for n, v in self.constrained.items())
            )
        return lines


def assess(
    spectrum,
    grid,
    *,
    model=None,
    theta=None,
    prediction=None,
    reference=None,
    thresholds: Mapping[str, float] | None = None,
    refuse: bool = True,
) -> Verdict:
    """The data-adequacy verdict of one spectrum (module docstring for the thresholds).

    Parameters
    ----------
    spectrum
        A FoldedSpectrum or an (n_q, n_E) array, NaN = not measured, on ``grid``.
    grid
        The model's :class:`~fcinv.grid.SpectrumGrid`.
    model, theta
        Forward model and the answer θ (k,) to linearise at, for the constrained parameters
        (both or neither; ``theta`` defaults to ``prediction.theta``).
    prediction
        The :class:`~fcinv.inference.Prediction` (its ``spectrum``, ``reconstruction`` and ``mu``
        give the OOD score when ``reference`` is given).
    reference
        An :class:`~fcinv.calibration.OODReference` (e.g. ``load_calibration(p).ood``).
    thresholds
        Overrides of :data:`THRESHOLDS`.
    refuse
        Raise :class:`AdequacyError` where nothing is constrained (default).

    Raises
    ------
    AdequacyError
        The spectrum constrains nothing (:func:`check_spectrum`), or no parameter is constrained.
    """
    th = dict(THRESHOLDS, **(thresholds or {}))
    img, mask = _image_and_mask(spectrum)
    if img.shape != tuple(grid.shape):
        raise AdequacyError(
            f"spectrum has shape {img.shape}; the grid is {tuple(grid.shape)}. Fold the data onto the "
            "model's grid."
        )
    if refuse:
        check_spectrum(img)
    e = np.asarray(grid.energy, float)
    edges = np.asarray(grid.energy_edges, float)
    cov = float(mask.mean())
    rows = np.nonzero(mask.any(axis=0))[0]
    e_rng = (float(e[rows.min()]), float(e[rows.max()])) if len(rows) else (math.nan, math.nan)
    window = float(edges[-1] - edges[0])
    span = float((edges[rows.max() + 1] - edges[rows.min()]) / window) if len(rows) else 0.0
    warn: list[str] = []
    segs = []
    for name, a, b in _segments(grid):
        m = mask[a:b]
        er = np.nonzero(m.any(axis=0))[0]
        segs.append(
            {
                "name": name,
                "coverage": float(m.mean()),
                "energy_range_meV": [float(e[er.min()]), float(e[er.max()])] if len(er) else None,
            }
        )
    if cov < th["min_coverage"]:
        warn.append(
            f"only {100 * cov:.1f}% of the grid is measured (threshold {100 * th['min_coverage']:.0f}%): the "
            "answer leans on the training prior"
        )
    if span < th["min_energy_span"]:
        warn.append(
            f"measured energies {e_rng[0]:.1f}-{e_rng[1]:.1f} meV span {100 * span:.0f}% of the "
            f"{edges[0]:g}-{edges[-1]:g} meV window "
            f"(threshold {100 * th['min_energy_span']:.0f}%)"
        )
    empty = [s["name"] for s in segs if s["coverage"] < th["min_segment_coverage"]]
    if empty:
        warn.append(
            f"segments not measured (< {100 * th['min_segment_coverage']:.0f}% of their pixels): "
            f"{', '.join(empty)}"
        )
    ood: dict = {}
    if (
        reference is not None
        and prediction is not None
        and getattr(prediction, "reconstruction", None) is not None
    ):
        x = np.asarray(prediction.spectrum, float)
        fin = np.isfinite(x)
        mse = (
            float(np.mean((np.asarray(prediction.reconstruction, float)[fin] - x[fin]) ** 2))
            if fin.any()
            else math.nan
        )
        ood = reference.score(mse, getattr(prediction, "mu", None))
        for key, what in (
            ("recon_percentile", "reconstruction error"),
            ("latent_percentile", "latent distance"),
        ):
            if ood.get(key, 0.0) > th["ood_percentile"]:
                warn.append(
                    f"out of distribution: the {what} lies above the {th['ood_percentile']:.0f}th percentile "
                    "of the reference inputs "
                    f"({reference.source or 'calibration split'})"
                )
    constrained: dict = {}
    if model is not None:
        t = theta if theta is not None else getattr(prediction, "theta", None)
        if t is None:
            raise AdequacyError(
                "the constrained parameters need the answer θ to linearise at. Pass theta= or prediction=."
            )
        frac = sensitivity(model, np.asarray(t, float), mask)
        constrained = {n: float(v) for n, v in zip(model.names, frac)}
        low = [n for n, v in constrained.items() if v < th["min_sensitivity"]]
        if refuse and len(low) == len(constrained):
            raise AdequacyError(
                f"the measured pixels hold < {100 * th['min_sensitivity']:.0f}% of every parameter's "
                "sensitivity "
                f"({', '.join(f'{n} {100 * v:.1f}%' for n, v in constrained.items())}); nothing is "
                "constrained. Measure the phonons."
            )
        if low:
            warn.append(
                f"not constrained by the measured pixels (< {100 * th['min_sensitivity']:.0f}% of their "
                f"sensitivity; value from the prior): {', '.join(low)}"
            )
    v = Verdict(cov, e_rng, span, segs, ood, constrained, warn, th)
    for w in warn:
        log.warning("data adequacy: %s", w)
    return v
