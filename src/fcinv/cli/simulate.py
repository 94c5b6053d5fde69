"""``fcinv simulate``: θ or a phonopy force-constant set → I(q, E) on the q-path, as HDF5 and PNG.

Examples
--------
fcinv simulate --material Ge -o ge.h5
fcinv simulate --material Ge --theta 1NN_xx=-3.1 1NN_xy=-2.2 -o stiff.h5
fcinv simulate --material Ge --force-constants FORCE_CONSTANTS --structure POSCAR --supercell 4 4 4 -o dft.h5
fcinv simulate --crystal Si.cif --springs 1NN=7 2NN=0.7 --e-max 70 -o si.h5
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from fcinv.cli._common import (
    UsageError,
    add_fc_file_args,
    add_logging_args,
    add_material_args,
    add_plot_args,
    cli_main,
    material_from_args,
    parse_springs,
    parse_theta,
    plot_wanted,
    supercell_from_args,
)
from fcinv.cli._guards import (
    E_MAX_LIMIT_MEV,
    check_count,
    check_memory,
    check_outputs,
    check_range,
    check_theta,
)

log = logging.getLogger(__name__)


def check_spectrum_args(args) -> None:
    """Physical limits of the spectrum options (before any work)."""
    why = "phonon energies stay below ~500 meV"
    check_range(args.e_max, "--e-max", low=0.0, high=E_MAX_LIMIT_MEV, low_open=True, unit="meV", why=why)
    check_range(args.e_step, "--e-step", low=0.0, high=E_MAX_LIMIT_MEV, low_open=True, unit="meV")
    check_range(args.fwhm, "--fwhm", low=0.0, high=E_MAX_LIMIT_MEV, low_open=True, unit="meV")
    check_range(args.fwhm_slope, "--fwhm-slope", low=0.0, high=10.0, why="meV of FWHM per meV")
    check_count(args.shells, "--shells", why="neighbour shells")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv simulate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_material_args(p)
    add_fc_file_args(p)
    g = p.add_argument_group("force constants")
    g.add_argument(
        "--theta",
        nargs="+",
        metavar="NAME=VALUE",
        help="parameter values (eV/Å²) overriding the reference, or one number per parameter",
    )
    g.add_argument(
        "--springs",
        nargs="+",
        metavar="SHELL=K",
        help="central-force spring model, e.g. 1NN=6 2NN=0.6 (eV/Å²), for crystals without a reference",
    )
    g.add_argument(
        "--shells",
        type=int,
        default=None,
        help="number of neighbour shells in θ (default: the material's, else 5)",
    )
    s = p.add_argument_group("spectrum")
    s.add_argument(
        "--path", default=None, help="q-path labels, e.g. 'Γ-X-U|K-Γ-L' (default: pathSQE's path for fcc/bcc)"
    )
    s.add_argument(
        "--e-max", type=float, default=None, help="maximum energy (meV); default from the material"
    )
    s.add_argument("--e-step", type=float, default=None, help="energy bin (meV)")
    s.add_argument(
        "--fwhm",
        type=float,
        default=None,
        help="Gaussian FWHM at E = 0 (meV); default from the material (1.2)",
    )
    s.add_argument(
        "--fwhm-slope",
        type=float,
        default=None,
        help="FWHM increase per meV of energy transfer (default: the material's)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output HDF5 file (a folded-spectrum file that `fcinv infer` reads)",
    )
    add_plot_args(p, default=True, png_help="figure path (default: OUTPUT with .png)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_logging_args(p)
    return p


def build_model(args, material):
    """The forward model and the full θ to evaluate, from the parsed arguments."""
    from fcinv.errors import DataError, MaterialError
    from fcinv.fcspace import FCSpace, read_phonopy
    from fcinv.forward import Broadening, ForwardModel

    crystal = material.crystal
    space = FCSpace(crystal, n_shells=args.shells if args.shells else material.shells)
    grid = material.grid(path=args.path, e_max=args.e_max, e_step=args.e_step)
    fwhm = args.fwhm if args.fwhm is not None else material.broadening.fwhm0
    br = Broadening(fwhm, args.fwhm_slope if args.fwhm_slope is not None else material.broadening.fwhm1)
    if args.force_constants:
        if not args.structure:
            raise UsageError("--force-constants needs --structure (the POSCAR the force constants belong to)")
        pairs = read_phonopy(
            crystal, args.force_constants, args.structure, supercell_from_args(args.supercell)
        )
        model = ForwardModel.from_pairs(space, grid, pairs, broadening=br)
        source = f"phonopy force constants {args.force_constants}"
    elif args.springs:
        springs = parse_springs(args.springs)
        model = ForwardModel(space, grid, space.central_force_theta(springs), broadening=br)
        source = f"central-force springs {springs}"
    else:
        try:
            from fcinv.reference import load_reference

            ref = load_reference(crystal.name)
        except (MaterialError, DataError) as exc:
            if not args.theta:
                raise UsageError(
                    f"no reference force constants for '{crystal.name}' ({exc}). Pass --theta (all "
                    "values), --springs or --force-constants."
                ) from None
            model = ForwardModel(space, grid, np.zeros(space.n_params), broadening=br)
            source = "θ given on the command line"
        else:
            # every parameter is set by θ: the zero tail beyond the cutoff, as fcinv.simulate and
            # Material.forward_model (the documented convention)
            model = ref.forward_model(free=list(ref.space.names), grid=grid, broadening=br)
            space = ref.space
            source = f"embedded reference ({ref.reference_member})"
    theta = parse_theta(args.theta, space.names, model.theta_ref)
    return model, theta, source


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.experiment.folded import FoldedSpectrum
    from fcinv.plotting import save_spectrum_png

    out = Path(args.output)
    png = (Path(args.png) if args.png else out.with_suffix(".png")) if plot_wanted(args) else None
    check_outputs([(out, "-o"), (png, "--png")], force=args.force)
    check_spectrum_args(args)
    material = material_from_args(args)
    crystal = material.crystal
    model, theta, source = build_model(args, material)
    check_theta(theta, list(model.space.names))
    n_q, n_e = model.grid.shape
    modes = 3 * len(crystal.numbers)
    check_memory(
        float(n_q) * n_e * modes * 8 * 2 + 0.3e9,  # measured: 0.49 GB at 140 × 45,000 × 6
        f"fcinv simulate: {n_q} q × {n_e:,} E bins × {modes} modes",
        "lower --e-max or raise --e-step",
    )
    spec, freqs = model.spectra(theta, return_frequencies=True)
    lowest = float(model.lowest_energy(theta)[0])
    if not np.any(spec[0] > 0):
        log.warning(
            "the spectrum is empty: no mode lies in 0..%.3g meV (modes %.3g..%.3g meV). Check θ or raise "
            "--e-max.",
            model.grid.energy_edges[-1],
            float(np.min(freqs[0])),
            float(np.max(freqs[0])),
        )
    if lowest < -0.05:
        log.warning(
            "this θ is dynamically unstable: lowest mode %.2f meV (imaginary). The spectrum shows only "
            "real modes.",
            lowest,
        )
    names = model.space.names
    meta = {
        "source": "fcinv simulate",
        "force_constants": source,
        "material": crystal.name,
        "theta": dict(zip(names, theta.tolist())),
        "frequencies_meV": freqs[0].round(6).tolist(),
        "lowest_mode_meV": lowest,
        "forward_model": model.describe(),
        "corrections": [],
    }
    fs = FoldedSpectrum.from_arrays(spec[0].astype(float), model.grid, meta=meta)
    fs.to_hdf5(out)
    print(
        f"wrote {out}: I(q, E) {model.grid.shape[0]} q × {model.grid.shape[1]} E bins ({crystal.name}, "
        f"{source})"
    )
    if png is not None:
        save_spectrum_png(
            png,
            spec[0],
            model.grid,
            frequencies=freqs[0],
            title=f"{crystal.name}: forward model I(q, E), dispersion overlaid",
        )
        print(f"wrote {png}")
    return 0
