"""Guards every command runs before its work: outputs, sizes, physical limits, interrupts.

- :func:`check_outputs`: an existing output needs ``--force`` (or ``--resume`` where that applies),
  the folder must be writable, and stale temporary files of killed runs are removed. The resume checks
  (``dataset --resume`` / ``train --resume`` with the options of the interrupted run) are in
  :mod:`fcinv.cli._resume`.
- :func:`check_memory`: refuse a job whose memory estimate exceeds a fraction of the machine's memory.
- :func:`check_range` and friends: physical limits on energies, temperatures and θ.
- :func:`interrupt_guard`: one SIGINT stops a command within a second, even when Python swallows the
  first ``KeyboardInterrupt`` (an exception raised inside a destructor or weakref callback is only
  printed, "Exception ignored in ..."); :func:`interrupt_message` says which flag resumes.

Every refusal is an :class:`fcinv.errors.FcinvError` subclass with a one-line message that names the
problem, the value and the fix.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

# the shared output helpers, re-exported from here
from fcinv.cli._outputs import (  # noqa: F401
    LimitError,
    OutputError,
    _ParseFailed,
    _pid_alive,
    _quiet_parse,
    check_writable,
    remove_stale_temporaries,
    stale_temporaries,
)

log = logging.getLogger(__name__)

#: Refuse a job whose memory estimate exceeds this fraction of the machine's (or cgroup's) memory.
MEMORY_FRACTION = 0.5
#: Largest energy (meV) any command accepts: phonons of the lightest solids stay below ~500 meV.
E_MAX_LIMIT_MEV = 1000.0
#: Largest incident energy (meV) of the simulated direct-geometry spectrometer (ARCS reaches ~3 eV).
EI_LIMIT_MEV = 3000.0
#: Largest temperature (K) accepted for a sample.
T_LIMIT_K = 5000.0
#: Largest |θ| (eV/Å²) accepted: real interatomic force constants stay below ~100 eV/Å².
THETA_LIMIT = 1000.0


def check_outputs(
    outputs: Iterable[tuple[str | Path | None, str]],
    *,
    force: bool,
    folder: bool = False,
    resume_flag: str | None = None,
) -> None:
    """Refuse existing outputs without ``--force``, check that each can be written, clean stale temps.

    Parameters
    ----------
    outputs
        ``(path, flag)`` pairs, e.g. ``[(args.output, "-o"), (args.png, "--png")]``; None paths are skipped.
    force
        ``--force`` was given: existing outputs are replaced.
    folder
        The outputs are folders (``export --out``): an existing non-empty folder needs ``--force``.
    resume_flag
        Where the command can continue a partial output, its flag, named in the message.

    Raises
    ------
    OutputError
        An existing output without ``--force``, a file where a folder is expected (or the reverse),
        or an unwritable folder.
    """
    for path, flag in outputs:
        if path is None:
            continue
        path = Path(path)
        if folder:
            if path.exists() and not path.is_dir():
                raise OutputError(f"{flag} {path} is a file, not a folder. Choose a folder path.")
            if path.is_dir() and any(path.iterdir()) and not force:
                raise OutputError(
                    f"{flag} {path} exists and is not empty. Pass --force to overwrite it or choose "
                    "another folder."
                )
            check_writable(path, flag=flag, folder=True)
            remove_stale_temporaries(path)
            continue
        if path.is_dir():
            raise OutputError(
                f"{flag} {path} is a folder; expected a file name. Pass a file path such as "
                f"{path / 'out.h5'}."
            )
        if path.exists() and not force:
            more = f" ({resume_flag} continues an interrupted run)" if resume_flag else ""
            raise OutputError(
                f"{flag} {path} exists. Pass --force to overwrite it or choose another path{more}."
            )
        check_writable(path, flag=flag)
        remove_stale_temporaries(path.parent if str(path.parent) else Path("."))


# ------------------------------------------------------------------------------------------- memory
def machine_memory_bytes() -> int:
    """Physical memory of the machine, or the cgroup's limit where that is smaller (bytes)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            lim = int(Path(f).read_text().strip())
            if 0 < lim < total:
                total = lim
    return int(total)


def _gib(n: float) -> str:
    if n < 0.1 * 2**30:
        return f"{n / 2**20:,.1f} MiB"
    return f"{n / 2**30:,.1f} GiB"


