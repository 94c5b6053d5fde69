"""Classical least-squares fits against the ML inversion and the hybrid (ML + refine), on noisy simulated Ge spectra.

N Ge test truths (default 100): the test split of the trained model's dataset when that
file is present (``--dataset`` or the path recorded in the regressor checkpoint), else
seeded stable draws from the training domain (the reference's widened ensemble box).
Each clean spectrum comes from the embedded reference forward model and gets counting
noise at the noise grid's middle setting (``fcinv.noise.MIDDLE_SETTING``: background
B = 0.1 of the peak, P = 300 counts at the peak, min–max scaled), seeded per spectrum.
Every method sees the same noisy, scaled image, in one run on one machine:

- ``ml``: the model's mean θ over 100 latent samples (``predict(k_samples=100, seed=0)``);
- ``fit_ref``: one local least-squares fit (scale, background, the model's free
  parameters) started from the reference θ — the classical route;
- ``fit_multi``: ``--starts`` local fits from the reference and the best of
  ``--candidates`` seeded draws from the training domain (screened by misfit);
- ``ml_refine``: the ML answer, then ``fcinv.fitting.refine`` from it: the mean and the
  100 latent-sample predictions are scored by misfit and one local fit starts from the
  best (the timing is prediction + screening + fit).

Per method: mean relative error |θ̂ − θ| / |θ| over FC0–FC3 and all spectra (the headline;
near-zero truths inflate it, so the median and a range-normalised error are printed as
well), and the median wall time per spectrum. ``refine_speedup`` is the median time of
the more accurate fit (by mean FC0–FC3 error) over the median time of ML + refine.

Usage: python benchmarks/fit_vs_ml.py [--model ge] [--n 100] [--starts 8] [--json out.json]
Last line: ``RESULT refine_speedup=<x> refine_err=<f> best_fit_err=<f>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("ml", "fit_ref", "fit_multi", "ml_refine")


def load_truths(args, model, predictor, ref):
    """(θ (n, k), source text, domain) — the dataset's test split if available, else domain draws."""
    from fcinv.dataset.generate import Domain, widened_domain

    path = args.dataset
    if path is None:
        cfg = getattr(getattr(predictor.regressor, "checkpoint", None), "raw", None) or {}
        path = (cfg.get("dataset") or {}).get("path")
    if path and Path(path).is_file():
        from fcinv.dataset import read_dataset

        ds = read_dataset(path)
        try:
            if list(ds.names) != list(model.names):
                raise SystemExit(f"dataset {path} varies {list(ds.names)}, the model {model.names}")
            theta = ds.part("test")[0]
            theta = theta[: args.n]
            lo, hi = ds.meta.get("domain_low"), ds.meta.get("domain_high")
            dom = (
                Domain(tuple(ds.names), np.asarray(lo), np.asarray(hi))
                if lo is not None and hi is not None
                else None
            )
        finally:
            ds.close()
        if len(theta) < args.n:
            print(f"note: the test split of {path} has only {len(theta)} samples")
        return theta, f"test split of {path}", dom
    lo, hi = ref.bounds(model.names)
    dom = widened_domain(model.names, lo, hi, model.theta0)
    rng = np.random.default_rng(args.seed)
    draws = dom.sample(8 * args.n, rng)
    theta = draws[model.is_stable(draws)][: args.n]
    return theta, f"stable draws from the training domain (seed {args.seed})", dom


