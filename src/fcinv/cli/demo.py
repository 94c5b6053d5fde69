"""``fcinv demo``: Stage III end to end on the embedded Ge default (simulated experiment → fold → FCs ± σ).

Example
-------
fcinv demo --out out/demo
"""

from __future__ import annotations

import argparse
import time


def get_parser() -> argparse.ArgumentParser:
    from fcinv.demo import DEFAULT_TRUTH

    p = argparse.ArgumentParser(prog="fcinv demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--model", default="ge", help="shipped model or model directory (default ge)")
    p.add_argument("--truth", default=DEFAULT_TRUTH, help=f"ensemble member whose force constants are the truth (default {DEFAULT_TRUTH})")
    p.add_argument("--truth-mode", choices=("sampled", "member"), default="sampled", help="sampled: the reference FC set with the sampled parameters at the member's values (representable); member: the member's own FC set")
    p.add_argument("--orientations", type=int, default=120)
    p.add_argument("--single-scans", type=int, default=12, help="single orientations to invert (0: none)")
    p.add_argument("--no-refine", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.demo import run_demo

    t0 = time.perf_counter()
    print(f"fcinv demo: Ge, simulated ARCS-like run ({args.orientations} orientations, 5 K, Ei = 40 meV), truth = {args.truth_mode}:{args.truth}")
    r = run_demo(args.out, model=args.model, truth=args.truth, truth_mode=args.truth_mode, orientations=args.orientations, single_scans=args.single_scans, refine=not args.no_refine, seed=args.seed)
    print(f"\n{'':4} {'name':<8} {'truth':>9} {'ML':>9} {'± σ':>8} {'err':>7}" + (f" {'refined':>9} {'± σ':>8} {'err':>7}" if r.refined is not None else ""))
    e_ml = r.rel_err("ml")
    e_rf = r.rel_err("refined") if r.refined is not None else None
    for i, n in enumerate(r.names):
        line = f"FC{i:<2} {n:<8} {r.truth[i]:>9.4f} {r.ml[i]:>9.4f} {r.ml_sigma[i]:>8.4f} {100 * e_ml[i]:>6.1f}%"
        if e_rf is not None:
            line += f" {r.refined[i]:>9.4f} {r.refined_sigma[i]:>8.4f} {100 * e_rf[i]:>6.1f}%"
        print(line)
    print("(eV/Å²; σ for ML: spread over 100 latent samples; for the refinement: from the fit's Jacobian)")
    print(f"dispersion of the final θ vs the truth along the path: rms {r.disp_rms_meV:.3f} meV ({r.disp_rms_meV / 4.135667696923859:.3f} THz)")
    if r.per_orientation:
        p = r.per_orientation
        print(f"single orientations ({len(p['psi_deg'])} of {args.orientations}): FC0-FC3 relative error median {100 * p['median_rel_err_fc0_3']:.1f} %, worst {100 * p['worst_rel_err_fc0_3']:.1f} %")
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items()) + f"; total {time.perf_counter() - t0:.1f} s")
    print("wrote " + ", ".join(r.files.values()) + f", {args.out}/single_scans.png, {args.out}/demo.json")
    return 0
