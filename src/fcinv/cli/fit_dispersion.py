"""``fcinv fit-dispersion``: fit θ to a table of measured phonon energies (triple-axis style).

The CSV has a header and one row per point: ``h,k,l,energy_meV,sigma_meV[,branch]``
(q in r.l.u. of the conventional cell; ``energy_THz,sigma_THz`` also accepted). ``branch``
is an index (0 = lowest mode at that q), a polarisation label as dispersion tables write it
(``L``, ``T``, ``T1``, ``T2``; ``LA``, ``TA1``, ``TO`` ... for crystals with optical modes),
assigned by polarisation from the eigenvectors (for [ζζ0]: T1 polarised along [1-10], T2
along [001]; ``fcinv.fitting.labels`` documents the convention), or empty (the mode nearest
in energy; a warning says how many points were matched that way).

What the fit will not stand behind:

- a prior (``--prior``: default the training domain, centre ± half-width = 2σ; ``none``; or
  a JSON ``{name: [mean, sigma]}``) holds the directions the points leave open; they are
  named (SVD of the weighted Jacobian) in the output;
- outlying points are flagged and left out (robust first stage; ``--no-outlier-rejection``);
- every result is checked for imaginary modes on a full-zone mesh (``--stability-mesh``).

Prints θ ± σ (Laplace: data and prior, σ scaled by √(χ²/dof)), χ²/dof, the rms residual and
warning lines; writes the result JSON, a figure of the fitted dispersion over the points and a
residual plot per branch. Exit status 1 when the fit did not converge, or when its result is
dynamically unstable unless ``--allow-unstable``.

Start and fixed values: the embedded reference where there is one (``--shells N`` changes the
cutoff; every parameter in it is free by default; beyond the cutoff the reference's tail
rule: zero for an all-parameter fit, the reference member's FCs when only some are free);
otherwise a central-force model (``--springs``, default 1NN=1 2NN=0.5) scaled by one factor to
the points' energies.

Examples
--------
fcinv fit-dispersion --material Nb points.csv
fcinv fit-dispersion --material Nb points.csv --shells 8
fcinv fit-dispersion --material Nb points.csv --free 1NN,2NN,3NN -o nb_fit.json
fcinv fit-dispersion --material Ge points.csv --prior my_prior.json --no-outlier-rejection
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fcinv.cli._common import (
    add_fit_trust_args,
    add_material_args,
    command_line,
    crystal_from_args,
    fit_exit_code,
    parse_springs,
    parse_theta,
)
from fcinv.io import write_json


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv fit-dispersion", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("points", help="CSV: h,k,l,energy_meV,sigma_meV[,branch]")
    add_material_args(p)
    g = p.add_argument_group("parameters")
    g.add_argument(
        "--free",
        default="all",
        help="free parameters: names/shells (comma-separated), 'all' (default: every parameter within the cutoff) or 'top:K'",
    )
    g.add_argument(
        "--shells",
        type=int,
        default=None,
        metavar="N",
        help="neighbour shells in the cutoff (default: the material's dispersion_shells, Nb 8 as its "
        "literature Born-von Karman fits, else its cutoff_shells)",
    )
    g.add_argument(
        "--no-reference",
        action="store_true",
        help="ignore the embedded reference: start from --springs (scaled to the points)",
    )
    g.add_argument(
        "--springs",
        nargs="+",
        metavar="SHELL=K",
        help="central-force start (eV/Å²), scaled to the points unless --no-autoscale",
    )
    g.add_argument("--no-autoscale", action="store_true", help="use --springs as given")
    g.add_argument(
        "--theta-start",
        default=None,
        metavar="JSON",
        help="start the free parameters from θ in this JSON (fcinv fit / infer output, or {name: value}); with a reference the fixed ones stay at it",
    )
    g.add_argument("--theta", nargs="+", metavar="NAME=VALUE", help="start values overriding the others")
    f = p.add_argument_group("fit")
    f.add_argument(
        "--prior",
        default="domain",
        metavar="domain|weak|none|JSON",
        help="Gaussian prior: the training domain (default; centre, half-width = 2σ), 'weak' (start ± 100 %%), 'none', or a JSON {name: [mean, sigma]}",
    )
    add_fit_trust_args(f, what="point", robust_stage=True)
    f.add_argument(
        "--max-nfev",
        type=int,
        default=200,
        help="evaluations per stage before the fit stops as not converged",
    )
    p.add_argument("-o", "--output", default=None, help="result JSON (default: POINTS with _fit.json)")
    from fcinv.cli._common import add_plot_args

    add_plot_args(
        p, default=True, png_help="figure path (default: the JSON with .png; residuals: _residuals.png)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv import __version__
    from fcinv.crystal import default_grid
    from fcinv.errors import DataError, MaterialError, StructureError
    from fcinv.fcspace import FCSpace
    from fcinv.fitting import fit_dispersion, read_points, resolve_free
    from fcinv.fitting.dispersion_fit import model_energies, scaled_start
    from fcinv.io import read_theta_json

    points = read_points(args.points)
    from fcinv.cli._guards import check_dispersion_points

    check_dispersion_points(points, args.points)
    crystal = crystal_from_args(args)
    ref = None
    if args.shells is None and not args.no_reference and not args.springs:
        # a material's literature shell count for dispersion fits (material.json dispersion_shells, Nb: 8)
        from fcinv.crystal import material_info

        try:
            args.shells = material_info(crystal.name).get("dispersion_shells")
        except (MaterialError, KeyError):
            args.shells = None
    if not args.no_reference and not args.springs:
        try:
            from fcinv.reference import load_reference

            ref = (
                load_reference(crystal.name, args.shells)
                if args.shells is not None
                else load_reference(crystal.name)
            )
        except MaterialError:
            ref = None
        except DataError as exc:
            if args.shells is not None:
                raise
            ref = None
            del exc
    if ref is not None:
        space, theta_ref = ref.space, ref.theta_ref.copy()
        ranking = list(getattr(ref, "sampled", [])) or None
        names = resolve_free(space, args.free, ranking=ranking, default=space.names)
        tail = ref.tail_for(names) if hasattr(ref, "tail_for") else "reference"
        reference = ref.pairs if tail == "reference" else None
        from fcinv.reference import shell_count

        source = f"embedded reference ({ref.reference_member}), {shell_count(space)} shells, beyond the cutoff: {tail}"
    else:
        space = FCSpace(crystal, n_shells=args.shells) if args.shells else FCSpace.for_material(crystal)
        springs = parse_springs(args.springs) if args.springs else {"1NN": 1.0, "2NN": 0.5}
        theta_ref = space.central_force_theta(springs)
        if not args.no_autoscale:
            theta_ref = scaled_start(space, points, theta_ref)
        reference, ranking = None, None
        source = f"central-force springs {springs}" + ("" if args.no_autoscale else " scaled to the points")
    start = theta_ref.copy()
    if args.theta_start:
        given, _ = read_theta_json(args.theta_start)
        for k, v in given.items():
            start[space.index([k])[0]] = v
    start = parse_theta(args.theta, space.names, start)
    if reference is None:
        theta_ref = start  # without a reference FC set the fixed parameters take the start values too
    res = fit_dispersion(
        space,
        points,
        theta_ref,
        free=args.free,
        ranking=ranking,
        theta_start=dict(zip(space.names, start.tolist())),
        reference=reference,
        prior=args.prior,
        material_reference=ref,
        outliers=not args.no_outlier_rejection,
        outlier_sigma=args.outlier_sigma,
        stability_mesh=args.stability_mesh,
        max_nfev=args.max_nfev,
    )
    ex = res.extra
    print(
        f"{crystal.name}: fit of {len(res.names)} parameters ({ex['n_shells']} shells) to {len(points)} points from {Path(args.points).name} "
        f"({ex['n_labelled']} with a branch label; start: {source})"
    )
    held = {n for d in ex["undetermined"] for n, c in d["coefficients"].items() if abs(c) >= 0.2}
    w = max(len(n) for n in res.names)
    print(f"{'parameter':<{w}}  {'theta (eV/Å²)':>14}  {'sigma':>10}  {'start':>10}  {'prior':>18}")
    pri = ex["prior"]
    for n, t, s, t0 in zip(res.names, res.theta, res.sigma, res.theta_start):
        pr = f"{pri['mean'][n]:.4f} ± {pri['sigma'][n]:.4f}" if pri else "-"
        print(
            f"{n:<{w}}  {t:>14.5f}  {s:>10.5f}  {t0:>10.5f}  {pr:>18}"
            + ("  held by the prior" if n in held else "")
        )
    status = "converged" if ex["converged"] else "NOT CONVERGED"
    print(f"{status}: {res.message}; {res.n_iter} evaluations, {res.wall_s:.2f} s")
    print(
        f"χ²/dof = {res.chi2_dof if res.chi2_dof is not None else float('nan'):.3f} (χ² = {res.chi2:.2f} of the {ex['n_used']} points used, dof = {res.dof}); "
        f"prior χ² = {ex['prior_chi2'] if ex['prior_chi2'] is not None else 0.0:.2f}; rms residual {ex['rms_residual_meV']:.4f} meV = {ex['rms_residual_THz']:.4f} THz"
    )
    print(
        f"lowest mode on the {ex['stability_mesh']}³ mesh and the points: {ex['lowest_mode_meV']:.3f} meV ({'stable' if ex['stable'] else 'UNSTABLE'})"
    )
    print(
        "σ: Laplace (data and prior, linearised at the optimum, scaled by √(χ²/dof)); they assume the model and the mode assignment are right."
    )
    for line in ex["warnings"]:
        print(f"WARNING: {line}")
    out = (
        Path(args.output)
        if args.output
        else Path(args.points).with_name(Path(args.points).stem + "_fit.json")
    )
    doc = res.as_dict()
    units = {"energy": "meV", "theta": "eV/Å^2", "q": "r.l.u. (conventional)"}
    doc.update(
        {
            "fcinv_version": __version__,
            "command": command_line(),
            "points": str(args.points),
            "start_source": source,
            "units": units,
            "sigma_meaning": "Laplace posterior of data + prior at the optimum, data part scaled by chi2/dof",
        }
    )
    write_json(out, doc)
    print(f"wrote {out}")
    from fcinv.cli._common import plot_wanted

    if plot_wanted(args):
        from fcinv.fitting.plots import (
            fit_dispersion_band,
            save_dispersion_fit_png,
            save_dispersion_residuals_png,
        )

        try:
            grid = default_grid(crystal)
        except StructureError:  # a crystal without an energy range: only the q-path matters here
            grid = default_grid(crystal, e_max=float(np.max(points.energy)) * 1.2)
        full = np.array([ex["theta_full"][n] for n in space.names])
        path_e = model_energies(
            space,
            full,
            grid.q_rlu,
            reference=reference,
            theta_ref=theta_ref if reference is not None else None,
        )
        png = Path(args.png) if args.png else out.with_suffix(".png")
        title = f"{crystal.name}: dispersion fit, χ²/dof = {res.chi2_dof:.2f}, rms {ex['rms_residual_meV']:.3f} meV ({ex['rms_residual_THz']:.3f} THz)"
        drawn = fit_dispersion_band(
            space,
            full,
            list(res.names),
            res.covariance,
            grid.q_rlu,
            reference=reference,
            theta_ref=theta_ref if reference is not None else None,
        )
        band, band_label = drawn if drawn is not None else (None, "")
        save_dispersion_fit_png(
            png,
            crystal,
            grid,
            path_e,
            points,
            np.asarray(ex["energy_model_meV"]),
            title=title,
            band=band,
            band_label=band_label,
        )
        print(f"wrote {png}")
        rpng = png.with_name(png.stem + "_residuals.png")
        flagged = [f["point"] for f in ex["outliers"]]
        save_dispersion_residuals_png(
            rpng,
            points,
            np.asarray(ex["residual_meV"]),
            flagged=flagged,
            title=f"{crystal.name}: residuals per branch",
        )
        print(f"wrote {rpng}")
    return fit_exit_code(
        "fcinv fit-dispersion",
        ex,
        res.message,
        allow_unstable=args.allow_unstable,
        converge_hint="free fewer parameters (--free 1NN,2NN) or give a better start",
        stable_hint="Check the points and labels, use a prior",
    )
