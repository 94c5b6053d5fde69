"""``--resume`` checks: a partial dataset or an interrupted training run continues only with the options
that started it, and every option that differs is named (issue 16).

- :func:`check_dataset_output`: ``fcinv dataset -o``: a finished file needs ``--force``; a partial one
  ``--resume`` (with the same options, :func:`check_dataset_resume`) or ``--overwrite``.
- :func:`check_train_resume`: ``fcinv train --resume`` against the command that started the run in
  ``--out`` (:func:`train_resume_command`).

The dispatcher runs them through :func:`fcinv.cli._guards.precheck`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fcinv.cli._outputs import OutputError, _quiet_parse, check_writable, remove_stale_temporaries
from fcinv.errors import describe_exception


# ------------------------------------------------------------------------------------------- dataset
def check_dataset_output(args, argv: list[str], *, force: bool) -> None:
    """``fcinv dataset -o``: a finished file needs --force; a partial --resume (with the same options)
    or --overwrite."""
    out = Path(args.output)
    partial = out.with_name(out.name + ".partial")
    if out.is_dir():
        raise OutputError(
            f"-o {out} is a folder; expected a file name. Pass a file path such as {out / 'ge.h5'}."
        )
    if out.exists() and not force:
        raise OutputError(
            f"-o {out} exists (a finished dataset). Pass --force to overwrite it or choose another path."
        )
    if out.exists() and force and not args.resume:
        pass  # replaced when the new one is complete
    check_writable(out)
    remove_stale_temporaries(out.parent if str(out.parent) else Path("."))
    if args.resume and args.overwrite:
        raise OutputError(
            "--resume and --overwrite contradict each other. Pass --resume to continue, --overwrite to "
            "restart."
        )
    if getattr(args, "scheduler", None):
        # the sharded path keeps its state in <output>.shards/ and checks resume, overwrite and the plan
        # itself (fcinv.dataset.shards.generate_sharded)
        return
    if partial.exists() and not (args.resume or args.overwrite):
        raise OutputError(
            f"{partial} exists (an interrupted run). Pass --resume to continue it or --overwrite to start "
            "again."
        )
    if args.resume and not partial.exists():
        raise OutputError(
            f"--resume: there is no interrupted run {partial} to continue. Run without --resume."
        )
    if args.resume:
        check_dataset_resume(partial, argv)


#: Options that may differ between a run and its resumption.
_RESUME_FREE = {"resume", "overwrite", "no_progress", "force", "output", "quiet", "verbose"}


def check_dataset_resume(partial: Path, argv: list[str]) -> None:
    """Refuse ``fcinv dataset --resume`` whose options differ from those that started ``partial``.

    The partial's command line (``meta/command``) is parsed with the same parser; every option that
    differs (besides --resume, --overwrite, --no-progress, --force, -o) is named in the message.
    """
    import shlex

    import h5py

    from fcinv.cli import dataset as cli_dataset

    try:
        with h5py.File(partial, "r") as f:
            meta = _read_meta(f)
    except OSError as exc:
        raise OutputError(
            f"{partial} cannot be read ({describe_exception(exc)}). Delete it or pass --overwrite to start "
            "again."
        ) from None
    command = meta.get("command") if isinstance(meta, dict) else None
    if not isinstance(command, str):
        return
    words = shlex.split(command)
    if words[:2] == ["fcinv", "dataset"]:
        words = words[2:]
    then = _quiet_parse(cli_dataset.get_parser(), [w for w in words if w != "--force"])
    now = _quiet_parse(cli_dataset.get_parser(), [w for w in argv if w != "--force"])
    if then is None or now is None:
        return
    diffs = [
        f"--{k.replace('_', '-')} {_fmt(getattr(now, k))} (the partial run used {_fmt(getattr(then, k))})"
        for k in sorted(vars(now))
        if k not in _RESUME_FREE and _fmt(getattr(now, k)) != _fmt(getattr(then, k, None))
    ]
    if diffs:
        raise OutputError(
            f"--resume with other options than {partial.name} was started with: {'; '.join(diffs)}. "
            "Resume with the original options, or pass --overwrite to start again."
        )


# --------------------------------------------------------------------------------------------- train
#: ``fcinv train`` options that may differ between a run and its resumption: they do not change what
#: is trained (--out is the run itself, which may have moved; the device and CPU threads only change
#: where it runs; bars and logging only what is printed; --epochs only how long it goes on: a larger
#: one extends a finished or early-stopped run, see ``Trainer._extend``).
_TRAIN_RESUME_FREE = {"resume", "quiet", "verbose", "force", "out", "device", "threads", "epochs"}
#: ``fcinv train`` options that name files: compared as resolved paths.
_TRAIN_PATHS = {"data", "vae", "pretrained"}


def train_resume_command(out: Path) -> str | None:
    """The command line that started the training run in ``out``, or None when none is recorded.

    The trainer state (``trainer_state.pt``) keeps the first command of the run; older states have
    none, and then the checkpoint's ``config.json`` (the command of the run that last saved it) is used.
    """
    import json

    from fcinv.models.checkpoint import CONFIG, TRAINER_STATE, torch_load

    state = out / TRAINER_STATE
    if state.is_file():
        st = torch_load(state, "trainer state")
        if isinstance(st, dict) and isinstance(st.get("command"), str) and st["command"]:
            return st["command"]
    cfg = out / CONFIG
    if cfg.is_file():
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(cfg.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("command"), str) and doc["command"]:
                return doc["command"]
    return None


def _same_option(key: str, now, then) -> bool:
    if key in _TRAIN_PATHS and isinstance(now, str) and isinstance(then, str):
        return os.path.realpath(now) == os.path.realpath(then)
    return _fmt(now) == _fmt(then)


def check_train_resume(args, argv: list[str]) -> None:
    """Refuse ``fcinv train --resume`` whose options differ from those that started the run in --out.

    The run's command line (:func:`train_resume_command`) is parsed with the same parser; every option
    that differs (besides --resume, --out, --quiet, --device, --threads, --epochs) is named in the message, as
    ``fcinv dataset --resume`` does.

    Raises
    ------
    OutputError
        With each differing option, its value now and the run's.
    """
    import shlex

    from fcinv.cli import train as cli_train

    if not getattr(args, "resume", False):
        return
    out = Path(args.out)
    command = train_resume_command(out)
    if command is None:
        return
    words = shlex.split(command)
    if words[:2] == ["fcinv", "train"]:
        words = words[2:]
    then = _quiet_parse(cli_train.get_parser(), words)
    now = _quiet_parse(cli_train.get_parser(), argv)
    if then is None or now is None:
        return
    keys = sorted(set(vars(now)) | set(vars(then)))
    diffs = [
        f"{_flag(k)} {_fmt(getattr(now, k, None))} (the run used {_fmt(getattr(then, k, None))})"
        for k in keys
        if k not in _TRAIN_RESUME_FREE and not _same_option(k, getattr(now, k, None), getattr(then, k, None))
    ]
    if diffs:
        raise OutputError(
            f"--resume with other options than the run in {out} was started with: {'; '.join(diffs)}. "
            "Resume with the original options, or train into a new --out."
        )


def _flag(dest: str) -> str:
    return "the model" if dest == "model" else f"--{dest.replace('_', '-')}"


def _fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return " ".join(_fmt(x) for x in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_meta(f) -> dict:
    import json

    for key in ("meta", "metadata"):
        if key in f.attrs:
            raw = f.attrs[key]
            raw = raw.decode() if isinstance(raw, bytes) else raw
            with contextlib.suppress(ValueError, TypeError):
                return json.loads(raw)
    if "command" in f.attrs:
        c = f.attrs["command"]
        return {"command": c.decode() if isinstance(c, bytes) else str(c)}
    return {}
