"""One format registry: how each measurement file is recognised (sniffed) and loaded.

:func:`open_measurement` is the one entry point that ``fcinv fold``, ``fcinv infer``, the
pipeline and :func:`fcinv.invert` use: it returns a
:class:`~fcinv.experiment.folded.FoldedSpectrum` (already on a q-path) or a
:class:`~fcinv.experiment.volume.Volume4D` (to be folded). Each format is one
:class:`MeasurementFormat` in :data:`FORMATS`, with its sniff rule and its loader; the
rules are tried in the registry's order and the first match wins.

Options a loader understands are passed through ``open_measurement(path, **options)``.
``grid`` and ``lattice`` are context (what the caller knows about the material) and are
ignored by formats that do not need them; any other option that the file's format does not
take is an error, so a misspelt or misplaced option never passes silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fcinv.errors import DataError

log = logging.getLogger(__name__)

#: Options every loader accepts and ignores when it does not need them.
CONTEXT_OPTIONS = frozenset({"grid", "lattice"})
#: fcinv HDF5 formats that are not measurements, with the fix named in the refusal.
NOT_MEASUREMENTS = {
    "fcinv-dataset": "a training dataset, not a measurement. Pass one spectrum (fcinv simulate, fcinv fold) "
    "or a 4D volume",
}


#: Formats fcinv does not read, by suffix, with the documented conversion named in the refusal.
#: Horace .sqw: no maintained Python reader of the format was found on PyPI (scipp's sqomega was
#: archived in Nov 2024; pace-neutrons drives Horace inside MATLAB); see docs/formats.md.
UNREADABLE_SUFFIXES = {
    ".sqw": "a Horace .sqw file, which fcinv cannot read (there is no maintained Python reader). "
    "Pass the NXSPE files it was generated from (gen_sqw's input, with --u/--v/--ub as given to "
    "gen_sqw), or convert it in Mantid: LoadSQW2, BinMD onto [H,0,0], [0,K,0], [0,0,L], DeltaE, "
    "SaveMD, and pass that .nxs (an MDHisto file; docs/formats.md)",
}


@dataclass(frozen=True, eq=False)
class Probe:
    """What a file looks like, read once and shared by every sniff rule."""

    path: Path

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()

    @cached_property
    def h5(self) -> dict[str, Any] | None:
        """``{"format": str | None, "keys": [...], "groups": {name: [keys]}}`` or None if not HDF5."""
        import h5py

        if self.suffix in {".npy", ".npz"}:
            return None
        try:
            with h5py.File(self.path, "r") as f:
                fmt = f.attrs.get("format")
                fmt = fmt.decode() if isinstance(fmt, bytes) else (None if fmt is None else str(fmt))
                groups = {k: list(g.keys()) for k, g in f.items() if isinstance(g, h5py.Group)}
                return {"format": fmt, "keys": list(f.keys()), "groups": groups}
        except OSError:
            return None

    @cached_property
    def npz_keys(self) -> list[str] | None:
        if self.suffix != ".npz":
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                return list(z.files)
        except (OSError, ValueError, EOFError):
            return None

    def fcinv_format(self) -> str | None:
        return None if self.h5 is None else self.h5["format"]


@dataclass(frozen=True)
class MeasurementFormat:
    """One file format: its name, what it holds, how it is recognised and loaded.

    Attributes
    ----------
    name
        The ``--format`` name.
    kind
        ``"folded"`` (an I(q, E) on a path) or ``"volume"`` (a 4D S(Q, E) to fold).
    description
        One line for help texts and error messages.
    sniff
        ``Probe -> bool``: True when the file is of this format.
    load
        ``(paths, **options) -> FoldedSpectrum | Volume4D``.
    options
        The options (beyond :data:`CONTEXT_OPTIONS`) the loader takes.
    multi
        Whether several files (one per orientation) make one measurement.
    """

    name: str
    kind: Literal["folded", "volume"]
    description: str
    sniff: Callable[[Probe], bool]
    load: Callable[..., Any]
    options: frozenset[str] = field(default_factory=frozenset)
    multi: bool = False


# ------------------------------------------------------------------ loaders
def _load_folded(paths: list[Path], **_: Any):
    from fcinv.experiment.folded import FoldedSpectrum

    return FoldedSpectrum.from_hdf5(paths[0])


def _load_volume(paths: list[Path], **_: Any):
    from fcinv.experiment.volume import Volume4D

    return Volume4D.from_hdf5(paths[0])


def _load_run(paths: list[Path], *, orientation: int | None = None, **_: Any):
    from fcinv.experiment.simulate import SimulatedRun

    run = SimulatedRun.read(paths[0])
    return run.total() if orientation is None else run.orientation(int(orientation))


def _reciprocal_cell(lattice: Sequence[float] | None) -> np.ndarray | None:
    if lattice is None:
        return None
    from fcinv.experiment.geometry import lattice_b_matrix, normalise_lattice

    return 2 * np.pi * lattice_b_matrix(*normalise_lattice(lattice)).T


def _load_mdhisto(
    paths: list[Path],
    *,
    norm_path: str | Path | None = None,
    reciprocal_cell: np.ndarray | None = None,
    lattice=None,
    **_: Any,
):
    from fcinv.experiment.volume import Volume4D

    rc = reciprocal_cell if reciprocal_cell is not None else _reciprocal_cell(lattice)
    return Volume4D.from_mdhisto(paths[0], norm_path=norm_path, reciprocal_cell=rc)


def _load_array(paths: list[Path], *, group: str | None = None, **_: Any):
    from fcinv.experiment.volume import Volume4D

    return Volume4D.from_array_file(paths[0], group=group)


def _load_nxspe(
    paths: list[Path],
    *,
    ub=None,
    lattice=None,
    u=(1.0, 0.0, 0.0),
    v=(0.0, 1.0, 0.0),
    psi_offset: float = 0.0,
    q_step: float = 0.05,
    e_edges=None,
    grid=None,
    **_: Any,
):
    from fcinv.experiment.geometry import normalise_lattice
    from fcinv.experiment.volume import Volume4D

    if ub is None and lattice is None:
        raise DataError(
            "NXSPE files carry no sample orientation. Pass the material (its lattice) or ub "
            "(3x3, 1/Å) / lattice (a, b, c[, alpha, beta, gamma]) with u and v."
        )
    if e_edges is None and grid is not None:
        e_edges = grid.energy_edges
    lat = None if lattice is None else normalise_lattice(lattice)
    ub_arr = None if ub is None else np.asarray(ub, dtype=float).reshape(3, 3)
    return Volume4D.from_nxspe(
        paths, ub=ub_arr, lattice=lat, u=u, v=v, psi_offset=psi_offset, q_step=q_step, e_edges=e_edges
    )


def _load_pathsqe(paths: list[Path], *, grid=None, transpose: bool = False, **_: Any):
    from fcinv.experiment.folded import FoldedSpectrum

    if grid is None:
        raise DataError(
            f"'{paths[0]}' is pathSQE output, which carries no q-path. "
            "Pass the grid it was folded on (grid=material.grid(), or --material)."
        )
    return FoldedSpectrum.from_pathsqe(paths[0], grid, transpose=transpose)


# --------------------------------------------------------------- sniff rules
def _is_fcinv(fmt: str) -> Callable[[Probe], bool]:
    return lambda p: p.fcinv_format() == fmt


def _is_mdhisto(p: Probe) -> bool:
    return p.h5 is not None and ("MDHistoWorkspace" in p.h5["keys"])


def _is_nxspe(p: Probe) -> bool:
    if p.suffix == ".nxspe":
        return True
    return p.h5 is not None and any(
        "NXSPE_info" in keys and "data" in keys for keys in p.h5["groups"].values()
    )


def _is_array(p: Probe) -> bool:
    if p.npz_keys is not None:
        return "signal" in p.npz_keys or "counts" in p.npz_keys
    if p.h5 is None or p.h5["format"] is not None:
        return False
    return "signal" in p.h5["keys"] or "counts" in p.h5["keys"]


def _is_pathsqe(p: Probe) -> bool:
    if p.suffix == ".npy":
        return True
    return p.npz_keys is not None and not ("signal" in p.npz_keys or "counts" in p.npz_keys)


#: The registry, in sniffing order.
FORMATS: dict[str, MeasurementFormat] = {
    f.name: f
    for f in (
        MeasurementFormat(
            "folded",
            "folded",
            "fcinv folded spectrum (fcinv fold / simulate)",
            _is_fcinv("fcinv-folded"),
            _load_folded,
        ),
        MeasurementFormat("volume", "volume", "fcinv Volume4D HDF5", _is_fcinv("fcinv-volume"), _load_volume),
        MeasurementFormat(
            "run",
            "volume",
            "fcinv simulated run (fcinv simulate-experiment)",
            _is_fcinv("fcinv-simulated-run"),
            _load_run,
            frozenset({"orientation"}),
        ),
        MeasurementFormat(
            "mdhisto",
            "volume",
            "Mantid MDHistoWorkspace saved with SaveMD (.nxs)",
            _is_mdhisto,
            _load_mdhisto,
            frozenset({"norm_path", "reciprocal_cell"}),
        ),
        MeasurementFormat(
            "nxspe",
            "volume",
            "NXSPE, one file per sample orientation",
            _is_nxspe,
            _load_nxspe,
            frozenset({"ub", "u", "v", "psi_offset", "q_step", "e_edges"}),
            multi=True,
        ),
        MeasurementFormat(
            "array",
            "volume",
            "plain 4D array (HDF5/NPZ: signal or counts, H, K, L, E)",
            _is_array,
            _load_array,
            frozenset({"group"}),
        ),
        MeasurementFormat(
            "pathsqe",
            "folded",
            "pathSQE folded output (folded_path_plot_<n>.npy / .npz)",
            _is_pathsqe,
            _load_pathsqe,
            frozenset({"transpose"}),
        ),
    )
}


def sniff(path: str | Path) -> str:
    """The registry name of the format of ``path``.

    Raises
    ------
    DataError
        A missing file, a file of no known format, an fcinv file that is not a measurement, or
        a format fcinv does not read (Horace ``.sqw``: the message names the conversion).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input '{path}' does not exist. Check the path.")
    if path.suffix.lower() in UNREADABLE_SUFFIXES:
        raise DataError(f"'{path}' is {UNREADABLE_SUFFIXES[path.suffix.lower()]}.")
    probe = Probe(path)
    fmt = probe.fcinv_format()
    if fmt in NOT_MEASUREMENTS:
        raise DataError(f"'{path}' is {NOT_MEASUREMENTS[fmt]}.")
    for f in FORMATS.values():
        if f.sniff(probe):
            return f.name
    if probe.h5 is None and probe.npz_keys is None and probe.suffix not in {".npy"}:
        what = "neither NumPy nor HDF5/NeXus"
    elif fmt is not None:
        what = f"an fcinv file of format {fmt!r}, which is not a measurement"
    else:
        what = "not recognised (no MDHistoWorkspace, NXSPE entry, signal/counts array or fcinv format)"
    names = ", ".join(f"{f.name} ({f.description})" for f in FORMATS.values())
    raise DataError(f"'{path}' is {what}. Pass one of: {names}; or name the format (--format).")


