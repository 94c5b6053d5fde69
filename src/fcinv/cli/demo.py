"""``fcinv demo``: Stage III end to end on the embedded Ge default (simulated experiment → fold → FCs ± σ).

Example
-------
fcinv demo --out out/demo
"""

from __future__ import annotations

import argparse
import time

from fcinv.cli._common import add_logging_args, cli_main, show_progress


def get_parser() -> argparse.ArgumentParser:
    from fcinv.pipeline.demo import DEFAULT_TRUTH

    p = argparse.ArgumentParser(prog="fcinv demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--model", default="ge", help="shipped model or model directory (default ge)")
    p.add_argument("--truth", default=DEFAULT_TRUTH, help=f"ensemble member whose force constants are the truth (default {DEFAULT_TRUTH}), or dft:<folder>")
    p.add_argument("--truth-mode", choices=("sampled", "member"), default="sampled", help="sampled: the reference FC set with the sampled parameters at the member's values (representable); member: the member's own FC set")
    p.add_argument("--orientations", type=int, default=120)
    p.add_argument("--single-scans", type=int, default=12, help="single orientations to invert (0: none)")
    p.add_argument("--no-refine", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    add_logging_args(p)
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.pipeline.demo import run_demo
    from fcinv.units import THZ_TO_MEV

    t0 = time.perf_counter()
    print(f"fcinv demo: simulated ARCS-like run ({args.orientations} orientations, 5 K, Ei = 40 meV), truth = {args.truth_mode}:{args.truth}")
    r = run_demo(args.out, model=args.model, truth=args.truth, truth_mode=args.truth_mode, orientations=args.orientations,
                 single_scans=args.single_scans, refine=not args.no_refine, seed=args.seed, progress=show_progress())
    print()
    print(r.ml_result.table(r.truth_dict))
    if r.refined is not None:
        print(r.result.table(r.truth_dict))
    print(f"dispersion of the final θ vs the truth along the path: rms {r.disp_rms_meV:.3f} meV ({r.disp_rms_meV / THZ_TO_MEV:.3f} THz)")
    if r.per_orientation:
        p = r.per_orientation
        print(f"single orientations ({len(p['psi_deg'])} of {args.orientations}): FC0-FC3 relative error median {100 * p['median_rel_err_fc0_3']:.1f} %, worst {100 * p['worst_rel_err_fc0_3']:.1f} %")
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items()) + f"; total {time.perf_counter() - t0:.1f} s")
    print("wrote " + ", ".join(r.files.values()))
    return 0
