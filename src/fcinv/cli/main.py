"""``fcinv``: force constants from single-crystal inelastic neutron scattering.

Dispatches ``fcinv <command> ...`` to ``fcinv.cli.<module>.main``. Modules are
imported only when their command runs, so ``fcinv --help`` is instant.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

from fcinv import __version__
from fcinv.errors import FcinvError

#: command → (module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("fcinv.cli.simulate", "θ or a phonopy FC set → I(q, E) on the q-path (HDF5 + PNG)"),
    "project": ("fcinv.cli.project", "project a phonopy FC set onto the symmetry-reduced parameters θ"),
    "reference": ("fcinv.cli.reference", "Stage I: force-field ensemble → θ bounds, sensitivity ranking (needs [mlff])"),
    "dataset": ("fcinv.cli.dataset", "Stage I: sample the widened domain → training set of (θ, I(q, E)) pairs"),
    "train": ("fcinv.cli.train", "Stage II: train the VAE, the FC regressor or ResNet-18"),
    "evaluate": ("fcinv.cli.evaluate", "Stage II: R², MAE, noise grid, latent analysis, figures"),
    "simulate-experiment": ("fcinv.cli.simexp", "a simulated ToF single-crystal experiment (Euphonic S(Q,E), instrument, counts)"),
    "fold": ("fcinv.cli.fold", "Stage III: fold a measured 4D S(Q,E) onto the model's q-path"),
    "infer": ("fcinv.cli.infer", "Stage III: measured spectrum → FCs with uncertainties (optionally refined by a fit)"),
    "fit": ("fcinv.cli.fit", "classical baseline: least-squares fit of θ to a folded I(q, E)"),
    "fit-dispersion": ("fcinv.cli.fit_dispersion", "fit θ to a table of measured phonon energies (triple-axis style)"),
    "export": ("fcinv.cli.export", "write θ as phonopy FORCE_CONSTANTS + POSCAR"),
    "demo": ("fcinv.cli.demo", "Stage III end to end on the embedded Ge default"),
    "advise": ("fcinv.cli.advise", "steering: rank the next goniometer orientations, say when to stop (--watch: live loop)"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [
        f"usage: fcinv <command> [options]   (fcinv {__version__})",
        "",
        "Force constants with error bars from single-crystal inelastic neutron scattering.",
        "",
        "commands:",
    ]
    for cmd, (module, desc) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            lines.append(f"  {cmd:<{width}}  {desc}")
    lines += ["", "Run `fcinv <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fcinv`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        print(f"fcinv {__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS or importlib.util.find_spec(COMMANDS[cmd][0]) is None:
        print(f"fcinv: unknown command '{cmd}'. Commands: {', '.join(c for c, (m, _) in COMMANDS.items() if importlib.util.find_spec(m))}.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("numba", "matplotlib", "h5py", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    module = importlib.import_module(COMMANDS[cmd][0])
    try:
        return int(module.main(rest) or 0)
    except FcinvError as exc:
        print(f"fcinv {cmd}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fcinv {cmd}: interrupted (partial outputs are kept where the command supports --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
