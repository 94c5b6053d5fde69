"""θ by name from a JSON file: any fcinv result (``FCResult.to_json``, fits, ``fcinv infer``) or by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fcinv.errors import DataError

_HINT = 'Pass the JSON written by fcinv infer / fit / fit-dispersion, or {"1NN_xx": -1.4, ...}.'


def read_theta_json(path: str | Path) -> tuple[dict[str, float], dict]:
    """Read θ by name from a JSON file.

    Accepted layouts (first match wins): a ``theta_full`` mapping (fits); a ``theta`` mapping
    (:meth:`fcinv.result.FCResult.to_json`, fits); ``refined`` then ``ml`` mappings (older
    ``fcinv infer --json``); the top-level mapping itself. Values are numbers, or mappings with
    a ``theta`` or ``value`` key.

    Returns
    -------
    (theta, document)
        θ by name (eV/Å²) and the whole parsed document.

    Raises
    ------
    DataError
        A missing file, invalid JSON, no numeric value by name, or a non-finite value.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"θ file '{p}' does not exist. {_HINT}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"'{p}' is not valid JSON ({exc}). {_HINT}") from None
    if not isinstance(doc, dict):
        raise DataError(f"'{p}' holds a JSON {type(doc).__name__}, not an object of θ by name. {_HINT}")
    src = next(
        (doc[k] for k in ("theta_full", "theta", "refined", "ml") if isinstance(doc.get(k), dict)), doc
    )
    out: dict[str, float] = {}
    for k, v in src.items():
        if isinstance(v, dict):
            v = v.get("theta", v.get("value"))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
    if not out:
        raise DataError(f"'{p}' has no numeric θ values by parameter name. {_HINT}")
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise DataError(f"'{p}' has non-finite θ for {bad}. Pass finite force constants (eV/Å²).")
    return out, doc