def check_memory(estimate_bytes: float, what: str, fix: str) -> None:
    """Refuse a job whose memory estimate exceeds :data:`MEMORY_FRACTION` of the machine's memory.

    Parameters
    ----------
    estimate_bytes
        Estimated peak memory of the job (bytes).
    what
        What is estimated, e.g. ``"simulate: 2e6 q × E bins × 6 modes"``.
    fix
        How to shrink the job, e.g. ``"lower --e-max or raise --e-step"``.

    Raises
    ------
    LimitError
        With the estimate and the limit in the message.
    """
    limit = MEMORY_FRACTION * machine_memory_bytes()
    if not math.isfinite(estimate_bytes) or estimate_bytes > limit:
        raise LimitError(
            f"{what} needs about {_gib(estimate_bytes)} of memory, over the limit of {_gib(limit)} "
            f"({MEMORY_FRACTION:.0%} of this machine's). {fix[0].upper() + fix[1:]}."
        )
    log.debug("%s: memory estimate %s (limit %s)", what, _gib(estimate_bytes), _gib(limit))


# ------------------------------------------------------------------------------------------- limits
def check_range(
    value: float | None,
    flag: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    unit: str = "",
    why: str = "",
) -> None:
    """Refuse ``value`` outside ``[low, high]`` (``(low, high]`` with ``low_open``) or non-finite.

    None passes (the option was not given).
    """
    if value is None:
        return
    u = f" {unit}" if unit else ""
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or value <= high
    if math.isfinite(value) and lo_ok and hi_ok:
        return
    if low is not None and high is not None:
        want = f"{'>' if low_open else '>='} {low:g}{u} and <= {high:g}{u}"
    elif low is not None:
        want = f"{'>' if low_open else '>='} {low:g}{u}"
    else:
        want = f"<= {high:g}{u}"
    tail = f" ({why})" if why else ""
    end = "" if want.endswith(".") else "."
    raise LimitError(f"{flag} {value:g}{u} is out of range{tail}. Pass a finite value {want}{end}")


def check_count(
    value: int | None, flag: str, *, low: int = 1, high: int | None = None, why: str = ""
) -> None:
    """Refuse an integer option below ``low`` (or above ``high``)."""
    if value is None:
        return
    if value < low or (high is not None and value > high):
        rng = f"{low} to {high}" if high is not None else f"an integer >= {low}"
        tail = f" ({why})" if why else ""
        raise LimitError(f"{flag} {value} is out of range{tail}. Pass {rng}.")


def check_theta(theta, names: list[str], *, flag: str = "--theta") -> None:
    """Refuse θ entries that are not finite or exceed :data:`THETA_LIMIT` eV/Å² in magnitude."""
    import numpy as np

    t = np.asarray(theta, dtype=float).ravel()
    bad = [(n, float(v)) for n, v in zip(names, t) if not (math.isfinite(v) and abs(v) <= THETA_LIMIT)]
    if bad:
        n, v = bad[0]
        raise LimitError(
            f"{flag} {n}={v:g} eV/Å² is unphysical (|θ| must be <= {THETA_LIMIT:g} eV/Å²; real force "
            f"constants are a few eV/Å²). Pass a value near the reference."
        )


# ------------------------------------------------------------------------------------------- signals
#: The flag that continues each long command's partial output after an interruption.
RESUME_FLAGS = {"dataset": "--resume", "train": "--resume"}


def interrupt_message(cmd: str, argv: list[str]) -> str:
    """The one-line message printed when ``fcinv <cmd>`` is interrupted: what was kept, how to resume."""
    flag = RESUME_FLAGS.get(cmd)
    if flag is None:
        return (
            f"fcinv {cmd}: interrupted; no output was written (outputs are replaced only when complete). "
            "Rerun the command."
        )
    if cmd == "train" and flag in argv:
        how = "the same command again"
    else:
        how = f"the same command with {flag}"
    return f"fcinv {cmd}: interrupted; the partial output is kept. Run {how} to continue it."


