"""JSON helpers shared by the file writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """Convert numpy arrays/scalars, tuples and paths inside ``obj`` to plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, doc: Any) -> Path:
    """Write ``doc`` as indented UTF-8 JSON atomically (temporary file in the same folder, then rename)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(doc), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
