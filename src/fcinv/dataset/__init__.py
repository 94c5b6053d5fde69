"""Training sets of (θ, I(q, E)) pairs: the HDF5 file format and its reader/writer.

The generator (``fcinv.dataset.generate``: training domain, sampling, stability
filter) is added by the lead; its public names are exported here next to io's.
"""

from __future__ import annotations

from fcinv.dataset.generate import DEFAULT_WIDEN, Domain, DomainError, generate, widened_domain  # noqa: E402
from fcinv.dataset.io import (
    FORMAT,
    FORMAT_VERSION,
    REQUIRED_META,
    Dataset,
    DatasetWriter,
    LazySpectra,
    make_split,
    read_dataset,
    write_dataset,
)

__all__ = [
    "DEFAULT_WIDEN",
    "Domain",
    "DomainError",
    "generate",
    "widened_domain",
    "FORMAT",
    "FORMAT_VERSION",
    "REQUIRED_META",
    "Dataset",
    "DatasetWriter",
    "LazySpectra",
    "make_split",
    "read_dataset",
    "write_dataset",
]
