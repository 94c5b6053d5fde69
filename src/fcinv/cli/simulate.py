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
    cli_main,
    material_from_args,
    parse_springs,
    parse_theta,
    supercell_from_args,
)

log = logging.getLogger(__name__)


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
    p.add_argument("--png", default=None, help="figure path (default: OUTPUT with .png)")
    p.add_argument("--no-png", action="store_true", help="do not write the figure")
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
            model = ForwardModel(ref.space, grid, ref.theta_ref, reference=ref.pairs, broadening=br)
            space = ref.space
            source = f"embedded reference ({ref.reference_member})"
    theta = parse_theta(args.theta, space.names, model.theta_ref)
    return model, theta, source


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.experiment.folded import FoldedSpectrum
    from fcinv.plotting import save_spectrum_png

    material = material_from_args(args)
    crystal = material.crystal
    model, theta, source = build_model(args, material)
    spec, freqs = model.spectra(theta, return_frequencies=True)
    lowest = float(model.lowest_energy(theta)[0])
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
    out = Path(args.output)
    fs.to_hdf5(out)
    print(
        f"wrote {out}: I(q, E) {model.grid.shape[0]} q × {model.grid.shape[1]} E bins ({crystal.name}, "
        f"{source})"
    )
    if not args.no_png:
        png = Path(args.png) if args.png else out.with_suffix(".png")
        save_spectrum_png(
            png,
            spec[0],
            model.grid,
            frequencies=freqs[0],
            title=f"{crystal.name}: forward model I(q, E), dispersion overlaid",
        )
        print(f"wrote {png}")
    return 0
