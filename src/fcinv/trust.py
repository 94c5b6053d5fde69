"""One call that puts calibrated σ and the data-adequacy verdict beside an inference.

The pipeline/CLI calls :func:`trust_report` after ``FCPredictor.predict`` (and
``fitting.refine`` when it ran) and adds its ``json`` to the result file and its ``lines`` to
the printed table. It refuses (``AdequacyError``) an input that constrains nothing, so call it
*before* printing an answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from fcinv.adequacy import Verdict, assess
from fcinv.calibration import RAW_SIGMA_MEANING, ModelCalibration, load_calibration

log = logging.getLogger(__name__)


@dataclass
class TrustReport:
    """Calibrated answers and the verdict.

    Attributes
    ----------
    ml, refined
        ``ModelCalibration.calibrate`` dicts (by name: theta, sigma, half95, sigma_raw; plus
        ``sigma_meaning``), or, without a calibration, the raw values with the raw meaning.
    verdict
        The :class:`~fcinv.adequacy.Verdict`.
    calibrated
        False when no calibration matched the model (σ is then the raw spread, said so).
    """

    ml: dict
    refined: dict | None
    verdict: Verdict
    calibrated: bool
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "ml": self.ml,
            "refined": self.refined,
            "adequacy": self.verdict.as_dict(),
            "calibrated": self.calibrated,
            "warnings": self.warnings + self.verdict.warnings,
        }

    def table_lines(self) -> list[str]:
        """Lines for the printed table: warnings, the answer with σ and the 95 % half-width, the verdict."""
        lines = [f"WARNING: {w}" for w in self.warnings]
        best, label = (self.refined, "refined") if self.refined is not None else (self.ml, "ML")
        names = [k for k, v in best.items() if isinstance(v, dict)]
        lines.append(f"{'name':<10} {label + ' theta':>12} {'sigma':>9} {'half95':>9}   (eV/A^2)")
        for n in names:
            v = best[n]
            s = "n/a" if v["sigma"] is None else f"{v['sigma']:.4f}"
            h = "n/a" if v.get("half95") is None else f"{v['half95']:.4f}"
            lines.append(f"{n:<10} {v['theta']:>12.4f} {s:>9} {h:>9}")
        lines.append(f"sigma: {best['sigma_meaning']}")
        return lines + self.verdict.table_lines()


def _raw(names, theta, sigma, estimator: str) -> dict:
    out: dict = {
        n: {"theta": float(t), "sigma": float(s), "half95": None, "sigma_raw": float(s)}
        for n, t, s in zip(names, np.asarray(theta, float), np.asarray(sigma, float))
    }
    out["sigma_meaning"] = RAW_SIGMA_MEANING[estimator]
    return out


def trust_report(
    predictor,
    prediction,
    spectrum,
    *,
    forward_model=None,
    refined=None,
    calibration: ModelCalibration | None | str = "auto",
) -> TrustReport:
    """Calibrate the answer(s) and assess the data.

    Parameters
    ----------
    predictor
        The :class:`~fcinv.inference.FCPredictor` that made ``prediction``.
    prediction
        Its :class:`~fcinv.inference.Prediction`.
    spectrum
        The input (FoldedSpectrum or (n_q, n_E) array, NaN = unmeasured) on the model's grid.
    forward_model
        The forward model varying the predicted parameters (for the constrained parameters).
    refined
        The :class:`~fcinv.fitting.FitResult` of ``fitting.refine``, if it ran.
    calibration
        ``"auto"`` (``calibration.json`` beside the model), a ModelCalibration, or None (raw σ).

    Raises
    ------
    AdequacyError
        The input constrains nothing (an all-zero or negative spectrum, nothing measured).
    CalibrationError
        A malformed calibration file (one fitted for other weights is skipped with a warning).
    """
    cal = (
        load_calibration(predictor) if isinstance(calibration, str) and calibration == "auto" else calibration
    )
    ood = cal.ood if cal is not None else None
    verdict = assess(
        spectrum,
        predictor.grid,
        model=forward_model,
        theta=prediction.theta if forward_model is not None else None,
        prediction=prediction,
        reference=ood,
    )
    warnings: list[str] = []
    names = list(prediction.names)
    if cal is None:
        warnings.append(
            "no calibration for this model: sigma is the raw latent-sample spread, not an error bar"
        )
        ml = _raw(names, prediction.theta, prediction.sigma, "ml")
    else:
        ml = cal.calibrate(prediction.theta, prediction.sigma, estimator="ml")
    ref = None
    if refined is not None:
        ok = bool(getattr(refined, "success", False))
        th = np.asarray(refined.theta, float) if ok else np.asarray(prediction.theta, float)
        sig = np.asarray(refined.sigma, float) if ok else np.asarray(prediction.sigma, float)
        if cal is None:
            ref = _raw(names, th, sig, "refined" if ok else "ml")
        else:
            ref = cal.calibrate(th, sig, estimator="refined", accepted=ok)
        if not ok:
            warnings.append(
                "the refinement was rejected; the refined answer is the ML answer with its calibration"
            )
    return TrustReport(ml, ref, verdict, cal is not None, warnings)
