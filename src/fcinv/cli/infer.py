"""``fcinv infer``: a measured spectrum → force constants with uncertainties, in seconds.

DATA is anything the format registry reads (``fcinv.io.FORMATS``): a folded spectrum
(``fcinv fold``/``fcinv simulate`` output, pathSQE's ``folded_path_plot_*.npy``) or a 4D S(Q,E)
(fcinv volume or simulated run, Mantid MDHisto NeXus, NXSPE files, plain HDF5/NPZ), which is
folded onto the model's q-path first. NXSPE files take the material's lattice unless --ub is given.

Examples
--------
fcinv infer folded.h5 --model ge
fcinv infer run.h5 --model ge --refine --json fcs.json --png fcs.png
fcinv infer folded_path_plot_Ge.npy --model ge --rebin
fcinv infer MAR*.nxspe --model ge --u 1 0 0 --v 0 1 0
fcinv infer run.h5 --model ge --per-orientation     # each single-orientation scan of a run

4D input is folded with the one-phonon corrections (Bose factor at --temperature,
division by |Q|², multiplication by E) that bring S(Q,E) towards the forward model's
convention of unit weight per mode; --no-corrections folds the raw intensity.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fcinv.cli._common import UsageError, add_device_arg, add_logging_args, cli_main, show_progress
from fcinv.cli.advise import add_watch_arguments, run_watch
from fcinv.io import FORMATS


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "data", nargs="*", help="folded spectrum or 4D data (several files only for NXSPE; omit with --watch)"
    )
    p.add_argument(
        "--model", default="ge", help="shipped model name (ge, nb) or a model directory (default: ge)"
    )
    p.add_argument("--material", default=None, help="material of the data (default: the model's)")
    p.add_argument(
        "--format", choices=("auto", *FORMATS), default="auto", help="input format (default: sniffed)"
    )
    p.add_argument(
        "--k-samples", type=int, default=100, help="latent samples for the uncertainty (default 100)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rebin",
        action="store_true",
        help="interpolate a folded spectrum on another binning of the same path onto the model's grid",
    )
    p.add_argument("--transpose", action="store_true", help="pathSQE array stored (n_E, n_q)")
    p.add_argument("--q-tolerance", type=float, default=0.05, help="folding tube radius in r.l.u. (4D input)")
    p.add_argument(
        "--temperature",
        type=float,
        default=5.0,
        help="sample temperature (K) for the Bose correction of 4D input (default 5)",
    )
    p.add_argument(
        "--no-corrections", action="store_true", help="fold 4D input without the one-phonon corrections"
    )
    p.add_argument(
        "--ub", type=float, nargs=9, metavar="X", help="NXSPE: UB matrix (1/Å, Mantid convention), row by row"
    )
    p.add_argument(
        "--u", type=float, nargs=3, default=None, help="NXSPE: vector along the beam at psi=0 (r.l.u.)"
    )
    p.add_argument(
        "--v", type=float, nargs=3, default=None, help="NXSPE: second scattering-plane vector (r.l.u.)"
    )
    p.add_argument(
        "--per-orientation",
        action="store_true",
        help="DATA is a run file: infer every single orientation too, and plot the scatter and the error "
        "versus angle (writes DATA stem + _orientations.png / .json in the current folder; --force "
        "replaces them)",
    )
    p.add_argument(
        "--refine", action="store_true", help="refine the ML answer by a least-squares fit to the spectrum"
    )
    p.add_argument(
        "--shells",
        type=_shells_or_supercell,
        nargs="+",
        default=None,
        metavar="N",
        help="with --refine: continue the refinement into these neighbour-shell counts after the model's own "
        "parameters (each stage starts from the last, new parameters at zero; default: the material's "
        "refine_shells, Ge 8 11); 0: the model's own parameters only; AxBxC (e.g. 4x4x4): a last stage in "
        "that supercell's Wigner-Seitz space",
    )
    p.add_argument(
        "--select",
        choices=("last", "stable", "bic"),
        default=None,
        help="with --refine and a continuation: which stage is returned, the last, the data-only space "
        "rule's choice (stable) or the trusted stage of lowest BIC (default: the material's refine_select, "
        "else last)",
    )
    p.add_argument(
        "--allow-unstable",
        action="store_true",
        help="exit 0 even when the refinement is not trusted (did not converge or is dynamically unstable; "
        "the ML answer is then returned unchanged)",
    )
    p.add_argument(
        "--truth",
        default=None,
        metavar="JSON",
        help="JSON {name: value} of known force constants to compare with",
    )
    p.add_argument("--json", default=None, help="write the result (fcinv.result.FCResult JSON) to this file")
    p.add_argument("--csv", default=None, help="write name, θ, σ as CSV to this file")
    from fcinv.cli._common import add_plot_args

    add_plot_args(p, default=True, png_help="figure path (default: DATA stem + _fcinv.png in this folder)")
    p.add_argument("--dos", action="store_true", help="add the phonon DOS (phonopy 16³ mesh) to the figure")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_device_arg(p)
    add_logging_args(p)
    add_watch_arguments(p, inference_options=False)
    return p


def file_options(args) -> dict:
    """The format options named on the command line (None where not given)."""
    return {"transpose": True if args.transpose else None, "ub": args.ub, "u": args.u, "v": args.v}


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.watch:
        return run_watch(args)
    if not args.data:
        raise UsageError("pass DATA (a folded spectrum or 4D data), or --watch DIR for the live loop")
    from fcinv.cli._common import plot_wanted
    from fcinv.cli._guards import check_outputs
    from fcinv.devices import resolve_device
    from fcinv.io import read_theta_json
    from fcinv.pipeline import Pipeline, PipelineConfig, one_phonon_corrections

    if args.shells is not None and not args.refine:
        raise UsageError(
            "--shells sets the shells the refinement continues into; add --refine (or drop --shells)"
        )
    png = None
    if plot_wanted(args):
        png = Path(args.png) if args.png else Path(Path(args.data[0]).stem + "_fcinv.png")
    outputs = [(args.json, "--json"), (args.csv, "--csv"), (png, "--png")]
    if args.per_orientation:
        if len(args.data) != 1:
            raise UsageError("--per-orientation takes one run file (fcinv simulate-experiment output)")
        outputs += [(p, "--per-orientation") for p in per_orientation_outputs(args.data[0])]
    check_outputs(outputs, force=args.force)
    corr = None if args.no_corrections else one_phonon_corrections(args.temperature)
    cfg = PipelineConfig(
        k_samples=args.k_samples,
        seed=args.seed,
        q_tolerance=args.q_tolerance,
        corrections=corr,
        rebin=args.rebin,
        refine_shells=None if args.shells is None else tuple(n for n in args.shells if n != 0),
        refine_select=args.select,
    )
    from fcinv.cli._common import model_from_args

    model, material = model_from_args(args.model, args.material)  # --model DIR of fcinv prepare
    pipe = Pipeline(model, material, config=cfg, device=str(resolve_device(args.device)))
    data = args.data[0] if len(args.data) == 1 else args.data
    fmt_opts = {k: v for k, v in file_options(args).items() if v is not None}
    if args.format != "auto":
        fmt_opts["format"] = args.format
    truth = read_theta_json(args.truth, names=list(pipe.names))[0] if args.truth else None
    run = pipe.run(data, refine=args.refine, **fmt_opts)
    fs, res = run.spectrum, run.result
    name = Path(args.data[0]).name
    print(
        f"{name}: {100 * fs.coverage:.0f} % of the {fs.grid.shape[0]}×{fs.grid.shape[1]} grid measured; "
        f"model {pipe.predictor.describe()}"
    )
    print(run.ml.table(truth))
    if run.refined is not None:
        print(run.refined.table(truth))
    for line in res.adequacy.get("verdict", {}).get("lines", []):
        print(line)
    print("timings: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in run.timings.items()))
    if args.json:
        res.to_json(args.json)
        print(f"wrote {args.json}")
    if args.csv:
        res.to_csv(args.csv)
        print(f"wrote {args.csv}")
    if args.per_orientation:
        per_orientation(args, pipe, run)
    if png is not None:
        from fcinv.pipeline import plot_inversion
        from fcinv.pipeline.plots import inversion_extras

        extras = inversion_extras(
            pipe, run, seed=args.seed, dos=args.dos, measurement=data, load_options=fmt_opts
        )
        if truth is not None and all(n in truth for n in res.names):
            truth_f = pipe.forward_model.frequencies(np.array([truth[n] for n in res.names]))[0]
            extras.update(truth_frequencies=truth_f, truth_label="truth (--truth)")
        plot_inversion(png, run, title=f"{pipe.material.name}: {name}", **extras)
        print(f"wrote {png}")
    for w in dict.fromkeys(run.result.adequacy.get("warnings", [])):
        print(f"WARNING: {w}")
    if run.refined is not None and not run.refined.adequacy.get("success", True):
        msg = run.refined.extra.get("message", "the refinement was not trusted")
        if args.allow_unstable:
            print(f"warning: {msg} (--allow-unstable: exit 0)")
            return 0
        print(f"error: {msg}. Pass --allow-unstable to accept the ML answer (exit 0).", file=sys.stderr)
        return 1
    return 0


def per_orientation_outputs(data: str) -> tuple[Path, Path]:
    """The figure and the JSON ``--per-orientation`` writes for run file ``data``: DATA stem +
    ``_orientations.png`` / ``.json`` in the current folder (checked like every output: --force)."""
    stem = Path(data).stem
    return Path(f"{stem}_orientations.png"), Path(f"{stem}_orientations.json")


def per_orientation(args, pipe, run) -> None:
    """Infer every single-orientation scan of a run; scatter and error-versus-angle figure, JSON."""
    import time

    from fcinv.io import write_json
    from fcinv.pipeline import plot_single_scans

    png_path, json_path = per_orientation_outputs(args.data[0])
    t = time.perf_counter()
    scans = pipe.scans(args.data[0], progress=show_progress())
    dt = time.perf_counter() - t
    full = run.ml.theta
    dom = pipe.reference.domain(list(pipe.names))
    width = dom.high - dom.low
    rel = scans.deviation(full, width)
    order = np.argsort(rel)
    print(
        f"{len(scans.psi)} single orientations folded and inverted in {dt:.1f} s; mean squared deviation "
        "from the full-run answer (in training-domain widths):"
    )
    for lab, j in (("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])):
        print(
            f"  {lab:<6} ψ = {scans.psi[j]:6.1f}°  {rel[j]:.2e}  (coverage {100 * scans.coverage[j]:.0f} %)"
        )
    png = plot_single_scans(png_path, scans, full, full, width, reference_label="full run")
    write_json(json_path, {**scans.to_dict(), "msd_vs_full_domain_widths": rel.tolist()})
    print(f"wrote {png}, {json_path}")


def _shells_or_supercell(value: str) -> int | str:
    """``--shells`` entries: a shell count, or a supercell ``AxBxC``."""
    import argparse
    import re

    v = value.strip().lower()
    if v.isdigit():
        return int(v)
    if re.fullmatch(r"\d+x\d+x\d+", v):
        return v
    raise argparse.ArgumentTypeError(f"{value!r} is neither a shell count nor a supercell such as 4x4x4")
