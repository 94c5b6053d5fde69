"""Checkpoint directories: weights, a JSON config and (while training) the trainer state.

A checkpoint is a directory::

    weights.pt         torch.save of the model's state dict (load with weights_only=True)
    config.json        format, kind, model_config (the frozen dataclass), grid (JSON),
                       names, input_scaling, target_scaling, dataset {path, content_hash},
                       fcinv_version, seed, command, created, training summary,
                       weights_sha256 (ties config.json to weights.pt)
    trainer_state.pt   optimizer, scheduler, epoch, history, best state, RNG states (resume)

Every file is written atomically (temporary file in the same folder, then
``os.replace``); ``weights.pt`` is written before ``config.json`` and the hash in
the latter detects a pair left inconsistent by a crash. Loading validates all of
it and raises :class:`~fcinv.errors.CheckpointError` with one line, or
:class:`~fcinv.errors.GridError` for a checkpoint made for another grid.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import os
import pickle
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fcinv.errors import CheckpointError, GridError, describe_exception
from fcinv.grid import SpectrumGrid
from fcinv.models.scaling import INPUT_SCALING, Standardizer

FORMAT = "fcinv-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "weights.pt"
CONFIG = "config.json"
TRAINER_STATE = "trainer_state.pt"


# -------------------------------------------------------------------- file helpers
def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save`` atomically; returns the sha256 of the written bytes."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _dumps(obj: Any, indent: int = 0) -> str:
    """JSON with one key per line but lists of scalars (and of short scalar lists) on one line."""

    def flat(v: Any) -> bool:
        return not isinstance(v, (dict, list)) or (
            isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v)
        )

    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dumps(v, indent + 1)}"
            for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and not all(flat(x) for x in obj):
        rows = [
            json.dumps(v, ensure_ascii=False)
            if isinstance(v, dict) and all(flat(x) for x in v.values())
            else _dumps(v, indent + 1)
            for v in obj
        ]
        return "[\n" + ",\n".join(inner + r for r in rows) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON (UTF-8; one key per line, numeric lists inline) atomically."""
    atomic_write_bytes(path, (_dumps(obj) + "\n").encode("utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def torch_load(path: str | os.PathLike, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with a one-line :class:`CheckpointError` on failure."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"{what} {path} is missing. Retrain, or point to a complete checkpoint directory."
        ) from None
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        OSError,
        ValueError,
        AttributeError,
        TypeError,
    ) as exc:
        first = describe_exception(exc)
        raise CheckpointError(
            f"{what} {path} is corrupt or not a torch file ({first}). Retrain or restore the checkpoint."
        ) from None


# ------------------------------------------------------------------ config classes
def config_to_dict(cfg: Any) -> dict:
    """A frozen config dataclass → JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(cls: type, d: dict, where: str) -> Any:
    """Rebuild a frozen config dataclass from :func:`config_to_dict` output."""
    if not isinstance(d, dict):
        raise CheckpointError(
            f"{where}: model_config is {type(d).__name__}, not an object. The checkpoint is corrupt; retrain."
        )
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise CheckpointError(
            f"{where}: model_config has unknown keys {unknown} for {cls.__name__}. It was written by another fcinv version; retrain."
        )
    hints = typing.get_type_hints(cls)
    kw = {}
    for k, v in d.items():
        if isinstance(v, list) and "tuple" in str(hints.get(k, "")):
            v = tuple(v)
        kw[k] = v
    try:
        return cls(**kw)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{where}: model_config is invalid for {cls.__name__} ({exc}). The checkpoint is corrupt; retrain."
        ) from None


def check_grid(model_grid: SpectrumGrid, grid: SpectrumGrid, what: str) -> None:
    """Raise a one-line :class:`GridError` unless a model's grid equals ``grid`` (of the data)."""
    if model_grid.same_as(grid):
        return
    if model_grid.shape != grid.shape:
        detail = f"model grid {model_grid.shape} vs data grid {grid.shape}"
    elif not np.allclose(model_grid.energy_edges, grid.energy_edges, atol=1e-6):
        detail = (
            f"model energies {model_grid.energy_edges[0]:g}..{model_grid.energy_edges[-1]:g} meV vs data "
            f"{grid.energy_edges[0]:g}..{grid.energy_edges[-1]:g} meV"
        )
    else:
        i = int(np.argmax(np.abs(model_grid.q_rlu - grid.q_rlu).max(axis=1)))
        detail = f"q-bin {i} is {np.round(model_grid.q_rlu[i], 4).tolist()} in the model, {np.round(grid.q_rlu[i], 4).tolist()} in the data"
    raise GridError(
        f"{what} was trained on another grid ({detail}). Use a model trained on this grid, or rebin the data onto the model's grid."
    )


