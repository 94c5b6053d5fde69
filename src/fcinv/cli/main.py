"""``fcinv``: force constants from single-crystal inelastic neutron scattering.

Dispatches ``fcinv <command> ...`` to ``fcinv.cli.<module>.main``. Modules are imported only when
their command runs, so ``fcinv --help`` is instant.

Every command takes the same ``-v`` (INFO; ``-vv`` DEBUG) and ``-q`` (errors only, no progress
bars); without them the level is WARNING. Log records are written through tqdm, so they never
break a progress bar. Exit codes: 0 success, 1 an error in the data or the result, 2 usage.
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
}
#: Exit codes.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_VERBOSITY = {"-q": -1, "--quiet": -1, "-v": 1, "--verbose": 1, "-vv": 2, "-vvv": 2}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [
        f"usage: fcinv [-v | -q] <command> [options]   (fcinv {__version__})",
        "",
        "Force constants with error bars from single-crystal inelastic neutron scattering.",
        "",
        "commands:",
    ]
    for cmd, (module, desc) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            lines.append(f"  {cmd:<{width}}  {desc}")
    lines += ["", "-v / -vv: more log output (INFO / DEBUG); -q: errors only, no progress bars.",
              "Run `fcinv <command> --help` for a command's options.",
              "Exit codes: 0 success, 1 error in the data or the result, 2 usage."]
    return "\n".join(lines)


def split_verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """Remove ``-v``/``-vv``/``-q`` (and ``--verbose``/``--quiet``) from ``argv``: (verbosity, the rest).

    Verbosity: -1 quiet, 0 default (WARNING), 1 INFO, 2 DEBUG. Only whole words are taken, so an option
    such as ``--v`` (NXSPE's scattering-plane vector) is left alone.
    """
    level, rest = 0, []
    for a in argv:
        if a in _VERBOSITY:
            v = _VERBOSITY[a]
            level = -1 if v < 0 else max(level, v) if level >= 0 else level
        else:
            rest.append(a)
    return level, rest


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fcinv`` script; returns the exit code."""
    from fcinv.cli._common import UsageError, configure_logging, restore_logging
    from fcinv.io.provenance import command_scope

    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity, argv = split_verbosity(argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return EXIT_OK if (not argv or argv[0] != "help" or len(argv) == 1) else EXIT_USAGE
    if argv[0] in {"-V", "--version"}:
        print(f"fcinv {__version__}")
        return EXIT_OK
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS or importlib.util.find_spec(COMMANDS[cmd][0]) is None:
        known = ", ".join(c for c, (m, _) in COMMANDS.items() if importlib.util.find_spec(m))
        print(f"fcinv: unknown command '{cmd}'. Commands: {known}.", file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[cmd][0])
    rest = _pass_own_flags(module, verbosity, rest)
    state = configure_logging(verbosity)
    try:
        with command_scope(["fcinv", cmd, *rest]):
            return int(module.main(rest) or 0)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        return code
    except UsageError as exc:
        print(f"fcinv {cmd}: usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FcinvError as exc:
        print(f"fcinv {cmd}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"fcinv {cmd}: interrupted (partial outputs are kept where the command supports --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        restore_logging(state)


def _pass_own_flags(module, verbosity: int, rest: list[str]) -> list[str]:
    """Commands whose own parser defines ``--quiet`` / ``--verbose`` still receive them."""
    if verbosity == 0 or not hasattr(module, "get_parser"):
        return rest
    try:
        opts = module.get_parser()._option_string_actions  # argparse's table of option strings
    except Exception:  # noqa: BLE001 - a parser that cannot be built is reported when the command runs
        return rest
    if verbosity < 0 and "--quiet" in opts:
        return [*rest, "--quiet"]
    if verbosity > 0 and "--verbose" in opts:
        return [*rest, "--verbose"]
    return rest


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
