"""Checks of the closed-loop steering benchmark (``benchmarks/steering.py``): Ge's rotation symmetry
about the goniometer axis, the truth projection's χ²/dof on the current data (the yardstick of the trust
bound), and the incremental refit against a full continuation."""

from __future__ import annotations

import time

import numpy as np


def truth_chi2(model, theta: np.ndarray, fs) -> float:
    """Pearson χ²/dof (model variance, as the refits report it) of the truth's own projection on the
    current data: the model at θ_true, only scale and flat background fitted (Poisson deviance).

    The misfit the 11-shell space cannot remove however long one counts: the yardstick of the trust
    bound (a model with a fixed systematic has a χ²/dof that grows with the counts)."""
    from scipy.optimize import least_squares

    from fcinv.fitting.image import deviance_residuals, pearson_chi2

    if fs.exposure is None:
        return float("nan")
    img = np.asarray(model.spectra(np.asarray(theta, float)[None]), float)[0]
    m = fs.mask & np.isfinite(fs.intensity) & np.isfinite(img) & (fs.exposure > 0)
    x_i, y, c = img[m], fs.intensity[m], fs.exposure[m]
    mu0 = 1e-9 * max(float(np.max(np.abs(y))), 1e-300)
    a = np.vstack([x_i, np.ones_like(x_i)]).T
    x0 = np.linalg.lstsq(a, y, rcond=None)[0]
    x0 = np.array([max(x0[0], 1e-6), max(x0[1], 1e-6)])
    fit = least_squares(lambda x: deviance_residuals(x[0] * x_i + x[1], y, c, mu0)[0], x0, x_scale="jac")
    return pearson_chi2(fit.x[0] * x_i + fit.x[1], y, c, mu0) / max(len(y) - 2, 1)


def symmetry_check(pool_type, plan, sim, j: int = 17) -> str:
    """Whether ψ + 90° measures what ψ does (the 4-fold of Ge's m-3m about the rotation axis [001]).

    ψ = j, j + 90°, j + 180° (the 2-fold, an exact symmetry: the yardstick of what the binning alone
    changes) and 90° − j (the mirror through [110], broken by the detectors' asymmetric in-plane range)
    are simulated in one run (one normalisation) and their expected counts folded; printed: the pixels
    measured by both and the median |ΔI|/I (pixels above 1 % of the peak) and Σ|ΔI|/ΣI relative to
    ψ = j. The 4D bins (edges −7.9125 … 7.9375 r.l.u.) are not symmetric under the rotation, so even
    the exact 2-fold leaves a binning difference."""
    angles = (float(j), j + 90.0, j + 180.0, 90.0 - j)
    pool = pool_type(sim(angles))
    f = [plan.apply(pool.expected_volume(k)) for k in range(len(angles))]
    out = []
    for k in range(1, len(angles)):
        both = f[0].mask & f[k].mask
        a, b = f[0].intensity[both], f[k].intensity[both]
        d = np.abs(a - b)
        lit = np.abs(a) > 0.01 * np.max(np.abs(a))
        out.append(
            f"{angles[k]:g}° vs {j}°: {int(both.sum())} of {int(f[0].mask.sum())} pixels shared, median "
            f"|ΔI|/I {np.median(d[lit] / np.abs(a[lit])):.3f} (pixels above 1 % of the peak), "
            f"Σ|ΔI|/ΣI {d.sum() / np.abs(a).sum():.3f}"
        )
    return "; ".join(out)


def compare_with_full(r, first, names, truth_by_name):
    """The incremental refit's last answer against a full continuation (from the same ML answer) on the
    same data: answer difference and time."""
    from fcinv.steering.refit import IncrementalRefit

    joint = r["joint"]
    full = IncrementalRefit(
        "Ge", joint, first_kwargs={"max_nfev": 60, "outliers": False, "stability_mesh": 4}
    )
    t = time.perf_counter()
    rf = full.refit(r["final_fold"], first["pred"])
    t_full = time.perf_counter() - t
    inc = r["final_result"]
    a, b = inc.theta_dict(), rf.theta_dict()
    common = [k for k in a if k in b]
    d = np.array([a[k] - b[k] for k in common])
    sig = dict(zip(rf.names, np.asarray(rf.sigma, float)))
    return {
        "n_orientations": len(r["psi_measured"]),
        "kind": r["kind"],
        "full_wall_s": t_full,
        "incremental_wall_s": r["refit_s"][-1] if r["refit_s"] else None,
        "max_abs_diff_all": float(np.max(np.abs(d))),
        "diff_fc03": {k: a[k] - b[k] for k in names},
        "diff_over_full_sigma_fc03": {k: (a[k] - b[k]) / sig[k] for k in names},
        "full_err_pct_fc03": {k: 100 * (b[k] - truth_by_name[k]) / abs(truth_by_name[k]) for k in names},
        "incremental_err_pct_fc03": {
            k: 100 * (a[k] - truth_by_name[k]) / abs(truth_by_name[k]) for k in names
        },
        "full_chi2_dof": rf.chi2_dof,
        "incremental_chi2_dof": inc.chi2_dof,
        "full_stages": rf.extra.get("stages"),
    }
