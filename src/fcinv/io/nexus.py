"""NeXus annotation of fcinv's HDF5 files, so that NeXpy, Mantid and h5web plot them.

Every HDF5 file fcinv writes keeps its own layout (the readers use it, old files without
NeXus attributes still load) and gains, on top, the NeXus default-plot chain::

    /                  @NX_class = "NXroot",  @default = "entry"
    /entry             @NX_class = "NXentry", @default = "data"
    /entry/data        @NX_class = "NXdata",  @signal, @axes, @<axis>_indices
    /entry/data/<name> hard links to the file's own datasets (no copy), or small
                       axis datasets made here; every field with @units

``@units`` is the NeXus attribute (fcinv's own datasets keep ``@unit``): meV for energies,
``r.l.u.`` for reciprocal-lattice coordinates (conventional cell), ``path coordinate`` for
the q-bin index along the model's high-symmetry path. Uncertainties are linked as
``<signal>_errors`` (the NeXus convention for standard deviations).

:func:`write_nxdata` is the one helper every writer calls; :func:`sparse_4d_nxdata` adds the
NXdata of a sparse 4D S(Q, E) (dense when small, NeXus "scattered data" otherwise);
:func:`read_nxdata` returns what a NeXus reader sees (for tests and for users).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from fcinv.errors import DataError

__all__ = [
    "DENSE_NXDATA_LIMIT",
    "NXField",
    "read_nxdata",
    "sparse_4d_nxdata",
    "write_nxdata",
]

#: Sparse 4D volumes with at most this many bins get a dense NXdata (NaN where not measured);
#: larger ones get NeXus scattered data (one coordinate per measured bin).
DENSE_NXDATA_LIMIT = 2_000_000


@dataclass(frozen=True)
class NXField:
    """One field of an NXdata group: a signal, an axis or an auxiliary coordinate.

    Attributes
    ----------
    name
        Name inside the NXdata group.
    data
        An existing :class:`h5py.Dataset` of the same file (hard-linked, not copied) or an
        array (written into the group).
    units
        NeXus ``units`` attribute, e.g. ``"meV"``, ``"r.l.u."``, ``"path coordinate"``.
    dims
        For axes and coordinates: the signal dimension(s) this field spans (``<name>_indices``).
    long_name
        Optional axis label for plots.
    """

    name: str
    data: Any
    units: str
    dims: tuple[int, ...] = ()
    long_name: str | None = None


def _str_array(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype("utf-8"))


def _place(group: h5py.Group, fld: NXField, compress: bool) -> h5py.Dataset:
    if isinstance(fld.data, h5py.Dataset):
        group[fld.name] = fld.data  # hard link: the same data under a NeXus name
        ds = group[fld.name]
    else:
        arr = np.asarray(fld.data)
        kw: dict[str, Any] = {}
        if compress and arr.size > 1024:
            kw = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
        ds = group.create_dataset(fld.name, data=arr, **kw)
    ds.attrs["units"] = fld.units
    if fld.long_name:
        ds.attrs["long_name"] = fld.long_name
    return ds


def write_nxdata(
    f: h5py.File,
    signal: NXField,
    axes: Sequence[NXField | None],
    *,
    errors: Any = None,
    coordinates: Sequence[NXField] = (),
    entry: str = "entry",
    name: str = "data",
    title: str | None = None,
    compress: bool = True,
) -> h5py.Group:
    """Make ``f`` a NeXus file whose default plot is ``signal`` against ``axes``.

    Parameters
    ----------
    f
        An HDF5 file open for writing.
    signal
        The plotted quantity (its ``dims`` are ignored).
    axes
        One entry per signal dimension: the axis of that dimension, or None where the
        dimension has none (written as ``"."``). An axis may hold bin centres (length n)
        or bin edges (length n + 1).
    errors
        Standard deviations of the signal (dataset or array of the signal's shape), linked
        as ``<signal>_errors``; None when unknown.
    coordinates
        Further coordinates with their ``dims`` (e.g. h, k, l along the q-path).
    entry, name
        Names of the NXentry and NXdata groups.
    title
        The entry's title.
    compress
        gzip the arrays written here (links are never copied).

    Returns
    -------
    h5py.Group
        The NXdata group.

    Raises
    ------
    DataError
        An axis whose length matches neither the centres nor the edges of its dimension.
    """
    shape = tuple(signal.data.shape)
    if len(axes) != len(shape):
        raise DataError(
            f"NXdata signal '{signal.name}' has {len(shape)} dimensions but {len(axes)} axes were given. "
            "Pass one axis (or None) per dimension."
        )
    for dim, ax in enumerate(axes):
        if ax is not None and len(ax.data) not in (shape[dim], shape[dim] + 1):
            raise DataError(
                f"NXdata axis '{ax.name}' has {len(ax.data)} values for a dimension of {shape[dim]}. "
                "Pass bin centres (n) or bin edges (n + 1)."
            )
    f.attrs["NX_class"] = "NXroot"
    f.attrs["default"] = entry
    e = f.require_group(entry)
    e.attrs["NX_class"] = "NXentry"
    e.attrs["default"] = name
    if title is not None:
        if "title" in e:
            del e["title"]
        e.create_dataset("title", data=title, dtype=h5py.string_dtype("utf-8"))
    if name in e:
        del e[name]
    g = e.create_group(name)
    g.attrs["NX_class"] = "NXdata"
    _place(g, signal, compress)
    g.attrs["signal"] = signal.name
    g.attrs["axes"] = _str_array([ax.name if ax is not None else "." for ax in axes])
    for dim, ax in enumerate(axes):
        if ax is not None:
            _place(g, ax, compress)
            g.attrs[f"{ax.name}_indices"] = np.int64(dim)
    for c in coordinates:
        _place(g, c, compress)
        g.attrs[f"{c.name}_indices"] = (
            np.int64(c.dims[0]) if len(c.dims) == 1 else np.asarray(c.dims, np.int64)
        )
    if errors is not None:
        _place(g, NXField(f"{signal.name}_errors", errors, signal.units), compress)
    return g


def sparse_4d_nxdata(
    f: h5py.File,
    edges: Sequence[np.ndarray],
    index: np.ndarray,
    signal: Any,
    error: Any = None,
    *,
    axis_names: Sequence[str] = ("H", "K", "L", "E"),
    axis_units: Sequence[str] = ("r.l.u.", "r.l.u.", "r.l.u.", "meV"),
    signal_name: str = "intensity",
    signal_units: str = "arb. units",
    title: str | None = None,
    dense_limit: int | None = None,
) -> h5py.Group:
    """The NXdata of a sparse 4D histogram (values on the bins ``index`` of ``edges``).

    Parameters
    ----------
    f
        An HDF5 file open for writing.
    edges
        Four 1-D bin-edge arrays (H, K, L in r.l.u., E in meV).
    index
        Shape (n,) int64: flat C-order indices of the measured bins.
    signal, error
        Shape (n,) values and standard errors on those bins (datasets of ``f`` or arrays).
    axis_names, axis_units, signal_name, signal_units, title
        Names and units written to the NXdata group.
    dense_limit
        Volumes with at most this many bins (None: :data:`DENSE_NXDATA_LIMIT`) are written
        dense (NaN where not measured, axes as bin edges); larger ones as NeXus scattered
        data: 1-D signal with one H, K, L, E bin-centre coordinate per measured bin (``<axis>_indices = 0``).

    Returns
    -------
    h5py.Group
        The NXdata group.
    """
    shape = tuple(len(e) - 1 for e in edges)
    idx = np.asarray(index[()] if isinstance(index, h5py.Dataset) else index, dtype=np.int64)
    total = int(np.prod(shape, dtype=np.int64))
    if total <= (DENSE_NXDATA_LIMIT if dense_limit is None else dense_limit):
        vals = np.asarray(signal[()] if isinstance(signal, h5py.Dataset) else signal, float)
        dense = np.full(total, np.nan, dtype=np.float32)
        dense[idx] = vals
        err = None
        if error is not None:
            evals = np.asarray(error[()] if isinstance(error, h5py.Dataset) else error, float)
            err = np.full(total, np.nan, dtype=np.float32)
            err[idx] = evals
            err = err.reshape(shape)
        axes = [
            NXField(n, np.asarray(e, float), u, long_name=f"{n} ({u})")
            for n, u, e in zip(axis_names, axis_units, edges)
        ]
        return write_nxdata(
            f,
            NXField(signal_name, dense.reshape(shape), signal_units),
            axes,
            errors=err,
            title=title,
        )
    coords = np.unravel_index(idx, shape)
    centres = [
        NXField(n, (0.5 * (e[:-1] + e[1:]))[c].astype(np.float32), u, dims=(0,), long_name=f"{n} ({u})")
        for n, u, e, c in zip(axis_names, axis_units, edges, coords)
    ]
    g = write_nxdata(
        f,
        NXField(signal_name, signal, signal_units),
        [centres[0]],
        errors=error,
        coordinates=centres[1:],
        title=title,
    )
    # scattered data: every coordinate spans the one dimension of the signal
    g.attrs["axes"] = _str_array(list(axis_names))
    return g


def read_nxdata(path_or_file: Any) -> dict[str, Any]:
    """Follow ``@default`` from the root to the NXdata group and describe what it plots.

    Parameters
    ----------
    path_or_file
        A path or an open :class:`h5py.File`.

    Returns
    -------
    dict
        ``path`` (of the NXdata group), ``signal`` (name), ``axes`` (list of names, ``"."`` for
        none), ``indices`` ({axis: dims}), ``units`` ({field: units}), ``shape`` (of the signal).

    Raises
    ------
    DataError
        The file has no NeXus default plot (an older fcinv file, or not written by fcinv).
    """
    own = not isinstance(path_or_file, h5py.File)
    f = h5py.File(path_or_file, "r") if own else path_or_file
    try:

        def s(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)

        if s(f.attrs.get("NX_class", "")) != "NXroot" or "default" not in f.attrs:
            raise DataError(
                f"'{f.filename}' has no NeXus default plot (no NXroot @default). It was written by an "
                "older fcinv or another program; rewrite it with this fcinv to view it in NeXpy."
            )
        e = f[s(f.attrs["default"])]
        g = e[s(e.attrs["default"])]
        if s(g.attrs.get("NX_class", "")) != "NXdata":
            raise DataError(f"'{f.filename}': {g.name} is not an NXdata group. Rewrite the file.")
        axes = [s(a) for a in np.atleast_1d(g.attrs["axes"])]
        indices = {
            k[: -len("_indices")]: np.atleast_1d(v).tolist()
            for k, v in g.attrs.items()
            if k.endswith("_indices")
        }
        units = {k: s(ds.attrs.get("units", "")) for k, ds in g.items()}
        sig = s(g.attrs["signal"])
        return {
            "path": g.name,
            "signal": sig,
            "axes": axes,
            "indices": indices,
            "units": units,
            "shape": tuple(g[sig].shape),
        }
    finally:
        if own:
            f.close()
