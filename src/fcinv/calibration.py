"""Calibrated uncertainties: what the reported σ means, and how it is made to mean it.

The raw spreads fcinv computes are not uncertainties of the answer:

- the ML σ is the spread of the regressor's output over latent samples of the encoder's
  N(μ, σ²); it measures how the latent noise propagates, not how far the answer is from the
  crystal (issue 11: 5–18× smaller than the error on a simulated DFT Ge run);
- the refinement's σ is the Laplace (linearised data + prior) covariance at the optimum;
  it assumes the forward model is right, so it misses the model discrepancy (the weight-1
  intensities against a measured I(q, E), the frozen parameters, the tail beyond the cutoff).

Method (per estimator, per parameter j, fitted on a calibration split of held-out simulated
experiments whose truths the model never saw, e.g. ``benchmarks/calibration.py``):

1. a variance model with a model-discrepancy term, ``s_j² = (a_j σ_raw,j)² + τ_j²``, with
   ``a_j`` (scale of the raw spread) and ``τ_j`` (discrepancy floor, eV/Å²) fitted by Gaussian
   maximum likelihood to the errors θ̂ − θ_true of the calibration split;
2. split-conformal quantiles of the normalised score ``|θ̂_j − θ_j| / s_j`` on the same
   split: ``q68_j`` and ``q95_j`` at the finite-sample ranks ⌈(n + 1) p⌉ / n.

The calibrated 68.3 % interval is θ̂_j ± q68_j s_j (reported as **σ**) and the 95 % interval is
θ̂_j ± q95_j s_j (reported as **half95**; not 2σ: the errors are not Gaussian). Step 2 gives
the marginal guarantee of split-conformal prediction: for an experiment exchangeable with the
calibration split, each interval covers the truth with at least its nominal probability
(and at most nominal + 1/(n + 1)). Step 1 only shapes the intervals (wider where the raw
spread is larger); a wrong step 1 costs width, not coverage. The guarantee is marginal over the
kind of experiments calibrated on: for a crystal, temperature or coverage outside them the
coverage is what the benchmark measures per family, not guaranteed.

The refined answer is calibrated the same way on the refinements that were accepted; a
rejected refinement returns the ML answer (``fitting.refine``), so it takes the ML calibration.

The calibration is stored beside the model as ``calibration.json`` with the SHA-256 of the
weights it was fitted for; :func:`load_calibration` refuses a file made for other weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fcinv.errors import FcinvError, describe_exception, json_kind

log = logging.getLogger(__name__)

#: File name of a model's calibration, in the model folder (beside ``vae/`` and ``regressor/``).
CALIBRATION_FILE = "calibration.json"
FORMAT = "fcinv-calibration"
FORMAT_VERSION = 1
#: Nominal levels of the two intervals.
LEVEL_68 = 0.6827
LEVEL_95 = 0.95
#: What the calibrated σ means, stored in every JSON result.
SIGMA_MEANING = (
    "calibrated: theta +/- sigma is a 68.3% interval and theta +/- half95 a 95% interval, split-conformal "
    "(variance model (a*sigma_raw)^2 + tau^2 fitted by maximum likelihood, then conformal quantiles of "
    "|error|/s) on held-out simulated experiments; marginal coverage for experiments like those calibrated on"
)
RAW_SIGMA_MEANING = {
    "ml": "uncalibrated: standard deviation of the regressor's output over latent samples (not an error bar)",
    "refined": "uncalibrated: Laplace (linearised data + prior) standard deviation at the optimum "
    "(not an error bar)",
}


class CalibrationError(FcinvError):
    """A calibration cannot be fitted, read or applied as asked."""


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal quantile: the ⌈(n + 1)·level⌉-th smallest score (``inf`` when n is too small).

    Parameters
    ----------
    scores
        Shape (n,), finite non-negative scores of the calibration split.
    level
        Nominal coverage in (0, 1).
    """
    s = np.sort(np.asarray(scores, float)[np.isfinite(scores)])
    n = len(s)
    rank = math.ceil((n + 1) * level)
    return float(s[rank - 1]) if 1 <= rank <= n else math.inf


