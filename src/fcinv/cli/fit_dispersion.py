"""``fcinv fit-dispersion``: fit θ to a table of measured phonon energies (triple-axis style).

The CSV has a header and one row per point: ``h,k,l,energy_meV,sigma_meV[,branch]``
(q in r.l.u. of the conventional cell; ``energy_THz,sigma_THz`` also accepted). A
point with a ``branch`` (0 = lowest mode at that q) is compared with that branch;
one without is matched to the model branch nearest in energy at the current θ,
re-matched at every iteration. Prints θ ± σ (statistical, linearised at the
optimum), χ²/dof and the rms residual, writes the result JSON and a figure of the
fitted dispersion over the points. Exit status 1 when the fit did not converge.

Start and fixed values: the embedded reference where there is one (its full force
constants give D_ref); otherwise a central-force model (``--springs``, default
1NN=1 2NN=0.5) scaled by one factor to the points' energies.

Examples
--------
fcinv fit-dispersion --material Nb points.csv
fcinv fit-dispersion --material Nb points.csv --free 1NN,2NN,3NN -o nb_fit.json
fcinv fit-dispersion --material Ge points.csv --free top:4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fcinv.io import write_json
from fcinv.cli._common import (
    add_material_args,
    command_line,
    crystal_from_args,
    parse_springs,
    parse_theta,
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fcinv fit-dispersion", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("points", help="CSV: h,k,l,energy_meV,sigma_meV[,branch]")
    add_material_args(p)
    g = p.add_argument_group("parameters")
    g.add_argument("--free", default="all", help="free parameters: names/shells (comma-separated), 'all' (default: every parameter within the cutoff) or 'top:K'")
    g.add_argument("--no-reference", action="store_true", help="ignore the embedded reference: start from --springs (scaled to the points)")
    g.add_argument("--springs", nargs="+", metavar="SHELL=K", help="central-force start (eV/Å²), scaled to the points unless --no-autoscale")
    g.add_argument("--no-autoscale", action="store_true", help="use --springs as given")
    g.add_argument(
        "--theta-start", default=None, metavar="JSON",
        help="start the free parameters from θ in this JSON (fcinv fit / infer output, or {name: value}); with a reference the fixed ones stay at it",
    )
    g.add_argument("--theta", nargs="+", metavar="NAME=VALUE", help="start values overriding the others")
    p.add_argument("--max-nfev", type=int, default=200, help="evaluations before the fit stops as not converged")
    p.add_argument("-o", "--output", default=None, help="result JSON (default: POINTS with _fit.json)")
    p.add_argument("--png", default=None, help="figure path (default: the JSON with .png)")
    p.add_argument("--no-png", action="store_true", help="do not write the figure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv import __version__
    from fcinv.crystal import default_grid
    from fcinv.errors import DataError, MaterialError, StructureError
    from fcinv.fcspace import FCSpace
    from fcinv.fitting import fit_dispersion, read_points
    from fcinv.fitting._base import read_theta_json
    from fcinv.fitting.dispersion_fit import model_energies, scaled_start

    points = read_points(args.points)
    crystal = crystal_from_args(args)
    ref = None
    if not args.no_reference and not args.springs:
        try:
            from fcinv.reference import load_reference

            ref = load_reference(crystal.name)
        except (MaterialError, DataError):
            ref = None
    if ref is not None:
        space, theta_ref, reference, ranking = ref.space, ref.theta_ref.copy(), ref.pairs, list(ref.ensemble.get("ranking", [])) or None
        source = f"embedded reference ({ref.reference_member})"
    else:
        space = FCSpace.for_material(crystal)
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
    res = fit_dispersion(space, points, theta_ref, free=args.free, ranking=ranking, theta_start=start, reference=reference, max_nfev=args.max_nfev)
    ex = res.extra
    print(f"{crystal.name}: fit of {len(res.names)} parameters to {len(points)} points from {Path(args.points).name} ({ex['n_labelled']} with a branch label; start: {source})")
    for line in res.summary_lines():
        print(line)
    print(f"χ²/dof = {res.chi2_dof:.3f} (χ² = {res.chi2:.2f}, dof = {res.dof}); rms residual {ex['rms_residual_meV']:.4f} meV = {ex['rms_residual_THz']:.4f} THz")
    print("σ: statistical, local (linearised at the optimum) and scaled by √(χ²/dof); they assume the model and the mode assignment are right.")
    out = Path(args.output) if args.output else Path(args.points).with_name(Path(args.points).stem + "_fit.json")
    doc = res.as_dict()
    units = {"energy": "meV", "theta": "eV/Å^2", "q": "r.l.u. (conventional)"}
    doc.update({"fcinv_version": __version__, "command": command_line(), "points": str(args.points), "start_source": source, "units": units})
    write_json(out, doc)
    print(f"wrote {out}")
    if not args.no_png:
        from fcinv.fitting.plots import save_dispersion_fit_png

        try:
            grid = default_grid(crystal)
        except StructureError:  # a crystal without an energy range: only the q-path matters here
            grid = default_grid(crystal, e_max=float(np.max(points.energy)) * 1.2)
        full = np.array([ex["theta_full"][n] for n in space.names])
        path_e = model_energies(space, full, grid.q_rlu, reference=reference, theta_ref=theta_ref if reference is not None else None)
        png = Path(args.png) if args.png else out.with_suffix(".png")
        title = f"{crystal.name}: dispersion fit, χ²/dof = {res.chi2_dof:.2f}, rms {ex['rms_residual_meV']:.3f} meV ({ex['rms_residual_THz']:.3f} THz)"
        save_dispersion_fit_png(png, crystal, grid, path_e, points, np.asarray(ex["energy_model_meV"]), title=title)
        print(f"wrote {png}")
    if not res.success:
        print(f"fcinv fit-dispersion: warning: the fit did not converge ({res.message}); free fewer parameters (--free 1NN,2NN) or give a better start.", file=sys.stderr)
        return 1
    return 0
