"""Calibrated σ (fcinv.calibration): split-conformal scale calibration, its file and its guards."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fcinv.calibration import (
    CALIBRATION_FILE,
    CalibrationError,
    ModelCalibration,
    OODReference,
    ScaleCalibration,
    conformal_quantile,
    coverage,
    load_calibration,
)

NAMES = ("p0", "p1", "p2")


def _experiments(
    n: int, seed: int, a=(3.0, 0.5, 8.0), tau=(0.05, 0.2, 0.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constructed estimator: raw σ log-uniform, error ~ N(0, (a σ)² + τ²) (σ too small + a discrepancy)."""
    rng = np.random.default_rng(seed)
    sig = np.exp(rng.uniform(np.log(0.01), np.log(0.3), (n, len(NAMES))))
    sd = np.sqrt((np.asarray(a) * sig) ** 2 + np.asarray(tau) ** 2)
    truth = rng.normal(-1.0, 0.5, (n, len(NAMES)))
    return truth + sd * rng.standard_normal((n, len(NAMES))), sig, truth


def test_conformal_quantile_rank_and_small_n():
    s = np.arange(1.0, 11.0)  # 1..10
    assert conformal_quantile(s, 0.5) == 6.0  # ceil(11 * 0.5) = 6th smallest
    assert conformal_quantile(s, 0.95) == np.inf  # ceil(11 * 0.95) = 11 > n
    assert conformal_quantile(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == 2.0


def test_calibration_fitted_on_one_split_covers_another():
    est, sig, tru = _experiments(400, seed=1)
    cal = ScaleCalibration.fit(NAMES, est, sig, tru)
    est2, sig2, tru2 = _experiments(4000, seed=2)
    raw68 = coverage(est2, tru2, sig2)
    s68, s95 = cal.apply(sig2)
    c68, c95 = coverage(est2, tru2, s68), coverage(est2, tru2, s95)
    assert raw68 < 0.45  # the raw spread is far too small
    assert 0.64 <= c68 <= 0.73, c68
    assert 0.93 <= c95 <= 0.975, c95
    for j in range(len(NAMES)):  # and per parameter, not only pooled
        assert 0.62 <= coverage(est2[:, j], tru2[:, j], s68[:, j]) <= 0.75
    # the variance model finds the scale and the discrepancy floor
    assert cal.a[0] == pytest.approx(3.0, rel=0.3) and cal.tau[1] == pytest.approx(0.2, rel=0.3)


def test_fit_refuses_too_few_or_misshaped():
    est, sig, tru = _experiments(10, seed=3)
    with pytest.raises(CalibrationError, match="usable calibration experiments"):
        ScaleCalibration.fit(NAMES, est, sig, tru)
    with pytest.raises(CalibrationError, match="must all be"):
        ScaleCalibration.fit(NAMES, est[:, :2], sig, tru)
    cal = ScaleCalibration.fit(NAMES, *_experiments(50, seed=4))
    with pytest.raises(CalibrationError, match="this calibration is for 3"):
        cal.apply(np.ones(2))


def _model_cal(n: int = 60) -> ModelCalibration:
    ml = ScaleCalibration.fit(NAMES, *_experiments(n, seed=5))
    rf = ScaleCalibration.fit(
        NAMES, *_experiments(n, seed=6, a=(1.0, 1.0, 1.0), tau=(0.01, 0.01, 0.01)), estimator="refined"
    )
    rng = np.random.default_rng(0)
    ood = OODReference.fit(rng.gamma(2.0, 0.01, 50), rng.standard_normal((50, 4)), source="constructed")
    return ModelCalibration(NAMES, ml, rf, {"regressor": "0" * 64}, ood, {"test": True})


def test_calibrate_says_what_sigma_means_and_rejected_refinement_takes_ml():
    cal = _model_cal()
    th, s = np.array([-1.0, 0.5, 0.1]), np.array([0.05, 0.05, 0.05])
    out_ml = cal.calibrate(th, s, estimator="ml")
    out_rf = cal.calibrate(th, s, estimator="refined", accepted=True)
    out_rej = cal.calibrate(th, s, estimator="refined", accepted=False)
    assert "68.3%" in out_ml["sigma_meaning"] and "95%" in out_ml["sigma_meaning"]
    assert out_rej["p0"]["sigma"] == out_ml["p0"]["sigma"] != out_rf["p0"]["sigma"]
    assert out_ml["p0"]["half95"] > out_ml["p0"]["sigma"] > s[0]
    json.dumps(out_ml)
    with pytest.raises(CalibrationError, match="unknown"):
        cal.calibrate(th, s, estimator="bayes")


def test_ood_reference_percentiles():
    rng = np.random.default_rng(1)
    ref = OODReference.fit(rng.gamma(2.0, 0.01, 200), rng.standard_normal((200, 4)))
    inside = ref.score(0.02, np.zeros(4))
    outside = ref.score(1.0, np.full(4, 10.0))
    assert inside["recon_percentile"] < 80 and inside["latent_percentile"] < 20
    assert outside["recon_percentile"] == 100.0 and outside["latent_percentile"] == 100.0
    with pytest.raises(CalibrationError, match="need >= 10"):
        OODReference.fit(np.ones(3), np.zeros((3, 4)))


def _fake_predictor(tmp_path: Path, weights: bytes) -> SimpleNamespace:
    d = tmp_path / "model" / "regressor"
    d.mkdir(parents=True)
    (d / "weights.pt").write_bytes(weights)
    reg = SimpleNamespace(checkpoint=SimpleNamespace(path=d))
    return SimpleNamespace(source=str(d), names=NAMES, vae=None, regressor=reg, resnet=None)


def test_file_round_trip_and_fingerprint_guard(tmp_path):
    from fcinv.calibration import model_fingerprint

    pred = _fake_predictor(tmp_path, b"weights-A")
    assert load_calibration(pred) is None
    with pytest.raises(CalibrationError, match="no calibration"):
        load_calibration(pred, required=True)
    cal = _model_cal()
    cal.fingerprint = model_fingerprint(pred)
    path = cal.write(tmp_path / "model")
    assert path.name == CALIBRATION_FILE
    back = load_calibration(pred)
    assert (
        back is not None
        and np.allclose(back.ml.q68, cal.ml.q68)
        and np.allclose(back.refined.tau, cal.refined.tau)
    )
    assert np.allclose(back.ood.latent_cov, cal.ood.latent_cov)
    (Path(pred.source) / "weights.pt").write_bytes(b"weights-B")  # the model was retrained
    assert load_calibration(pred) is None  # not applied (warned): σ falls back to the raw spread
    with pytest.raises(CalibrationError, match="other regressor weights"):
        load_calibration(pred, required=True)
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="not a readable calibration"):
        load_calibration(pred)


