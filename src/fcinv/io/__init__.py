"""fcinv's I/O layer: one atomic writer, one provenance stamp, one measurement-format registry.

- :func:`atomic_path`, :func:`atomic_h5`, :func:`write_text`, :func:`write_json`: every file is
  written beside its target and renamed (``atomic``);
- :class:`Provenance`, :func:`stamp_h5`, :func:`read_stamp`, :func:`command_scope`: version, seed,
  command (built once by the CLI) and time on every file and result (``provenance``);
- :func:`open_measurement`, :func:`sniff`, :data:`FORMATS`: the registry of measurement formats,
  one sniff rule and one loader each (``registry``);
- :func:`read_theta_json`: θ by name from any fcinv result JSON;
- :mod:`fcinv.io.nexus` (imported on use, it needs h5py): the NeXus NXroot → NXentry → NXdata
  default plot every fcinv HDF5 writer adds (``write_nxdata``, ``sparse_4d_nxdata``,
  ``read_nxdata``); the formats are described in ``docs/formats.md``.
"""

from fcinv.io.atomic import atomic_h5, atomic_path, json_dumps, jsonable, write_json, write_text
from fcinv.io.provenance import (
    Provenance,
    command_scope,
    current_command,
    format_command,
    read_meta,
    read_stamp,
    scoped_command,
    stamp_h5,
)
from fcinv.io.registry import FORMATS, MeasurementFormat, open_measurement, sniff
from fcinv.io.theta import read_theta_json

__all__ = [
    "FORMATS",
    "MeasurementFormat",
    "Provenance",
    "atomic_h5",
    "atomic_path",
    "command_scope",
    "current_command",
    "format_command",
    "json_dumps",
    "jsonable",
    "open_measurement",
    "read_meta",
    "read_stamp",
    "read_theta_json",
    "scoped_command",
    "sniff",
    "stamp_h5",
    "write_json",
    "write_text",
]