@contextlib.contextmanager
def interrupt_guard(poll_s: float = 0.05) -> Iterator[threading.Event]:
    """Make one SIGINT stop the block within a second.

    A SIGINT raises :class:`KeyboardInterrupt` as usual. Python drops that exception when it lands in a
    destructor or a weakref callback (it only prints "Exception ignored in ..."); the guard sees the
    drop through :data:`sys.unraisablehook` and raises it again in the main thread ``poll_s`` later.
    Outside the main thread, or where SIGINT is ignored, the block runs unguarded.

    Yields
    ------
    threading.Event
        Set once a SIGINT was received.
    """
    import sys

    pending = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield pending
        return
    done, swallowed = threading.Event(), threading.Event()
    previous_hook = sys.unraisablehook

    def handler(signum, frame):  # noqa: ARG001 - the signal API
        pending.set()
        raise KeyboardInterrupt

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            swallowed.set()
            return
        previous_hook(unraisable)

    def watchdog():
        import _thread

        while not done.wait(poll_s):
            if swallowed.is_set() and not done.is_set():
                swallowed.clear()
                log.debug("a KeyboardInterrupt was swallowed; raising it again")
                _thread.interrupt_main()  # runs the handler again in the main thread

    signal.signal(signal.SIGINT, handler)
    sys.unraisablehook = hook
    thread = threading.Thread(target=watchdog, name="fcinv-interrupt-watchdog", daemon=True)
    thread.start()
    try:
        yield pending
    finally:
        done.set()
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
        thread.join(1.0)


# ------------------------------------------------------------------------------------ the CLI's check
#: Output options per command: (argparse dest, flag, kind). Kinds: "file" (exists → --force), "folder"
#: (non-empty → --force), "writable" (only the writable check: the command manages its own outputs),
#: "dataset" (the finished file needs --force; the partial --resume or --overwrite).
OUTPUTS: dict[str, list[tuple[str, str, str]]] = {
    "simulate": [("output", "-o", "file"), ("png", "--png", "file")],
    "project": [("json", "--json", "file")],
    "dataset": [("output", "-o", "dataset")],
    "train": [("out", "--out", "writable")],
    "evaluate": [("out", "--out", "folder")],
    "simulate-experiment": [("output", "-o", "file"), ("fold", "--fold", "file")],
    "fold": [("output", "-o", "file"), ("png", "--png", "file")],
    "infer": [("json", "--json", "file"), ("csv", "--csv", "file"), ("png", "--png", "file")],
    "fit": [("output", "-o", "file"), ("png", "--png", "file")],
    "fit-dispersion": [("output", "-o", "file"), ("png", "--png", "file")],
    "export": [("output", "-o", "folder")],
    "reference": [("out_dir", "--out-dir", "writable")],
    "demo": [("out", "--out", "writable")],
}
#: Defaults of output paths that the parser leaves None: (dest, function of the namespace).
_DEFAULTS = {
    "fit": {"output": lambda a: _with_stem(a.data, "_fit.json")},
    "fit-dispersion": {"output": lambda a: _with_stem(a.points, "_fit.json")},
}


def _with_stem(path, suffix: str) -> Path | None:
    if not isinstance(path, (str, os.PathLike)):
        return None
    p = Path(path)
    return p.with_name(p.stem + suffix)


def precheck(cmd: str, module, argv: list[str]) -> list[str]:
    """Checks ``fcinv <cmd> argv`` before the command starts; returns ``argv`` for the command.

    ``--force`` is taken off the line for commands whose parser does not define it. Then every
    output option of :data:`OUTPUTS` is checked (:func:`check_outputs`) and the command's own argument
    checks run (:data:`ARG_CHECKS`). A line the parser rejects is left to the command, which reports it.
    """
    if any(a in ("-h", "--help") for a in argv) or not hasattr(module, "get_parser"):
        return argv
    try:
        parser = module.get_parser()
    except Exception:  # noqa: BLE001 - a parser that cannot be built is reported when the command runs
        return argv
    own = set(parser._option_string_actions)
    force = "--force" in argv
    if force and "--force" not in own:
        argv = [a for a in argv if a != "--force"]
    args = _quiet_parse(module.get_parser(), argv)
    if args is None:
        return argv
    for dest, flag, kind in OUTPUTS.get(cmd, []):
        value = getattr(args, dest, None)
        if value is None and dest in _DEFAULTS.get(cmd, {}):
            value = _DEFAULTS[cmd][dest](args)
        if value is None:
            continue
        if kind == "file":
            check_outputs([(value, flag)], force=force)
        elif kind == "folder":
            check_outputs([(value, flag)], force=force, folder=True)
        elif kind == "writable":
            check_writable(Path(value), flag=flag, folder=True)
            remove_stale_temporaries(value)
        elif kind == "dataset":
            from fcinv.cli._resume import check_dataset_output

            check_dataset_output(args, argv, force=force)
    for check in ARG_CHECKS.get(cmd, []):
        check(args, argv)
    return argv