def rel_err(est: np.ndarray, truth: np.ndarray, n: int = 4) -> np.ndarray:
    return np.abs(est[:n] - truth[:n]) / np.abs(truth[:n])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", default="ge", help="shipped model name or a model directory (vae/ + regressor/)"
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset whose test split supplies the truths (default: the model's, if present)",
    )
    p.add_argument("--n", type=int, default=100, help="number of test spectra")
    p.add_argument("--starts", type=int, default=8, help="local fits of the multi-start fit")
    p.add_argument("--candidates", type=int, default=256, help="screened candidates of the multi-start fit")
    p.add_argument("--seed", type=int, default=0, help="seed of the truths (domain draws) and of the noise")
    p.add_argument("--device", default="cpu", help="torch device of the ML model")
    p.add_argument("--json", default=None, help="write per-method figures and per-spectrum errors here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from tqdm.auto import tqdm

    from fcinv.errors import FcinvError
    from fcinv.fitting import fit_spectrum, refine
    from fcinv.inference import load_model
    from fcinv.noise import MIDDLE_SETTING, add_noise
    from fcinv.reference import load_reference

    try:
        predictor = load_model(args.model, device=args.device)
    except FcinvError as exc:
        print(f"cannot load the ML model '{args.model}': {exc}", file=sys.stderr)
        print("RESULT refine_speedup=nan refine_err=nan best_fit_err=nan")
        return 2
    ref = load_reference("Ge")
    model = ref.forward_model(free=list(predictor.names), grid=predictor.grid)
    truths, source, dom = load_truths(args, model, predictor, ref)
    n = len(truths)
    print(f"{n} Ge truths ({source}); noise {MIDDLE_SETTING.label}; model {predictor!r}")
    print(
        f"FC0-FC3 = {model.names[:4]}; multi-start: {args.starts} starts of {args.candidates} candidates; threads: numba {os.environ.get('NUMBA_NUM_THREADS', 'default')}"
    )
    clean = model.spectra(truths)
    noisy = np.stack(
        [
            add_noise(
                c,
                MIDDLE_SETTING.background,
                MIDDLE_SETTING.scale,
                np.random.default_rng(args.seed * 100_003 + i),
            )
            for i, c in enumerate(clean)
        ]
    )
    # warm-up (JIT, caches) outside the timings
    predictor.predict(noisy[0], k_samples=100, seed=0)
    fit_spectrum(model, noisy[0], max_nfev=3)

    est = {m: np.zeros_like(truths) for m in METHODS}
    wall = {m: np.zeros(n) for m in METHODS}
    conv = {m: np.ones(n, dtype=bool) for m in METHODS}
    for i in tqdm(range(n), desc="spectra", unit="spectrum"):
        y = noisy[i]
        t = time.perf_counter()
        pred = predictor.predict(y, k_samples=100, seed=0)
        wall["ml"][i] = time.perf_counter() - t
        est["ml"][i] = pred.theta
        t = time.perf_counter()
        r = refine(model, y, pred)  # the mean, and its 100 latent-sample predictions screened by misfit
        wall["ml_refine"][i] = wall["ml"][i] + time.perf_counter() - t
        est["ml_refine"][i], conv["ml_refine"][i] = r.theta, r.success
        t = time.perf_counter()
        r = fit_spectrum(model, y)
        wall["fit_ref"][i] = time.perf_counter() - t
        est["fit_ref"][i], conv["fit_ref"][i] = r.theta, r.success
        t = time.perf_counter()
        r = fit_spectrum(
            model, y, n_starts=args.starts, n_candidates=args.candidates, domain=dom, seed=args.seed + i
        )
        wall["fit_multi"][i] = time.perf_counter() - t
        est["fit_multi"][i], conv["fit_multi"][i] = r.theta, r.success

    width = (dom.high - dom.low)[:4] if dom is not None else np.abs(model.theta0[:4])
    rows = {}
    print(
        f"\n{'method':<10} {'mean rel err':>12} {'median rel':>10} {'|err|/range':>11} {'median s':>9} {'converged':>9}"
    )
    for m in METHODS:
        e = np.array([rel_err(est[m][i], truths[i]) for i in range(n)])
        norm = np.abs(est[m][:, :4] - truths[:, :4]) / width
        rows[m] = {
            "mean_rel_err_fc0_3": float(e.mean()),
            "median_rel_err_fc0_3": float(np.median(e)),
            "mean_err_over_domain_range_fc0_3": float(norm.mean()),
            "median_wall_s": float(np.median(wall[m])),
            "mean_wall_s": float(np.mean(wall[m])),
            "converged_fraction": float(conv[m].mean()),
            "per_spectrum_rel_err": e.mean(axis=1).tolist(),
        }
        r = rows[m]
        print(
            f"{m:<10} {r['mean_rel_err_fc0_3']:>12.4f} {r['median_rel_err_fc0_3']:>10.4f} {r['mean_err_over_domain_range_fc0_3']:>11.4f} {r['median_wall_s']:>9.3f} {r['converged_fraction']:>9.2f}"
        )
    best = min(("fit_ref", "fit_multi"), key=lambda m: rows[m]["mean_rel_err_fc0_3"])
    speedup = rows[best]["median_wall_s"] / rows["ml_refine"]["median_wall_s"]
    refine_err = rows["ml_refine"]["mean_rel_err_fc0_3"]
    best_err = rows[best]["mean_rel_err_fc0_3"]
    print(
        f"\nbest fit: {best}; ML + refine is {speedup:.1f}x faster (median), error {refine_err:.4f} vs {best_err:.4f}"
    )
    if args.json:
        out = Path(args.json)
        doc = {
            "n": n,
            "truths": source,
            "noise": MIDDLE_SETTING.label,
            "model": repr(predictor),
            "names": list(model.names),
            "starts": args.starts,
            "candidates": args.candidates,
            "seed": args.seed,
            "methods": rows,
            "best_fit": best,
            "refine_speedup": speedup,
            "refine_err": refine_err,
            "best_fit_err": best_err,
            "command": " ".join([sys.executable, *sys.argv]),
        }
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(out)
        print(f"wrote {out}")
    print(f"RESULT refine_speedup={speedup:.2f} refine_err={refine_err:.4f} best_fit_err={best_err:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
