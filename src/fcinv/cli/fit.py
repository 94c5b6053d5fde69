"""``fcinv fit``: least-squares fit of θ (with a scale and a flat background) to a folded I(q, E).

The forward model is the material's (embedded reference: D_ref from its full force
constants, the sampled parameters free) evaluated on the data file's own grid;
unmeasured pixels (the mask) are left out, and errors stored in the file weight the
pixels. Every parameter in the cutoff is free by default (``--shells N`` changes the cutoff).

What the fit will not stand behind: a Gaussian prior (``--prior``: default the training
domain, centre ± half-width = 2σ) holds the directions the measured pixels leave open, and
they are named; outlying pixels are flagged and left out (``--no-outlier-rejection``); the
result is checked for imaginary modes on the path and a full-zone mesh. σ are the Laplace
uncertainties (data and prior, linearised at the optimum; they assume the model is right).
Exit status 1 when the fit did not converge, or its θ is dynamically unstable unless
``--allow-unstable`` (outputs still written).

Examples
--------
fcinv fit data.h5 --material Ge
fcinv fit data.h5 --material Ge --free top:4 --starts 16 --seed 1
fcinv fit data.h5 --material Ge --free all --theta-start infer.json -o fit.json
fcinv fit data.h5 --material Ge --free 1NN,2NN --prior none --no-outlier-rejection
fcinv fit raw_fold.h5 --material Ge --intensity physical --temperature 5 --ei 40 --psi 0 1 120
fcinv fit si.h5 --crystal Si.cif --springs 1NN=7 2NN=0.7 --free 1NN,2NN
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fcinv.cli._common import (
    UsageError,
    add_fit_trust_args,
    add_material_args,
    command_line,
    crystal_from_args,
    fit_exit_code,
    parse_springs,
    parse_theta,
)
from fcinv.io import write_json

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv fit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("data", help="folded I(q, E) file (HDF5 written by fcinv fold / fcinv simulate)")
    add_material_args(p)
    g = p.add_argument_group("parameters")
    g.add_argument(
        "--free",
        default=None,
        help="free parameters: names/shells (comma-separated), 'all' or 'top:K' (default: the reference's sampled ones, i.e. all)",
    )
    g.add_argument(
        "--shells",
        type=int,
        default=None,
        metavar="N",
        help="neighbour shells in the cutoff (default: the material's)",
    )
    g.add_argument(
        "--tail",
        choices=("auto", "zero", "reference"),
        default="auto",
        help="beyond the cutoff / for fixed parameters: zero, the reference member's FCs, or auto (the data file's forward model if it records one, else the reference's rule)",
    )
    g.add_argument(
        "--theta-start",
        default=None,
        metavar="JSON",
        help="start the free parameters from θ in this JSON (fcinv fit / infer output, or {name: value}); the fixed ones stay at the reference",
    )
    g.add_argument(
        "--theta",
        nargs="+",
        metavar="NAME=VALUE",
        help="start values overriding the reference / --theta-start",
    )
    g.add_argument(
        "--springs",
        nargs="+",
        metavar="SHELL=K",
        help="central-force θ_ref for crystals without an embedded reference (e.g. 1NN=6 2NN=0.6)",
    )
    f = p.add_argument_group("fit")
    f.add_argument(
        "--starts",
        type=int,
        default=1,
        help="local fits: the start plus the best of the screened candidates from the training domain",
    )
    f.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="candidates screened for --starts > 1 (default 32 × starts)",
    )
    f.add_argument("--seed", type=int, default=0, help="seed of the multi-start candidates")
    f.add_argument(
        "--weighting",
        choices=("auto", "errors", "uniform"),
        default="auto",
        help="pixel weights: 1/error when the file has errors (auto), required, or none",
    )
    f.add_argument("--no-background", action="store_true", help="do not fit a flat background")
    f.add_argument(
        "--presmooth",
        type=float,
        default=2.0,
        metavar="MEV",
        help="σ of the E-smoothing of the first stage of each local fit (0: off)",
    )
    f.add_argument("--max-nfev", type=int, default=200, help="evaluations per local fit stage")
    f.add_argument(
        "--prior",
        default="domain",
        metavar="domain|weak|none|JSON",
        help="Gaussian prior: the training domain (default; centre, half-width = 2σ), 'weak' (start ± 100 %%), 'none', or a JSON {name: [mean, sigma]}",
    )
    add_fit_trust_args(f, what="pixel")
    f.add_argument(
        "--fwhm",
        type=float,
        default=None,
        help="Gaussian FWHM of the model lines at E = 0 (meV); default: the material's",
    )
    ph = p.add_argument_group("intensity model")
    ph.add_argument(
        "--intensity",
        choices=("paper", "physical"),
        default="paper",
        help="paper: every mode weight 1 (for a fold with --one-phonon corrections); physical: coherent one-phonon intensity "
        "of the folded measurement (structure factors, Debye-Waller, Bose, 1/ω, resolution, coverage)",
    )
    ph.add_argument(
        "--temperature", type=float, default=5.0, help="physical: sample temperature, K (default 5)"
    )
    ph.add_argument(
        "--ei",
        type=float,
        default=40.0,
        help="physical: incident energy of the ARCS-like instrument, meV (default 40)",
    )
    ph.add_argument(
        "--psi",
        type=float,
        nargs=3,
        default=None,
        metavar=("START", "STEP", "N"),
        help="physical: the run's orientations (degrees), for its coverage; default: full coverage (every zone and image)",
    )
    ph.add_argument(
        "--one-phonon",
        type=float,
        default=None,
        metavar="T",
        help="physical: the fold was made with fcinv fold --one-phonon T (Bose T, |Q|², E corrections): predict that",
    )
    ph.add_argument(
        "--dw",
        choices=("theta", "reference", "none"),
        default="theta",
        help="physical: Debye-Waller factor from θ (default), the reference's, or none",
    )
    p.add_argument("-o", "--output", default=None, help="result JSON (default: DATA with _fit.json)")
    from fcinv.cli._common import add_plot_args

    add_plot_args(p, default=True, png_help="figure path (default: the JSON with .png)")
    return p


def build(args, crystal, grid, data_meta: dict | None = None):
    """The forward model on ``grid``, the ranking, where θ_ref came from, the default free names and the reference."""
    from fcinv.crystal import material_info
    from fcinv.errors import DataError, MaterialError
    from fcinv.fcspace import FCSpace
    from fcinv.forward import Broadening, ForwardModel

    try:
        info = material_info(crystal.name)
    except MaterialError:
        info = {}
    br = Broadening(
        args.fwhm if args.fwhm is not None else float(info.get("fwhm_meV", 1.2)),
        float(info.get("fwhm_slope", 0.0)),
    )
    if args.springs:
        if getattr(args, "intensity", "paper") == "physical":
            raise UsageError(
                "--intensity physical needs the material's embedded reference; drop --springs or use --intensity paper."
            )
        space = FCSpace(crystal, n_shells=args.shells) if args.shells else FCSpace.for_material(crystal)
        model = ForwardModel(
            space, grid, space.central_force_theta(parse_springs(args.springs)), broadening=br
        )
        return model, None, "central-force springs", list(space.names), None
    try:
        from fcinv.reference import load_reference

        ref = (
            load_reference(crystal.name, args.shells)
            if args.shells is not None
            else load_reference(crystal.name)
        )
    except MaterialError as exc:
        raise UsageError(
            f"no embedded reference for '{crystal.name}' ({exc}). Pass --springs SHELL=K ... for a start and θ_ref."
        ) from None
    except DataError as exc:
        if args.shells is not None:
            raise
        raise UsageError(
            f"no embedded reference for '{crystal.name}' ({exc}). Pass --springs SHELL=K ... for a start and θ_ref."
        ) from None
    from fcinv.fitting import resolve_free

    ranking = list(ref.sampled) or None
    free = resolve_free(ref.space, args.free, ranking=ranking, default=list(ref.sampled))
    tail = args.tail
    if tail == "auto":
        recorded = (
            (data_meta or {}).get("forward_model", {})
            if isinstance((data_meta or {}).get("forward_model"), dict)
            else {}
        )
        if recorded.get("reference") == "full FC set":
            tail = "reference"
        elif recorded.get("reference") == "theta_ref":
            tail = "zero"
        else:
            tail = ref.tail_for(free) if hasattr(ref, "tail_for") else "reference"
    kw = {"tail": tail} if hasattr(ref, "tail_for") else {}
    what = f"embedded reference ({ref.reference_member}), {len(ref.space.shells)} shells, beyond the cutoff: {tail}"
    if getattr(args, "intensity", "paper") == "physical":
        return (
            physical_model(args, ref, grid, free, tail),
            ranking,
            what + "; physical intensities",
            free,
            ref,
        )
    model = ref.forward_model(grid=grid, broadening=br, free=free, **kw)
    return model, ranking, what, free, ref


def physical_model(args, ref, grid, free, tail):
    """The physical forward model (fcinv.forward.physical) of the fold, on ``grid``, varying ``free``."""
    from fcinv.experiment.fold import Corrections
    from fcinv.experiment.instrument import Instrument
    from fcinv.forward.physical import PhysicalModel, coverage_for_run, full_coverage

    if args.psi is not None:
        start, step, n = args.psi
        if n < 1 or n != int(n) or step == 0:
            raise UsageError(
                f"--psi {start:g} {step:g} {n:g}: pass START STEP N with N a positive integer and STEP non-zero (degrees)."
            )
        psi = tuple(float(start + step * i) for i in range(int(n)))
        cov = coverage_for_run(ref.crystal, grid, ei=args.ei, psi=psi)
    else:
        cov = full_coverage(ref.crystal, grid)
    corr = (
        Corrections(bose_temperature=args.one_phonon, q2=True, energy=True)
        if args.one_phonon is not None
        else None
    )
    return PhysicalModel(
        ref.space,
        grid,
        ref.theta_ref,
        reference=ref.pairs if tail == "reference" else None,
        free=free,
        coverage=cov,
        temperature=args.temperature,
        resolution=Instrument(ei=args.ei),
        dw=args.dw,
        corrections=corr,
    )


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv import __version__
    from fcinv.experiment.folded import read_folded
    from fcinv.fitting import fit_spectrum
    from fcinv.fitting.spectrum_fit import image_and_jacobian, model_with_free
    from fcinv.io import read_theta_json

    fs = read_folded(args.data)
    crystal = crystal_from_args(args)
    model, ranking, source, default_free, ref = build(args, crystal, fs.grid, fs.meta)
    from fcinv.fitting import resolve_free

    free = resolve_free(model.space, args.free, ranking=ranking, default=default_free)
    model = model_with_free(model, free)
    start = model.theta_ref.copy()
    names = model.space.names
    if args.theta_start:
        given, _ = read_theta_json(args.theta_start)
        for k, v in given.items():
            start[model.space.index([k])[0]] = v
    start = parse_theta(args.theta, names, start)
    res = fit_spectrum(
        model,
        fs,
        theta_start=dict(zip(names, start.tolist())),
        n_starts=args.starts,
        n_candidates=args.candidates,
        seed=args.seed,
        weighting=args.weighting,
        fit_background=not args.no_background,
        presmooth_meV=args.presmooth or None,
        max_nfev=args.max_nfev,
        progress=args.starts > 1,
        prior=args.prior,
        material_reference=ref,
        outliers=not args.no_outlier_rejection,
        outlier_sigma=args.outlier_sigma,
        stability_mesh=args.stability_mesh,
    )
    print(
        f"{crystal.name}: fit of {len(res.names)} parameters to {Path(args.data).name} ({res.extra['n_pixels']} measured pixels, {res.extra['weighting']} weights; θ_ref: {source})"
    )
    for line in res.summary_lines():
        print(line)
    ex = res.extra
    print(
        f"scale {ex['scale']:.5g} ± {ex['scale_sigma']:.2g}, background {ex['background']:.4g} ± {ex['background_sigma']:.2g}; R = {ex['r_factor']:.4f}; "
        f"lowest mode {ex['lowest_mode_meV']:.2f} meV ({'stable' if ex['stable'] else 'UNSTABLE'}; path and {ex['stability_mesh']}³ mesh)"
    )
    if ex["prior"]:
        print(f"prior: {ex['prior']['source']}; prior χ² = {ex['prior_chi2']:.2f}")
    print("σ: Laplace (data and prior, linearised at the optimum), assuming the model is right.")
    for line in ex["warnings"]:
        print(f"WARNING: {line}")
    out = Path(args.output) if args.output else Path(args.data).with_name(Path(args.data).stem + "_fit.json")
    doc = res.as_dict()
    doc.update(
        {
            "fcinv_version": __version__,
            "command": command_line(),
            "data": str(args.data),
            "seed": args.seed,
            "theta_ref_source": source,
            "forward_model": model.describe(),
        }
    )
    write_json(out, doc)
    print(f"wrote {out}")
    from fcinv.cli._common import plot_wanted

    if plot_wanted(args):
        from fcinv.fitting.plots import save_spectrum_fit_png

        img, _ = image_and_jacobian(model, res.theta, jacobian=False)
        fitted = ex["scale"] * img + ex["background"]
        freqs = model.frequencies(res.theta)[0]
        png = Path(args.png) if args.png else out.with_suffix(".png")
        save_spectrum_fit_png(
            png,
            fs.intensity,
            fitted,
            fs.grid,
            frequencies=freqs,
            title=f"{crystal.name}: least-squares fit ({len(res.names)} parameters, R = {ex['r_factor']:.3f})",
        )
        print(f"wrote {png}")
    return fit_exit_code(
        "fcinv fit",
        ex,
        res.message,
        allow_unstable=args.allow_unstable,
        converge_hint="try --starts 16, a --theta-start nearer the answer, or --max-nfev",
        stable_hint="Start from the ML answer, keep the prior",
    )
