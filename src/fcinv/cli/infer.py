"""``fcinv infer``: a measured spectrum → force constants with uncertainties, in seconds.

DATA is a folded spectrum (``fcinv fold``/``fcinv simulate`` output, pathSQE's
``folded_path_plot_*.npy``) or a 4D S(Q,E) volume (fcinv HDF5, Mantid MDHisto
NeXus, plain HDF5/NPZ), which is folded onto the model's q-path first.

Examples
--------
fcinv infer folded.h5 --model ge
fcinv infer run.h5 --model ge --refine --json fcs.json --png fcs.png
fcinv infer folded_path_plot_Ge.npy --model ge --rebin
fcinv infer run.h5 --model ge --per-orientation     # each single-orientation scan of a run

4D input is folded with the one-phonon corrections (Bose factor at --temperature,
division by |Q|², multiplication by E) that bring S(Q,E) towards the forward model's
convention of unit weight per mode; --no-corrections folds the raw intensity.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fcinv._json import write_json
from fcinv.cli._common import add_device_arg, command_line


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fcinv infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="folded spectrum or 4D volume")
    p.add_argument("--model", default="ge", help="shipped model name (ge, nb) or a model directory (default: ge)")
    p.add_argument("--material", default=None, help="material of the data (default: the model's)")
    p.add_argument("--k-samples", type=int, default=100, help="latent samples for the uncertainty (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rebin", action="store_true", help="interpolate a folded spectrum on another binning of the same path onto the model's grid")
    p.add_argument("--transpose", action="store_true", help="pathSQE array stored (n_E, n_q)")
    p.add_argument("--q-tolerance", type=float, default=0.05, help="folding tube radius in r.l.u. (4D input)")
    p.add_argument("--temperature", type=float, default=5.0, help="sample temperature (K) for the Bose correction of 4D input (default 5)")
    p.add_argument("--no-corrections", action="store_true", help="fold 4D input without the one-phonon corrections")
    p.add_argument("--per-orientation", action="store_true", help="DATA is a run file: infer every single orientation too, and plot the scatter and the error versus angle")
    p.add_argument("--refine", action="store_true", help="refine the ML answer by a least-squares fit to the spectrum")
    p.add_argument("--truth", default=None, metavar="JSON", help="JSON {name: value} of known force constants to compare with")
    p.add_argument("--json", default=None, help="write the result to this JSON file")
    p.add_argument("--png", default=None, help="write the figure here (default: DATA stem + _fcinv.png in the current folder)")
    p.add_argument("--no-png", action="store_true")
    add_device_arg(p)
    return p


def print_table(names, theta, sigma, truth=None, title="") -> None:
    if title:
        print(title)
    head = f"  {'':4} {'name':<8} {'value':>10} {'± σ':>9}  unit"
    if truth is not None:
        head += f"      {'truth':>9} {'error':>8}"
    print(head)
    for i, (n, t, s) in enumerate(zip(names, theta, sigma)):
        line = f"  FC{i:<2} {n:<8} {t:>10.4f} {s:>9.4f}  eV/Å²"
        if truth is not None and n in truth:
            tv = truth[n]
            line += f"  {tv:>9.4f} {100 * (t - tv) / abs(tv) if abs(tv) > 1e-9 else float('nan'):>7.1f}%"
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.devices import resolve_device
    from fcinv.inference import load_model
    from fcinv.reference import load_reference
    from fcinv.workflow import invert, load_spectrum, plot_inversion

    t0 = time.perf_counter()
    predictor = load_model(args.model, device=str(resolve_device(args.device)))
    material = args.material or predictor.grid.material or str(args.model)
    ref = load_reference(material)
    model = ref.forward_model(free=list(predictor.names), grid=predictor.grid)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    from fcinv.experiment.fold import Corrections

    corr = None if args.no_corrections else Corrections(bose_temperature=args.temperature, q2=True, energy=True)
    fs = load_spectrum(args.data, predictor.grid, ref.crystal, rebin=args.rebin, transpose=args.transpose, q_tolerance=args.q_tolerance, corrections=corr)
    t_read = time.perf_counter() - t1
    inv = invert(fs, predictor, model, k_samples=args.k_samples, seed=args.seed, refine=args.refine)
    inv.timings.update({"load_model": t_load, "read_and_fold": t_read})
    truth = json.loads(Path(args.truth).read_text()) if args.truth else None
    if isinstance(truth, dict) and "theta" in truth and isinstance(truth["theta"], dict):
        truth = truth["theta"]
    print(f"{Path(args.data).name}: {100 * fs.coverage:.0f} % of the {fs.grid.shape[0]}×{fs.grid.shape[1]} grid measured; model {predictor.source or args.model} ({predictor.kind})")
    print_table(inv.names, inv.theta, inv.sigma, truth, title=f"ML inference ({args.k_samples} latent samples, σ = spread over them):")
    if inv.refined is not None:
        print_table(inv.names, inv.final_theta, inv.final_sigma, truth, title="refined by least squares from the ML answer (σ from the Jacobian):")
    tm = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in inv.timings.items())
    print(f"timings: {tm}")
    if args.json:
        out = inv.as_dict()
        out.update({"data": str(args.data), "model": str(args.model), "material": material, "coverage": fs.coverage, "command": command_line()})
        if truth is not None:
            out["truth"] = truth
        write_json(args.json, out)
        print(f"wrote {args.json}")
    if args.per_orientation:
        per_orientation(args, predictor, model, ref, corr, inv)
    if not args.no_png:
        png = Path(args.png) if args.png else Path(Path(args.data).stem + "_fcinv.png")
        truth_f = None
        if truth is not None and all(n in truth for n in inv.names):
            truth_f = model.frequencies(np.array([truth[n] for n in inv.names]))[0]
        plot_inversion(png, fs, inv, title=f"{material}: {Path(args.data).name}", truth_frequencies=truth_f)
        print(f"wrote {png}")
    return 0


def per_orientation(args, predictor, model, ref, corr, full) -> None:
    """Infer every single-orientation scan of a run; scatter and error-versus-angle figure, JSON."""
    from fcinv.demo import domain_width, plot_single_scans
    from fcinv.experiment.simulate import SimulatedRun, fold_orientations
    from fcinv.workflow import invert

    run = SimulatedRun.read(args.data)
    t = time.perf_counter()
    scans = fold_orientations(run, predictor.grid, ref.crystal.point_group_rlu, corrections=corr, progress=True)
    preds = np.array([invert(s, predictor, model, k_samples=args.k_samples, seed=args.seed).theta for s in scans])
    dt = time.perf_counter() - t
    width = domain_width(ref, list(full.names), model.theta0)
    rel = np.mean(((preds - full.theta) / width) ** 2, axis=1)
    order = np.argsort(rel)
    print(f"{len(scans)} single orientations folded and inverted in {dt:.1f} s; mean squared deviation from the full-run answer (in training-domain widths):")
    for lab, j in (("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])):
        print(f"  {lab:<6} ψ = {run.psi[j]:6.1f}°  {rel[j]:.2e}  (coverage {100 * scans[j].coverage:.0f} %)")
    stem = Path(args.data).stem
    per = {"psi_deg": run.psi.tolist(), "coverage": [s.coverage for s in scans], "theta": preds.tolist(), "msd_vs_full_domain_widths": rel.tolist()}
    png = Path(f"{stem}_orientations.png")
    plot_single_scans(png, per, list(full.names), np.asarray(full.theta), np.asarray(full.theta), width, reference_label="full run")
    write_json(f"{stem}_orientations.json", per)
    print(f"wrote {png}, {stem}_orientations.json")