def test_trust_report_with_the_shipped_model(tmp_path):
    """End to end at library level: predict, calibrate (a calibration fitted for these weights), verdict."""
    from fcinv.adequacy import AdequacyError
    from fcinv.calibration import model_fingerprint
    from fcinv.inference import load_model
    from fcinv.reference import load_reference
    from fcinv.trust import trust_report

    pred = load_model("ge")
    ref = load_reference(pred.grid.material or "Ge")
    fm = ref.forward_model(free=list(pred.names), grid=pred.grid)
    img = np.asarray(fm.spectra(fm.theta0[None])[0], float)
    p = pred.predict(img, k_samples=20)
    k = len(pred.names)
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 1, (40, k))
    sig = np.full((40, k), 0.01)
    est = truth + rng.normal(0, 0.2, (40, k))
    ml = ScaleCalibration.fit(pred.names, est, sig, truth)
    cal = ModelCalibration(tuple(pred.names), ml, None, model_fingerprint(pred))
    rep = trust_report(pred, p, img, forward_model=fm, calibration=cal)
    d = rep.as_dict()
    assert rep.calibrated and d["adequacy"]["verdict"] == "adequate"
    first = pred.names[0]
    assert d["ml"][first]["sigma"] > d["ml"][first]["sigma_raw"]
    assert any(line.startswith("sigma: calibrated") for line in rep.table_lines())
    json.dumps(d)
    raw = trust_report(pred, p, img, calibration=None)
    assert not raw.calibrated and "not an error bar" in raw.ml["sigma_meaning"]
    with pytest.raises(AdequacyError, match="zero"):
        trust_report(pred, p, np.zeros(pred.grid.shape), calibration=None)
    rejected = SimpleNamespace(success=False, theta=p.theta + 1.0, sigma=p.sigma)
    rep2 = trust_report(pred, p, img, refined=rejected, calibration=cal)
    assert rep2.refined[first]["theta"] == pytest.approx(float(p.theta[0]))
    assert any("rejected" in w for w in rep2.as_dict()["warnings"])


def test_shipped_calibration_matches_the_shipped_model():
    from fcinv.inference import load_model

    pred = load_model("ge")
    cal = load_calibration(pred)
    if cal is None:
        pytest.skip(
            "no calibration.json for these ge weights (retrained?): benchmarks/calibration.py --write model"
        )
    assert cal.names == tuple(pred.names) and cal.refined is not None and cal.ood is not None
    assert np.all(cal.ml.n_cal >= 20) and np.all(np.isfinite(cal.ml.q95))
    out = cal.calibrate(np.zeros(len(pred.names)), np.full(len(pred.names), 0.01))
    assert all(out[n]["sigma"] > 0.01 for n in pred.names)  # the discrepancy floor: wider than the raw spread