# --------------------------------------------------------------------------- meta
@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about its model.

    Attributes
    ----------
    path
        The checkpoint directory.
    kind
        ``"vae"``, ``"regressor"`` or ``"resnet"``.
    grid
        The grid of the training spectra.
    names
        The k parameter names (regressor/ResNet outputs, in order).
    target_scaling
        Standardisation of θ (None for the VAE).
    raw
        The whole ``config.json``.
    """

    path: Path
    kind: str
    grid: SpectrumGrid
    names: tuple[str, ...]
    target_scaling: Standardizer | None
    raw: dict

    @property
    def weights_sha256(self) -> str:
        return str(self.raw.get("weights_sha256", ""))


def write_checkpoint(
    path: str | os.PathLike,
    kind: str,
    model_config: Any,
    state_dict: dict,
    *,
    grid: SpectrumGrid,
    names: tuple[str, ...] | list[str],
    target_scaling: Standardizer | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``weights.pt`` then ``config.json`` (atomically) into the directory ``path``.

    Parameters
    ----------
    extra
        More JSON-able entries for config.json (dataset, seed, command, training, ...).
    """
    from fcinv import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    digest = atomic_torch_save({k: v.detach().cpu() for k, v in state_dict.items()}, path / WEIGHTS)
    cfg = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_config": config_to_dict(model_config),
        "grid": grid.to_dict(),
        "grid_fingerprint": grid.fingerprint(),
        "names": list(names),
        "input_scaling": dict(INPUT_SCALING),
        "target_scaling": target_scaling.to_dict() if target_scaling is not None else None,
        "fcinv_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    for k, v in (extra or {}).items():
        cfg.setdefault(k, v)
    cfg["weights_sha256"] = digest
    atomic_write_json(cfg, path / CONFIG)
    return path