#: The resume checks live in :mod:`fcinv.cli._resume`; these names stay importable from here.
_MOVED_TO_RESUME = {
    "check_dataset_output",
    "check_dataset_resume",
    "check_train_resume",
    "train_resume_command",
}


def __getattr__(name: str):
    if name in _MOVED_TO_RESUME:
        from fcinv.cli import _resume

        return getattr(_resume, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------- per-command checks
def _temperature(value, flag):
    check_range(value, flag, low=0.0, high=T_LIMIT_K, unit="K", why="a sample temperature")


def _grid_pixels(material_name: str | None) -> tuple[int, int]:
    """(pixels of the material's default grid, modes per q) for memory estimates."""
    from fcinv.material import load_material

    m = load_material(material_name or "Ge")
    n_q, n_e = m.grid().shape
    return n_q * n_e, 3 * len(m.crystal.numbers)


def _check_dataset(args, argv) -> None:
    check_count(args.n, "-n", why="the number of stable samples")
    check_count(args.chunk, "--chunk", why="samples drawn per batch")
    check_count(args.n_test, "--n-test", why="the test-split size")
    if args.n_test is not None and args.n is not None and "--n-test" in argv and args.n_test > args.n - 2:
        raise LimitError(
            f"--n-test {args.n_test} leaves no training or validation samples of -n {args.n}. "
            f"Pass --n-test below {args.n - 1}."
        )
    if "--n-test" in argv and args.n < 10000:
        log.warning(
            "--n-test %d is for 10,000 samples: with -n %d the test split keeps %d (n_test × n / 10,000).",
            args.n_test,
            args.n,
            max(1, round(args.n_test * args.n / 10000)),
        )
    check_count(args.shells, "--shells", why="neighbour shells")
    check_count(args.seed, "--seed", low=0, why="a random seed")
    lo, hi = args.temperature
    _temperature(lo, "--temperature LOW")
    _temperature(hi, "--temperature HIGH")
    if lo > hi:
        raise LimitError(f"--temperature {lo:g} {hi:g}: LOW is above HIGH. Pass LOW <= HIGH (K).")
    check_range(args.clean_fraction, "--clean-fraction", low=0.0, high=1.0, why="a share of samples")
    for w, name in zip(args.widen, ("TOWARD_ZERO", "AWAY")):
        check_range(w, f"--widen {name}", low=0.0, high=10.0, why="a fraction of the ensemble range")
    pixels, modes = _grid_pixels(args.material)
    factor = 8 if args.intensity == "physical" else 4
    check_memory(
        float(min(args.chunk, max(args.n, 64) * 2)) * pixels * modes * 8 * factor,
        f"fcinv dataset --chunk {args.chunk} ({pixels:,} pixels × {modes} modes per spectrum)",
        "pass a smaller --chunk (e.g. 500)",
    )


def _check_infer(args, argv) -> None:
    check_count(
        args.k_samples, "--k-samples", low=2, why="σ is the spread of K latent samples; K < 2 gives no σ"
    )
    _temperature(args.temperature, "--temperature")
    check_range(args.q_tolerance, "--q-tolerance", low=0.0, high=1.0, low_open=True, unit="r.l.u.")


def _check_fold(args, argv) -> None:
    check_range(args.q_tolerance, "--q-tolerance", low=0.0, high=1.0, low_open=True, unit="r.l.u.")
    _temperature(args.bose, "--bose")
    _temperature(args.one_phonon, "--one-phonon")
    check_range(args.min_zone_coverage, "--min-zone-coverage", low=0.0, high=1.0, why="a fraction")
    check_count(args.orientation, "--orientation", low=0, why="an orientation index")
    if args.qmod_range is not None:
        a, b = args.qmod_range
        if not (math.isfinite(a) and math.isfinite(b) and 0 <= a < b):
            raise LimitError(f"--qmod-range {a:g} {b:g} is not a |Q| interval. Pass 0 <= MIN < MAX (1/Å).")


def input_bytes(path: str | Path) -> int:
    """Uncompressed size (bytes) of the arrays in a data file: HDF5 datasets, NPZ members, else the file."""
    import zipfile

    p = Path(path)
    if not p.is_file():
        return 0
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            return sum(i.file_size for i in z.infolist())
    try:
        import h5py

        total = 0
        with h5py.File(p, "r") as f:

            def visit(_name, obj):
                nonlocal total
                if isinstance(obj, h5py.Dataset) and obj.shape is not None:
                    total += int(obj.size) * obj.dtype.itemsize

            f.visititems(visit)
        return total
    except OSError:
        return p.stat().st_size


#: Peak memory of fold measured with /usr/bin/time: a 60×60×60×80 float32 volume (138 MB of signal and
#: error in an NPZ) folded onto Ge's 140 × 80 grid peaked at 1.77 GB: interpreter + ~11× the input.
FOLD_MEMORY_PYTHON, FOLD_MEMORY_FACTOR = 0.3e9, 11.0


def _check_fold_memory(args, argv) -> None:
    total = sum(input_bytes(p) for p in args.data)
    check_memory(
        FOLD_MEMORY_PYTHON + FOLD_MEMORY_FACTOR * total,
        f"fcinv fold of {len(args.data)} file(s) holding {_gib(total)} of arrays",
        "fold a smaller region (--qmod-range), one --orientation, or fewer files at a time",
    )


def _check_simexp(args, argv) -> None:
    check_range(
        args.ei,
        "--ei",
        low=0.0,
        high=EI_LIMIT_MEV,
        low_open=True,
        unit="meV",
        why="the incident energy of a direct-geometry spectrometer",
    )
    _temperature(args.temperature, "--temperature")
    check_count(args.n_orientations, "--n-orientations", why="sample orientations")
    check_range(args.q_step, "--q-step", low=0.0, high=0.5, low_open=True, unit="r.l.u.")
    check_range(args.psi_step, "--psi-step", low=-360.0, high=360.0, unit="°")
    check_memory(
        simexp_memory_estimate(args.ei, args.n_orientations, args.q_step, full_volume=args.full_volume),
        f"fcinv simulate-experiment --ei {args.ei:g} with {args.n_orientations} orientations",
        "lower --ei, --n-orientations or raise --q-step",
    )


#: Peak memory of Ge runs measured with /usr/bin/time (0.05 r.l.u. bins, tubes of the pathSQE path):
#: Ei 40 meV, 10 / 40 orientations: 0.50 / 0.87 GB; Ei 160 meV, 10 orientations: 1.55 GB. Model:
#: bytes = interpreter + (region + per orientation × n) × (Ei / 40 meV)^1.4.
_SIMEXP_PYTHON, _SIMEXP_REGION, _SIMEXP_PER_ORIENTATION, _SIMEXP_EI_EXPONENT = 0.30e9, 0.075e9, 12.3e6, 1.4


def simexp_memory_estimate(
    ei: float, n_orientations: int, q_step: float, *, full_volume: bool = False
) -> float:
    """Peak memory (bytes) of ``fcinv simulate-experiment``, scaled from measured Ge runs.

    The covered (orientation, bin) entries grow with the reachable Q region (measured: as Ei^1.4 at a
    fixed energy grid), with the number of orientations, and as (0.05 / q_step)³; ``--full-volume``
    keeps every covered bin rather than the folding tubes' (counted as 10× more).
    """
    scale = (max(ei, 1e-9) / 40.0) ** _SIMEXP_EI_EXPONENT * (0.05 / q_step) ** 3
    scale *= 10.0 if full_volume else 1.0
    return _SIMEXP_PYTHON + (_SIMEXP_REGION + _SIMEXP_PER_ORIENTATION * n_orientations) * scale


def _check_train(args, argv) -> None:
    """``fcinv train``: counts, rates and widths named by their flags (before the library's own checks,
    which name its parameters), then :func:`check_train_resume`."""
    check_count(args.epochs, "--epochs", why="training epochs")
    check_count(args.batch_size, "--batch-size", why="spectra per batch")
    check_range(args.lr, "--lr", low=0.0, high=10.0, low_open=True, why="the AdamW learning rate, e.g. 1e-3")
    check_range(args.weight_decay, "--weight-decay", low=0.0, high=10.0, why="the AdamW weight decay")
    check_count(args.patience, "--patience", why="epochs without improvement before stopping")
    check_count(args.seed, "--seed", low=0, why="a random seed")
    check_count(args.threads, "--threads", why="torch CPU threads")
    check_count(args.max_train, "--max-train", why="training samples")
    check_count(args.max_val, "--max-val", why="validation samples")
    if args.model == "vae":
        check_count(args.latent_dim, "--latent-dim", why="the latent dimension")
        check_count(args.hidden_dim, "--hidden-dim", why="the dense layer width")
        check_range(args.beta, "--beta", low=0.0, high=1e3, why="the weight of the KL term")
        _check_widths(args.channels, "--channels", "16,32,64,128")
    elif args.model == "regressor":
        _check_widths(args.hidden, "--hidden", "256,256,128")
        d = args.dropout
        if not (math.isfinite(d) and 0.0 <= d < 1.0):
            raise LimitError(f"--dropout {d:g} is out of range (a dropout probability). Pass 0 <= p < 1.")
    from fcinv.cli._resume import check_train_resume

    check_train_resume(args, argv)


def _check_widths(widths, flag: str, example: str) -> None:
    if not widths or any(w < 1 for w in widths):
        shown = ",".join(str(w) for w in widths) or "(empty)"
        raise LimitError(
            f"{flag} {shown}: layer widths must be positive integers. Pass e.g. {flag} {example}."
        )


def _check_evaluate(args, argv) -> None:
    check_count(args.max_test, "--max-test", why="test spectra to evaluate")
    check_count(args.k_samples, "--k-samples", low=0, why="latent samples (0 regresses μ)")


def _check_fit(args, argv) -> None:
    check_count(getattr(args, "starts", None), "--starts", why="local fits")
    check_count(getattr(args, "candidates", None), "--candidates", why="screened start candidates")
    check_count(args.max_nfev, "--max-nfev", why="evaluations per stage")
    check_range(args.outlier_sigma, "--outlier-sigma", low=0.0, low_open=True, why="robust σ")
    check_count(args.stability_mesh, "--stability-mesh", why="the N³ stability mesh")
    check_count(args.shells, "--shells", why="neighbour shells")
    check_range(getattr(args, "fwhm", None), "--fwhm", low=0.0, high=E_MAX_LIMIT_MEV, unit="meV")
    check_range(getattr(args, "presmooth", None), "--presmooth", low=0.0, high=E_MAX_LIMIT_MEV, unit="meV")


def _check_demo(args, argv) -> None:
    check_count(args.orientations, "--orientations", why="sample orientations")
    check_count(args.single_scans, "--single-scans", low=0, why="single orientations to invert")


def _check_export(args, argv) -> None:
    check_count(args.shells, "--shells", why="neighbour shells")


def _check_project(args, argv) -> None:
    check_count(getattr(args, "shells", None), "--shells", why="neighbour shells")
    check_range(getattr(args, "cutoff", None), "--cutoff", low=0.0, high=50.0, low_open=True, unit="Å")


def _check_reference(args, argv) -> None:
    """``fcinv reference``: refuse at once when no member's force-field package is installed (a
    reference from the user's phonopy sets, ``--from-phonopy``, needs none)."""
    if getattr(args, "list_members", False) or getattr(args, "from_phonopy", None):
        return
    from fcinv.errors import install_command
    from fcinv.mlff.ensemble import resolve_members

    members = resolve_members(args.members)
    missing = sorted({m.package for m in members if m.package_version() is None})
    if missing and all(m.package_version() is None for m in members):
        raise LimitError(
            f"no force-field package of the ensemble is installed (missing: {', '.join(missing)}). "
            f"Install them with: {install_command('mlff')} (chgnet, sevenn), or build the "
            "reference from your phonopy sets with --from-phonopy."
        )
    if missing:
        log.warning("members needing %s are skipped: not installed (%s)", missing, install_command("mlff"))


#: The argument checks :func:`precheck` runs per command, after the output checks.
ARG_CHECKS = {
    "dataset": [_check_dataset],
    "infer": [_check_infer],
    "fold": [_check_fold, _check_fold_memory],
    "simulate-experiment": [_check_simexp],
    "evaluate": [_check_evaluate],
    "fit": [_check_fit],
    "fit-dispersion": [_check_fit],
    "demo": [_check_demo],
    "export": [_check_export],
    "project": [_check_project],
    "reference": [_check_reference],
    "train": [_check_train],
}


def check_dispersion_points(points, path) -> None:
    """Refuse phonon energies that are negative or not finite (``fit-dispersion``).

    Large energies are left to the fit's outlier flagging (an absurd point is flagged, not refused).
    """
    import numpy as np

    e = np.asarray(points.energy, float)
    bad = np.flatnonzero(~np.isfinite(e) | (e < 0))
    if len(bad):
        i = int(bad[0])
        raise LimitError(
            f"'{path}' data row {i + 1}: energy {e[i]:g} meV is not a phonon energy (must be >= 0). "
            "Give |E| of each mode (energy loss), or remove the row."
        )
