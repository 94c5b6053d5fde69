"""``fcinv prepare``: a new crystal from its structure file to a self-contained material folder.

Stage I (the force-field ensemble, or your phonopy sets) → training domain → dataset → VAE +
regressor, into DIR: material.json, structure.vasp, ensemble.json, reference_fc.hdf5,
provenance.json, domain.json, dataset.h5, models/ and prepare.json (what each step was made
from). DIR is then a material: ``--material DIR`` for simulate, dataset, fit, fit-dispersion,
simulate-experiment, fold and export, and ``--model DIR`` for infer. A rerun skips the finished
steps whose inputs did not change (and says so), and resumes an interrupted dataset or training.

Examples
--------
fcinv prepare Si.cif --out Si --quick                                   # force fields ([mlff] extra)
fcinv prepare POSCAR --out Si --from-phonopy FORCE_CONSTANTS --supercell 4 4 4 --quick
fcinv prepare Mg.cif --out Mg --path 'Γ-M-K-Γ-A-L-H-A' --shells 4 --members 7net-0 chgnet-0.2.0

``--quick``: 2 force-field members, 2,000 spectra, a VAE of ≤ 8 epochs and a regressor of
≤ 80: a first model in well under 30 minutes on 2 CPU cores (docs/new-material.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fcinv.cli._common import UsageError, cli_main


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{s!r} is not a comma-separated list of integers (e.g. 8,16)"
        ) from None


def get_parser() -> argparse.ArgumentParser:
    from fcinv.prepare.pipeline import PrepareOptions as D

    p = argparse.ArgumentParser(
        prog="fcinv prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("structure", help="the crystal's structure file (CIF, POSCAR)")
    p.add_argument("--out", type=Path, default=None, help="the material folder to write (default ./<name>)")
    p.add_argument(
        "--name", default=None, help="the material's name (default: the file's stem, or its formula)"
    )
    g = p.add_argument_group("Stage I")
    g.add_argument(
        "--from-phonopy",
        action="append",
        metavar="FILE",
        help="a phonopy FORCE_CONSTANTS / force_constants.hdf5 instead of force fields (repeatable)",
    )
    g.add_argument(
        "--set-structure",
        action="append",
        metavar="POSCAR",
        help="the POSCAR of each --from-phonopy set (default: STRUCTURE)",
    )
    g.add_argument(
        "--supercell",
        nargs="+",
        type=int,
        metavar="N",
        help="supercell of the force-field calculations, or of the --from-phonopy sets "
        "(default: the smallest n n n, n >= 3, that holds the shells)",
    )
    g.add_argument(
        "--members", nargs="+", metavar="NAME", help="force-field members (default: every shipped one)"
    )
    g.add_argument(
        "--widen", type=float, default=D.widen, help=f"relative widening of phonopy-set bounds ({D.widen})"
    )
    g.add_argument("--shells", type=int, default=None, help="neighbour shells in θ (default 5, or what fits)")
    s = p.add_argument_group("grid and intensities")
    s.add_argument(
        "--path", default=None, help="q-path labels (default: pathSQE's for fcc/bcc, seekpath's otherwise)"
    )
    s.add_argument(
        "--e-max", type=float, default=None, help="energy range, meV (default: 1.2 × the highest mode)"
    )
    s.add_argument("--e-step", type=float, default=D.e_step, help=f"energy bin, meV (default {D.e_step})")
    s.add_argument(
        "--intensity",
        choices=("auto", "paper", "physical"),
        default=D.intensity,
        help="training intensities: auto (default: physical where the physical model accepts the crystal, "
        "else paper), paper (weight 1) or physical (ARCS-like at Ei = max(40, 1.6 E_max) meV, randomised)",
    )
    t = p.add_argument_group("dataset and training")
    t.add_argument("--quick", action="store_true", help="2 members, 2,000 spectra, short training (< 30 min)")
    t.add_argument(
        "-n", "--n-spectra", type=int, default=D.n_spectra, help=f"spectra (default {D.n_spectra})"
    )
    t.add_argument("--n-test", type=int, default=None, help="test-split size (default n/10, at most 1500)")
    t.add_argument(
        "--seed", type=int, default=D.seed, help="seed of the dataset and the training (default 0)"
    )
    t.add_argument(
        "--vae-epochs", type=int, default=D.vae_epochs, help=f"VAE epochs (default {D.vae_epochs})"
    )
    t.add_argument("--reg-epochs", type=int, default=D.reg_epochs, help=f"regressor epochs ({D.reg_epochs})")
    t.add_argument("--patience", type=int, default=D.patience, help=f"early-stopping patience ({D.patience})")
    t.add_argument("--latent-dim", type=int, default=D.latent_dim, help=f"VAE latent size ({D.latent_dim})")
    t.add_argument("--channels", type=_ints, default=D.channels, help="VAE encoder channels (16,32,64,128)")
    t.add_argument("--hidden-dim", type=int, default=D.hidden_dim, help=f"VAE dense width ({D.hidden_dim})")
    t.add_argument("--batch-size", type=int, default=D.batch_size, help=f"batch size ({D.batch_size})")
    t.add_argument("--threads", type=int, default=D.threads, help="torch CPU threads (default 1)")
    t.add_argument("--device", default=D.device, help="torch device (default cpu)")
    p.add_argument(
        "--until",
        choices=("stage1", "domain", "dataset", "training"),
        default="training",
        help="stop after this step (default: every step); a later run resumes from there",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Run ``fcinv prepare``; errors propagate to the dispatcher (one line, exit 1 or 2)."""
    return _run(get_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from fcinv.crystal import Crystal
    from fcinv.prepare.pipeline import PrepareOptions, prepare
    from fcinv.prepare.stage1 import PhonopySet, formula_of, material_name, supercell_of

    structure = Path(args.structure)
    crystal = Crystal.from_file(structure)
    name = material_name(structure, formula_of(crystal), args.name)
    sets = []
    if args.from_phonopy:
        if not args.supercell:
            raise UsageError(
                "--from-phonopy needs --supercell (the supercell of the set's POSCAR), e.g. 4 4 4."
            )
        posc = args.set_structure or [str(structure)]
        if len(posc) not in (1, len(args.from_phonopy)):
            raise UsageError(
                f"{len(posc)} --set-structure for {len(args.from_phonopy)} --from-phonopy sets. "
                "Pass one per set, or one."
            )
        posc = posc * len(args.from_phonopy) if len(posc) == 1 else posc
        sets = [
            PhonopySet(Path(f), Path(s), supercell_of(args.supercell))
            for f, s in zip(args.from_phonopy, posc)
        ]
    elif args.set_structure:
        raise UsageError("--set-structure belongs to --from-phonopy. Add --from-phonopy FILE, or drop it.")
    for flag, v, lo in (("--n-spectra", args.n_spectra, 8), ("--vae-epochs", args.vae_epochs, 1)):
        if v < lo:
            raise UsageError(f"{flag} {v} is too small. Pass at least {lo}.")
    opts = PrepareOptions(
        name=name,
        sets=sets,
        members=args.members,
        supercell=None
        if sets
        else ([int(x) for x in supercell_of(args.supercell).diagonal()] if args.supercell else None),
        shells=args.shells,
        path=args.path,
        e_max=args.e_max,
        e_step=args.e_step,
        intensity=args.intensity,
        widen=args.widen,
        n_spectra=args.n_spectra,
        n_test=args.n_test,
        seed=args.seed,
        vae_epochs=args.vae_epochs,
        reg_epochs=args.reg_epochs,
        patience=args.patience,
        latent_dim=args.latent_dim,
        channels=tuple(args.channels),
        hidden_dim=args.hidden_dim,
        batch_size=args.batch_size,
        threads=args.threads,
        device=args.device,
        quick=args.quick,
        progress=not args.no_progress,
        until=args.until,
    )
    out = args.out or Path(name)
    t0 = time.perf_counter()
    res = prepare(structure, out, opts)
    wall = time.perf_counter() - t0
    steps = (
        ", ".join(f"{k} {v:.1f} s" for k, v in res["wall_s"].items()) or "every step skipped (done earlier)"
    )
    print(f"prepared {res['name']} in {out} in {wall / 60:.1f} min ({steps})")
    if res.get("until", "training") != "training":
        print(f"stopped after {res['until']} (--until); run again without --until to finish")
    else:
        print(f"use it as --material {out} (simulate, fold, fit, export, ...) and --model {out} (infer)")
    (out / "prepare_last.json").write_text(json.dumps({**res, "total_s": round(wall, 1)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