def _fit_variance(err: np.ndarray, sig: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (a, τ) of err ~ N(0, (a σ)² + τ²); one parameter."""
    from scipy.optimize import minimize

    e2 = err * err
    s2 = sig * sig
    scale = float(np.sqrt(np.mean(e2))) or 1e-12

    def nll(p: np.ndarray) -> float:
        v = np.exp(2 * p[0]) * s2 + np.exp(2 * p[1]) + 1e-300
        return float(np.sum(np.log(v) + e2 / v))

    if not np.any(s2 > 0):  # no raw spread (ResNet, K = 0): the floor alone
        return 0.0, scale
    starts = [
        np.log([max(np.sqrt(np.mean(e2) / max(np.mean(s2), 1e-300)), 1e-6), 0.5 * scale]),
        np.log([1.0, scale]),
        np.log([1e-3, scale]),
    ]
    best = min(
        (
            minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
            for x0 in starts
        ),
        key=lambda r: r.fun,
    )
    a, tau = (float(v) for v in np.exp(best.x))
    return a, tau


@dataclass
class ScaleCalibration:
    """Calibration of one estimator's σ (ML or refined), per parameter.

    Attributes
    ----------
    names
        The k parameter names.
    a, tau
        Shape (k,): scale of the raw σ (dimensionless) and model-discrepancy floor (eV/Å²).
    q68, q95
        Shape (k,): conformal quantiles of |error| / s at :data:`LEVEL_68` and :data:`LEVEL_95`.
    n_cal
        Shape (k,) int: calibration experiments used per parameter.
    estimator
        ``"ml"`` or ``"refined"``.
    """

    names: tuple[str, ...]
    a: np.ndarray
    tau: np.ndarray
    q68: np.ndarray
    q95: np.ndarray
    n_cal: np.ndarray
    estimator: str = "ml"

    @classmethod
    def fit(
        cls,
        names: Sequence[str],
        estimate: np.ndarray,
        sigma_raw: np.ndarray,
        truth: np.ndarray,
        *,
        estimator: str = "ml",
        min_n: int = 20,
    ) -> ScaleCalibration:
        """Fit on a calibration split.

        Parameters
        ----------
        names
            The k parameter names (columns).
        estimate, sigma_raw, truth
            Shape (n, k), eV/Å²: the estimates, their raw σ and the truths of n calibration experiments.
            Rows with a non-finite value in a column are left out of that column.
        min_n
            Fewest usable rows per parameter (fewer: :class:`CalibrationError`).
        """
        est, sig, tru = (np.atleast_2d(np.asarray(x, float)) for x in (estimate, sigma_raw, truth))
        k = len(names)
        if not (est.shape == sig.shape == tru.shape) or est.shape[1] != k:
            raise CalibrationError(
                f"estimate {est.shape}, sigma {sig.shape} and truth {tru.shape} must all be (n, {k}) for {k} "
                "names. Pass one row per experiment."
            )
        a, tau, q68, q95, n_cal = (np.zeros(k) for _ in range(5))
        for j in range(k):
            ok = np.isfinite(est[:, j]) & np.isfinite(sig[:, j]) & np.isfinite(tru[:, j]) & (sig[:, j] >= 0)
            n = int(ok.sum())
            if n < min_n:
                raise CalibrationError(
                    f"{names[j]}: {n} usable calibration experiments for the {estimator} estimate; need >= "
                    f"{min_n}. Collect more."
                )
            err, s = est[ok, j] - tru[ok, j], sig[ok, j]
            a[j], tau[j] = _fit_variance(err, s)
            base = np.sqrt((a[j] * s) ** 2 + tau[j] ** 2)
            score = np.abs(err) / base
            q68[j], q95[j] = conformal_quantile(score, LEVEL_68), conformal_quantile(score, LEVEL_95)
            n_cal[j] = n
        return cls(tuple(names), a, tau, q68, q95, n_cal.astype(int), estimator)

    def base(self, sigma_raw: np.ndarray) -> np.ndarray:
        """s = sqrt((a σ_raw)² + τ²), shape of ``sigma_raw`` (…, k); a non-finite σ_raw gives inf."""
        s = np.asarray(sigma_raw, float)
        if s.shape[-1] != len(self.names):
            raise CalibrationError(
                f"sigma has {s.shape[-1]} values per row; this calibration is for {len(self.names)} "
                f"({', '.join(self.names)})."
            )
        out = np.sqrt((self.a * s) ** 2 + self.tau**2)
        return np.where(np.isfinite(s), out, np.inf)

    def apply(self, sigma_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated (σ, half95): half-widths of the 68.3 % and 95 % intervals, eV/Å² (shape of σ_raw)."""
        b = self.base(sigma_raw)
        return self.q68 * b, self.q95 * b

    def to_dict(self) -> dict:
        return {
            "estimator": self.estimator,
            "names": list(self.names),
            "a": self.a.tolist(),
            "tau_eV_A2": self.tau.tolist(),
            "q68": self.q68.tolist(),
            "q95": self.q95.tolist(),
            "n_cal": self.n_cal.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScaleCalibration:
        try:
            return cls(
                tuple(d["names"]),
                np.asarray(d["a"], float),
                np.asarray(d["tau_eV_A2"], float),
                np.asarray(d["q68"], float),
                np.asarray(d["q95"], float),
                np.asarray(d["n_cal"], int),
                str(d.get("estimator", "ml")),
            )
        except KeyError as exc:
            raise CalibrationError(
                f"calibration entry lacks {exc}. Refit it with benchmarks/calibration.py --write."
            ) from None


def coverage(estimate: np.ndarray, truth: np.ndarray, half_width: np.ndarray) -> float:
    """Fraction of finite (estimate, truth) entries with |estimate − truth| ≤ half_width (pooled)."""
    e, t, h = (np.asarray(x, float) for x in (estimate, truth, half_width))
    ok = np.isfinite(e) & np.isfinite(t)
    if not ok.any():
        return math.nan
    return float(np.mean(np.abs(e - t)[ok] <= h[ok]))


@dataclass
class OODReference:
    """Reference statistics of in-distribution inputs for the out-of-distribution score.

    Attributes
    ----------
    recon_mse
        Sorted reconstruction errors (mean squared, on the measured pixels of the min–max
        scaled spectrum) of the reference spectra.
    latent_mean, latent_cov
        Mean (d,) and (diagonal) covariance (d, d) of the encoder's μ over the reference spectra.
    mahalanobis
        Sorted squared standardised distances Σ((μ − mean)/sd)² of the reference μ.
    source
        What the reference spectra were.
    """

    recon_mse: np.ndarray
    latent_mean: np.ndarray
    latent_cov: np.ndarray
    mahalanobis: np.ndarray
    source: str = ""

    @classmethod
    def fit(cls, recon_mse: np.ndarray, mu: np.ndarray, source: str = "") -> OODReference:
        """From the reconstruction errors (n,) and latent means (n, d) of reference spectra."""
        r = np.sort(np.asarray(recon_mse, float)[np.isfinite(recon_mse)])
        m = np.asarray(mu, float)
        if len(r) < 10 or m.ndim != 2 or len(m) < 10:
            raise CalibrationError(
                f"{len(r)} reference spectra for the OOD statistics; need >= 10. Collect more."
            )
        mean = m.mean(axis=0)
        # diagonal: a full d×d covariance from n ~ 3d reference spectra would call every new input far
        cov = np.diag(np.maximum(m.var(axis=0, ddof=1), 1e-12))
        ref = cls(r, mean, cov, np.zeros(0), source)
        ref.mahalanobis = np.sort(ref.distance(m))
        return ref

    def distance(self, mu: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of latent means (…, d) from the reference."""
        d = np.asarray(mu, float) - self.latent_mean
        return np.einsum("...i,ij,...j->...", d, np.linalg.inv(self.latent_cov), d)

    @staticmethod
    def _percentile(sorted_ref: np.ndarray, x: float) -> float:
        return (
            float(100.0 * np.searchsorted(sorted_ref, x, side="right") / len(sorted_ref))
            if len(sorted_ref)
            else math.nan
        )

    def score(self, recon_mse: float, mu: np.ndarray | None) -> dict:
        """Percentiles (0–100) of an input's reconstruction error and latent distance in the reference."""
        out = {
            "recon_mse": float(recon_mse),
            "recon_percentile": self._percentile(self.recon_mse, float(recon_mse)),
        }
        if mu is not None:
            d2 = float(self.distance(mu))
            out.update(
                {"latent_mahalanobis2": d2, "latent_percentile": self._percentile(self.mahalanobis, d2)}
            )
        return out

    def to_dict(self) -> dict:
        return {
            "recon_mse": self.recon_mse.tolist(),
            "latent_mean": self.latent_mean.tolist(),
            "latent_cov": self.latent_cov.tolist(),
            "mahalanobis2": self.mahalanobis.tolist(),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OODReference:
        return cls(
            np.asarray(d["recon_mse"], float),
            np.asarray(d["latent_mean"], float),
            np.asarray(d["latent_cov"], float),
            np.asarray(d["mahalanobis2"], float),
            str(d.get("source", "")),
        )


@dataclass
class ModelCalibration:
    """Everything stored beside a model in ``calibration.json``.

    Attributes
    ----------
    names
        The model's parameter names.
    ml, refined
        :class:`ScaleCalibration` of the ML answer and of the accepted refinements (None if not fitted).
    fingerprint
        SHA-256 of the model's weight files it was fitted for (:func:`model_fingerprint`).
    ood
        :class:`OODReference` (None if not stored).
    provenance
        How it was fitted (benchmark, split, truths, counts), JSON-able.
    """

    names: tuple[str, ...]
    ml: ScaleCalibration
    refined: ScaleCalibration | None = None
    fingerprint: dict = field(default_factory=dict)
    ood: OODReference | None = None
    provenance: dict = field(default_factory=dict)

    def calibrate(
        self, theta: np.ndarray, sigma_raw: np.ndarray, *, estimator: str = "ml", accepted: bool = True
    ) -> dict:
        """Calibrated intervals of one answer, JSON-able.

        Parameters
        ----------
        theta, sigma_raw
            Shape (k,), eV/Å²: the answer and its raw σ (latent spread, or the fit's Laplace σ).
        estimator
            ``"ml"`` or ``"refined"``.
        accepted
            For ``"refined"``: False when the refinement was rejected (the ML answer came back;
            pass the ML raw σ then), which selects the ML calibration.

        Returns
        -------
        dict
            ``{name: {"theta", "sigma", "half95", "sigma_raw"}, "sigma_meaning": ..., "calibration": ...}``.
        """
        if estimator not in ("ml", "refined"):
            raise CalibrationError(f"estimator {estimator!r} is unknown. Use 'ml' or 'refined'.")
        cal = self.refined if estimator == "refined" and accepted and self.refined is not None else self.ml
        if estimator == "refined" and accepted and self.refined is None:
            raise CalibrationError(
                "this calibration has no part for refined answers. Refit it with benchmarks/calibration.py "
                "--write."
            )
        th, s = np.asarray(theta, float), np.asarray(sigma_raw, float)
        sig, h95 = cal.apply(s)
        out: dict = {
            n: {"theta": float(t), "sigma": _f(a), "half95": _f(b), "sigma_raw": _f(r)}
            for n, t, a, b, r in zip(self.names, th, sig, h95, s)
        }
        out["sigma_meaning"] = SIGMA_MEANING
        out["calibration"] = (
            f"{cal.estimator} calibration ({int(np.min(cal.n_cal))}+ calibration experiments)"
        )
        return out

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "names": list(self.names),
            "sigma_meaning": SIGMA_MEANING,
            "method": __doc__.split("Method")[1].split("The calibration is stored")[0].strip()
            if __doc__
            else "",
            "ml": self.ml.to_dict(),
            "refined": None if self.refined is None else self.refined.to_dict(),
            "fingerprint": self.fingerprint,
            "ood_reference": None if self.ood is None else self.ood.to_dict(),
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCalibration:
        if d.get("format") != FORMAT:
            raise CalibrationError(
                f"format {d.get('format')!r} is not {FORMAT!r}. Pass a calibration.json written by fcinv."
            )
        ml = ScaleCalibration.from_dict(d["ml"])
        ref = ScaleCalibration.from_dict(d["refined"]) if d.get("refined") else None
        ood = OODReference.from_dict(d["ood_reference"]) if d.get("ood_reference") else None
        return cls(
            tuple(d["names"]), ml, ref, dict(d.get("fingerprint", {})), ood, dict(d.get("provenance", {}))
        )

    def write(self, path: str | Path) -> Path:
        """Write atomically (``path`` a file or a model folder: then ``<folder>/calibration.json``)."""
        from fcinv._json import write_json

        p = Path(path)
        return write_json(p / CALIBRATION_FILE if p.is_dir() else p, self.to_dict())


def _f(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(predictor) -> dict:
    """SHA-256 of the weight files of a loaded :class:`~fcinv.inference.FCPredictor`, by part."""
    out = {}
    for part in ("vae", "regressor", "resnet"):
        m = getattr(predictor, part, None)
        ck = getattr(m, "checkpoint", None) if m is not None else None
        path = getattr(ck, "path", None)
        if path is not None and (Path(path) / "weights.pt").is_file():
            out[part] = _sha256(Path(path) / "weights.pt")
    return out


def model_folder(predictor) -> Path | None:
    """The folder holding a predictor's checkpoints (where ``calibration.json`` lives), or None."""
    src = Path(predictor.source) if getattr(predictor, "source", "") else None
    if src is None:
        return None
    return src.parent if src.name in ("regressor", "resnet") else src


def load_calibration(
    predictor, path: str | Path | None = None, *, required: bool = False
) -> ModelCalibration | None:
    """The calibration of a loaded model: ``path``, or ``calibration.json`` in its folder.

    Parameters
    ----------
    predictor
        The loaded :class:`~fcinv.inference.FCPredictor`.
    path
        A calibration file; default the model folder's.
    required
        Raise instead of returning None (with a logged warning) when there is none, or when it
        was fitted for other weights or parameters (e.g. after the model was retrained).

    Raises
    ------
    CalibrationError
        The file is malformed (always); missing or fitted for another model (``required``).
    """
    p = Path(path) if path is not None else ((model_folder(predictor) or Path(".")) / CALIBRATION_FILE)
    if not p.is_file():
        if required:
            raise CalibrationError(
                f"no calibration at {p}. Fit one with benchmarks/calibration.py --model <model> --write "
                "model."
            )
        log.info("no calibration at %s; sigma stays the uncalibrated spread", p)
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise CalibrationError(
                f"{p} holds a JSON {json_kind(doc)}, not a calibration. Refit it with "
                "benchmarks/calibration.py --write."
            )
        cal = ModelCalibration.from_dict(doc)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CalibrationError(
            f"{p} is not a readable calibration ({describe_exception(exc)}). Refit it with "
            "benchmarks/calibration.py --write."
        ) from None
    fp = model_fingerprint(predictor)
    bad = [k for k, v in cal.fingerprint.items() if fp.get(k) not in (None, v)]
    why = None
    if bad:
        why = (
            f"{p} was fitted for other {'/'.join(bad)} weights than {predictor.source}; its intervals do not "
            "apply. Refit it for this model with benchmarks/calibration.py --write model."
        )
    elif tuple(cal.names) != tuple(predictor.names):
        why = (
            f"{p} is for parameters {list(cal.names)}, the model predicts {list(predictor.names)}. Refit it "
            "for this model."
        )
    if why is not None:
        if required:
            raise CalibrationError(why)
        log.warning("calibration not used: %s", why)  # a retrained model falls back to the raw σ, said so
        return None
    return cal