def read_checkpoint_config(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> dict:
    """Read and validate ``config.json`` of a checkpoint directory (weights not loaded)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint directory {path} does not exist. Train a model (fcinv train) or pass the right directory."
        )
    cfile = path / CONFIG
    if not cfile.exists():
        if (path / "trainer_state.pt").exists():
            raise CheckpointError(
                f"checkpoint {path} lacks {CONFIG}: its training was interrupted while saving. Rerun the same "
                "`fcinv train` command with --resume, which rewrites the checkpoint from its trainer state."
            )
        raise CheckpointError(
            f"checkpoint {path} lacks {CONFIG}; it is not an fcinv checkpoint or its training never saved. Retrain."
        )
    try:
        cfg = json.loads(cfile.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint {path}: {CONFIG} is corrupt ({describe_exception(exc)}). Retrain or restore the checkpoint."
        ) from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path}: {CONFIG} is not an fcinv checkpoint config. Point to a directory written by fcinv train."
        )
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {cfg.get('format_version')}; this fcinv reads <= {FORMAT_VERSION}. Upgrade fcinv."
        )
    for key in ("kind", "model_config", "grid", "names", "weights_sha256"):
        if key not in cfg:
            raise CheckpointError(
                f"checkpoint {path}: {CONFIG} lacks '{key}'. The checkpoint is corrupt; retrain."
            )
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and cfg["kind"] not in kinds:
        raise CheckpointError(
            f"checkpoint {path} holds a {cfg['kind']} model, not a {' or '.join(kinds)}. Pass the {kinds[0]} checkpoint directory."
        )
    if cfg.get("input_scaling") not in (None, INPUT_SCALING):
        raise CheckpointError(
            f"checkpoint {path} expects input scaling {cfg.get('input_scaling')}; this fcinv applies {INPUT_SCALING}. Retrain the model."
        )
    return cfg


def load_checkpoint(
    path: str | os.PathLike,
    kind: str | tuple[str, ...] | None = None,
    expect_grid: SpectrumGrid | None = None,
    expect_names: tuple[str, ...] | list[str] | None = None,
    map_location: Any = "cpu",
) -> tuple[CheckpointMeta, dict]:
    """Validate a checkpoint directory and load its state dict.

    Returns
    -------
    (CheckpointMeta, dict)
        The metadata and the state dict (tensors on ``map_location``).

    Raises
    ------
    CheckpointError
        Missing/corrupt files, another kind, weights that do not match the config, other names.
    GridError
        ``expect_grid`` differs from the checkpoint's grid.
    """
    path = Path(path)
    cfg = read_checkpoint_config(path, kind)
    wfile = path / WEIGHTS
    resume = (
        " or rerun the same `fcinv train` command with --resume (its trainer state is there)"
        if (path / TRAINER_STATE).exists()
        else ""
    )
    if not wfile.exists():
        raise CheckpointError(
            f"checkpoint {path} lacks {WEIGHTS}. Retrain{resume}, or restore the complete directory."
        )
    if sha256_file(wfile) != cfg["weights_sha256"]:
        raise CheckpointError(
            f"checkpoint {path}: {WEIGHTS} does not match {CONFIG} (hash differs; interrupted write or mixed "
            f"files). Retrain{resume}, or restore the checkpoint."
        )
    state = torch_load(wfile, "checkpoint weights", map_location=map_location)
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {path}: {WEIGHTS} holds a {type(state).__name__}, not a state dict. Retrain."
        )
    try:
        grid = SpectrumGrid.from_dict(cfg["grid"])
    except Exception as exc:  # GridError from a malformed description
        raise CheckpointError(f"checkpoint {path}: the stored grid is malformed ({exc}). Retrain.") from None
    if expect_grid is not None:
        check_grid(grid, expect_grid, f"checkpoint {path}")
    names = tuple(str(x) for x in cfg["names"])
    if expect_names is not None and tuple(expect_names) != names:
        raise CheckpointError(
            f"checkpoint {path} predicts {list(names)}, not {list(expect_names)}. Use a model trained on these parameters."
        )
    ts = cfg.get("target_scaling")
    target = Standardizer.from_dict(ts) if ts else None
    if target is not None and target.k != len(names):
        raise CheckpointError(
            f"checkpoint {path}: target scaling has {target.k} entries for {len(names)} names. The checkpoint is corrupt; retrain."
        )
    return CheckpointMeta(
        path=path, kind=str(cfg["kind"]), grid=grid, names=names, target_scaling=target, raw=cfg
    ), state


class CheckpointMixin:
    """``save_checkpoint`` / ``from_checkpoint`` for an ``nn.Module`` with a frozen ``config``.

    Subclasses set ``kind`` and ``config_cls``. ``from_checkpoint`` attaches the
    :class:`CheckpointMeta` as ``model.checkpoint``.
    """

    kind: str = ""
    config_cls: type = object
    checkpoint: CheckpointMeta | None = None

    def save_checkpoint(
        self,
        path: str | os.PathLike,
        *,
        grid: SpectrumGrid,
        names: tuple[str, ...] | list[str],
        target_scaling: Standardizer | None = None,
        extra: dict | None = None,
        state_dict: dict | None = None,
    ) -> Path:
        """Write this model (or ``state_dict``, e.g. the best one) as a checkpoint directory."""
        return write_checkpoint(
            path,
            self.kind,
            self.config,  # type: ignore[attr-defined]
            state_dict if state_dict is not None else self.state_dict(),  # type: ignore[attr-defined]
            grid=grid,
            names=names,
            target_scaling=target_scaling,
            extra=extra,
        )

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        expect_grid: SpectrumGrid | None = None,
        expect_names: tuple[str, ...] | list[str] | None = None,
        map_location: Any = "cpu",
    ):
        """Rebuild the model from a checkpoint directory, in eval mode.

        Raises
        ------
        CheckpointError
            Corrupt or mismatched checkpoint (one line).
        GridError
            The checkpoint was made for another grid than ``expect_grid``.
        """
        meta, state = load_checkpoint(
            path, cls.kind, expect_grid=expect_grid, expect_names=expect_names, map_location=map_location
        )
        config = config_from_dict(cls.config_cls, meta.raw["model_config"], f"checkpoint {path}")
        model = cls(config)  # type: ignore[call-arg]
        try:
            model.load_state_dict(state, strict=True)  # type: ignore[attr-defined]
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise CheckpointError(
                f"checkpoint {path}: weights do not fit the {cls.__name__} architecture in its config ({first}). Retrain."
            ) from None
        model.eval()  # type: ignore[attr-defined]
        model.checkpoint = meta
        return model.to(map_location) if not isinstance(map_location, dict) else model  # type: ignore[attr-defined]
