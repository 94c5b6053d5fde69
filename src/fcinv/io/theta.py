"""θ by name from a JSON file: any fcinv result (``FCResult.to_json``, fits, ``fcinv infer``) or by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fcinv.errors import DataError, describe_exception, json_kind

_HINT = 'Pass the JSON written by fcinv infer / fit / fit-dispersion, or {"1NN_xx": -1.4, ...}.'


#: Top-level keys of a hand-written θ file that are not parameters (ignored when not numbers).
_META_KEYS = {"material", "source", "units", "unit", "comment", "note", "method", "command", "names"}


def read_theta_json(path: str | Path, names=None) -> tuple[dict[str, float], dict]:
    """Read θ by name from a JSON file.

    Accepted layouts (first match wins): a ``theta_full`` mapping (fits); a ``theta`` mapping
    (:meth:`fcinv.result.FCResult.to_json`, fits); ``refined`` then ``ml`` mappings (older
    ``fcinv infer --json``); the top-level mapping itself. Values are numbers, or mappings with
    a ``theta`` or ``value`` key.

    Parameters
    ----------
    path
        The JSON file.
    names
        The parameter names the caller knows; when given, a name outside them is an error.

    Returns
    -------
    (theta, document)
        θ by name (eV/Å²) and the whole parsed document.

    Raises
    ------
    DataError
        A missing file, invalid JSON, no numeric value by name, a value that is not a number
        (e.g. ``"abc"``), a non-finite value, or (with ``names``) an unknown name.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"θ file '{p}' does not exist. {_HINT}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"'{p}' is not valid JSON ({describe_exception(exc)}). {_HINT}") from None
    if not isinstance(doc, dict):
        raise DataError(f"'{p}' holds a JSON {json_kind(doc)}, not an object of θ by name. {_HINT}")
    key = next((k for k in ("theta_full", "theta", "refined", "ml") if isinstance(doc.get(k), dict)), None)
    src = doc if key is None else doc[key]
    where = f"'{p}'" if key is None else f"'{p}' [{key}]"
    known = None if names is None else {str(n) for n in names}
    out: dict[str, float] = {}
    for k, v in src.items():
        raw = v
        if isinstance(v, dict):
            v = v.get("theta", v.get("value"))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
            continue
        top_meta = key is None and (k in _META_KEYS or str(k).startswith("_")) and known is None
        if top_meta or (key is None and known is not None and k not in known):
            continue  # a hand-written file's own notes
        if key is None and known is None and not isinstance(raw, (str, bool)) and raw is not None:
            continue  # nested structures at top level (e.g. a result's tables)
        raise DataError(
            f"{where}: '{k}' is {json.dumps(raw)[:40]}, not a number. Give θ in eV/Å² as numbers, "
            'e.g. {"1NN_xx": -1.4}.'
        )
    if not out:
        raise DataError(f"'{p}' has no numeric θ values by parameter name. {_HINT}")
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise DataError(f"'{p}' has non-finite θ for {bad}. Pass finite force constants (eV/Å²).")
    if known is not None:
        unknown = [k for k in out if k not in known]
        if unknown:
            raise DataError(
                f"'{p}' names unknown parameters {unknown}. Use the model's names: "
                f"{', '.join(sorted(known))}."
            )
    return out, doc