def open_measurement(path: str | Path | Sequence[str | Path], *, format: str = "auto", **options: Any):
    """Read a measurement file into a FoldedSpectrum or a Volume4D.

    Parameters
    ----------
    path
        One file, or several NXSPE files (one per orientation) of one measurement.
    format
        A name in :data:`FORMATS`, or ``"auto"`` to sniff it from the (first) file.
    **options
        Loader options: ``grid`` (the model's :class:`~fcinv.grid.SpectrumGrid`: needed by
        pathSQE output, gives NXSPE its energy bins), ``lattice`` (a, b, c[, α, β, γ] in Å
        and degrees: NXSPE orientation, MDHisto reciprocal cell), and per format
        ``orientation`` (run), ``norm_path``, ``reciprocal_cell`` (mdhisto), ``ub``, ``u``,
        ``v``, ``psi_offset``, ``q_step``, ``e_edges`` (nxspe), ``group`` (array),
        ``transpose`` (pathsqe). ``None`` values are ignored.

    Returns
    -------
    FoldedSpectrum | Volume4D

    Raises
    ------
    DataError
        Unknown or unreadable files, several files of a single-file format, or an option the
        format does not take.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    if not paths:
        raise DataError("no input file given. Pass a measurement file.")
    for p in paths:
        if not p.is_file():
            raise DataError(f"input '{p}' does not exist. Check the path.")
    name = sniff(paths[0]) if format == "auto" else format
    if name not in FORMATS:
        raise DataError(f"format {name!r} is unknown. Known formats: {', '.join(FORMATS)}.")
    fmt = FORMATS[name]
    if len(paths) > 1 and not fmt.multi:
        raise DataError(
            f"{len(paths)} input files given, but {name} ({fmt.description}) is one file per "
            "measurement; only NXSPE input takes several files (one per orientation)."
        )
    given = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - fmt.options - CONTEXT_OPTIONS)
    if extra:
        raise DataError(
            f"option(s) {extra} do not apply to {name} input ({fmt.description}); "
            f"it takes {sorted(fmt.options) or 'none'}. Drop them."
        )
    log.debug("reading %s as %s", paths[0], name)
    return fmt.load(paths, **given)
