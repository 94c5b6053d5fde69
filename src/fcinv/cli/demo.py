"""``fcinv demo``: Stage III end to end on the embedded Ge default (simulated experiment → fold → FCs ± σ).

Example
-------
fcinv demo --out out/demo
"""

from __future__ import annotations

import argparse
import time

from fcinv.cli._common import add_logging_args, add_plot_args, cli_main, plot_wanted, show_progress


def get_parser() -> argparse.ArgumentParser:
    from fcinv.pipeline.demo import AUTO_TRUTH, DEFAULT_TRUTH, SHARED_DATA_ENV

    p = argparse.ArgumentParser(
        prog="fcinv demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--model", default="ge", help="shipped model or model directory (default ge)")
    p.add_argument(
        "--truth",
        default=AUTO_TRUTH,
        help=f"the truth: auto (default: the full DFT Ge set, found through ${SHARED_DATA_ENV} or "
        f"<repo>/../shared/data, else the fallback: the reference FC set with every parameter at the "
        f"{DEFAULT_TRUTH} member's values), an ensemble member, or dft:<folder>",
    )
    p.add_argument(
        "--truth-mode",
        choices=("sampled", "member"),
        default="sampled",
        help="sampled: the reference FC set with the sampled parameters at the member's values "
        "(representable); member: the member's own FC set",
    )
    p.add_argument("--orientations", type=int, default=None, help="sample rotations, 1° apart (default 120)")
    p.add_argument(
        "--single-scans", type=int, default=None, help="single orientations to invert (0: none; default 12)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small run (3 orientations, 2 single scans) to check the installation, not the method",
    )
    p.add_argument("--no-refine", action="store_true")
    add_plot_args(p, default=True)
    p.add_argument("--seed", type=int, default=0)
    add_logging_args(p)
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.pipeline.demo import resolve_truth, run_demo
    from fcinv.units import THZ_TO_MEV

    t0 = time.perf_counter()
    if args.orientations is None:
        args.orientations = 3 if args.quick else 120
    if args.single_scans is None:
        args.single_scans = 2 if args.quick else 12
    truth, mode = resolve_truth("Ge" if args.model.startswith("ge") else "", args.truth, args.truth_mode)
    what = (
        f"the full DFT Ge set ({truth[4:]}, whole FORCE_CONSTANTS file)"
        if truth.startswith("dft:") and mode == "member"
        else f"{mode}:{truth}" + (" (fallback: the DFT Ge set was not found)" if args.truth == "auto" else "")
    )
    print(
        f"fcinv demo: simulated ARCS-like run ({args.orientations} orientations, 5 K, Ei = 40 meV), "
        f"truth = {what}"
    )
    r = run_demo(
        args.out,
        model=args.model,
        truth=truth,
        truth_mode=mode,
        orientations=args.orientations,
        single_scans=args.single_scans,
        refine=not args.no_refine,
        seed=args.seed,
        progress=show_progress(),
        plot=plot_wanted(args),
    )
    print(comparison_table(r))
    print("(eV/Å²; σ for ML: " + r.ml_result.sigma_meaning.split(";")[0] + ")")
    if r.refined is not None:
        meaning = r.result.sigma_meaning
        extra = (
            ", in quadrature with the cutoff systematic (each parameter's move in the last shell stage)"
            if "cutoff systematic" in meaning
            else ""
        )
        print("(σ for the refinement: " + meaning.split(":")[0] + extra + ")")
    print(
        "dispersion of the final θ vs the truth's own (phonopy) along the path: "
        f"rms {r.disp_rms_meV:.3f} meV "
        f"({r.disp_rms_meV / THZ_TO_MEV:.3f} THz)"
    )
    if r.refined is not None and r.ml_disp_rms_meV is not None:
        print(
            f"  (the ML answer before the refinement: rms {r.ml_disp_rms_meV:.3f} meV, "
            f"{r.ml_disp_rms_meV / THZ_TO_MEV:.3f} THz)"
        )
    if r.per_orientation:
        p = r.per_orientation
        print(
            f"single orientations ({len(p['psi_deg'])} of {args.orientations}): FC0-FC3 relative error "
            f"median {100 * p['median_rel_err_fc0_3']:.1f} %, worst {100 * p['worst_rel_err_fc0_3']:.1f} %"
        )
    for w in dict.fromkeys(r.result.adequacy.get("warnings", [])):
        print(f"WARNING: {w}")
    print(
        "timings: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
        + f"; total {time.perf_counter() - t0:.1f} s"
    )
    print("wrote " + ", ".join(r.files.values()))
    return 0


def comparison_table(r) -> str:
    """Truth, ML ± σ and error, and (when refined) refined ± σ and error, one line per parameter.

    A refinement continued into more shells has more parameters than the ML model: their ML columns
    show "–"."""
    ml = r.ml_result
    ml_th, ml_sg = ml.theta_dict(), ml.sigma_dict()
    ml_err = dict(zip(ml.names, r.rel_err("ml")))
    head = f"{'':5} {'name':<8} {'truth*':>9} {'ML':>9} {'± σ':>8} {'err':>7}"
    refined = r.refined is not None
    if refined:
        head += f" {'refined':>9} {'± σ':>8} {'err':>7}"
    lines = [head]
    e_rf = r.rel_err("refined") if refined else None
    for i, n in enumerate(r.names):
        line = f"FC{i:<3} {n:<8} {r.truth[i]:>9.4f} "
        if n in ml_th:
            line += f"{ml_th[n]:>9.4f} {ml_sg[n]:>8.4f} {100 * ml_err[n]:>6.1f}%"
        else:
            line += f"{'–':>9} {'':>8} {'':>7}"
        if e_rf is not None:
            line += f" {r.result.theta[i]:>9.4f} {r.result.sigma[i]:>8.4f} {100 * e_rf[i]:>6.1f}%"
        lines.append(line)
    lines.append(
        "* the truth's projection onto the model's parameters (the refinement's, when it continued "
        "into more shells)"
    )
    if refined and not r.result.adequacy.get("success", True):
        lines.append("refinement NOT trusted: " + str(r.result.extra.get("message", "")))
    return "\n".join(lines)
