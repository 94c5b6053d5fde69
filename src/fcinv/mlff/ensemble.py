"""The ensemble of universal machine-learned force fields (uMLFFs) and their ASE calculators.

The ensemble is every universal force field whose weights ship inside its PyPI package
(``pip install '.[mlff]'`` in the source checkout):

==================  =========  ==========================================================
member              package    weights (inside site-packages)
==================  =========  ==========================================================
chgnet-0.3.0        chgnet     ``chgnet/pretrained/0.3.0/*.pth.tar``
chgnet-0.2.0        chgnet     ``chgnet/pretrained/0.2.0/*.pth.tar``
chgnet-r2scan       chgnet     ``chgnet/pretrained/r2scan/*.pth.tar``
7net-0              sevenn     ``sevenn/pretrained_potentials/SevenNet_0__11Jul2024``
7net-0_22may2024    sevenn     ``sevenn/pretrained_potentials/SevenNet_0__22May2024``
7net-l3i5           sevenn     ``sevenn/pretrained_potentials/SevenNet_l3i5``
7net-mf-0-pbe       sevenn     ``sevenn/pretrained_potentials/SevenNet_MF_0``, modal ``PBE``
7net-mf-0-r2scan    sevenn     ``sevenn/pretrained_potentials/SevenNet_MF_0``, modal ``R2SCAN``
==================  =========  ==========================================================

Nothing is downloaded: each weight file is located on disk and checked (it exists and is
not empty) before the model is built, and SevenNet is handed the file path rather than a
model name, so its own download fallback is never reached.

Other families whose weights do not ship (MACE, M3GNet/MatGL, MatterSim) and any other
CHGNet or SevenNet checkpoint join the ensemble only as a local weight file given by the
user, written ``family:PATH`` (SevenNet multi-fidelity heads as ``sevennet:PATH@MODAL``):

- ``mace:/path/to/model.model`` → ``mace.calculators.MACECalculator(model_paths=PATH, default_dtype="float64")``
- ``m3gnet:/path/to/model_dir`` → ``matgl.load_model(PATH)`` wrapped in ``matgl.ext.ase.PESCalculator``
- ``mattersim:/path/to/model.pth`` → ``mattersim.forcefield.MatterSimCalculator(load_path=PATH)``
- ``chgnet:/path/to/file.pth.tar`` → ``CHGNet.from_file(PATH)``
- ``sevennet:/path/to/checkpoint.pth[@MODAL]`` → ``SevenNetCalculator(PATH, modal=MODAL)``

Those packages are not installed by the ``[mlff]`` extra; install the one you need.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fcinv.errors import FcinvError, MissingDependencyError, install_command, require

log = logging.getLogger(__name__)

Family = Literal["chgnet", "sevennet", "mace", "m3gnet", "mattersim"]

#: Distribution (pip) name of each family's package.
FAMILY_PACKAGES: dict[str, str] = {
    "chgnet": "chgnet",
    "sevennet": "sevenn",
    "mace": "mace-torch",
    "m3gnet": "matgl",
    "mattersim": "mattersim",
}


class MemberError(FcinvError):
    """An ensemble member is unknown, or its weights are missing."""


@dataclass(frozen=True)
class Member:
    """One force field of the ensemble.

    Parameters
    ----------
    name
        Unique member name, e.g. ``"7net-mf-0-pbe"``.
    family
        Model family (selects the calculator factory).
    model
        The shipped model name within the family (``"0.3.0"``, ``"SEVENNET_MF_0"``), or
        the path of a user-supplied weight file.
    modal
        Head of a multi-fidelity SevenNet model (``"PBE"``, ``"R2SCAN"``), else ``None``.
    shipped
        Whether the weights ship inside the package's wheel.
    """

    name: str
    family: Family
    model: str
    modal: str | None = None
    shipped: bool = True

    @property
    def package(self) -> str:
        """Distribution name of the package that runs this member."""
        return FAMILY_PACKAGES[self.family]

    def package_version(self) -> str | None:
        """Installed version of the member's package, or ``None`` when it is not installed."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def weight_path(self) -> Path:
        """The weight file on disk; raises :class:`MemberError` when it is missing or empty."""
        if self.shipped:
            path = _SHIPPED_WEIGHTS[self.family](self.model)
        else:
            path = Path(self.model).expanduser()
        ok = (
            path.is_dir() and any(path.iterdir())
            if path.is_dir()
            else path.is_file() and path.stat().st_size > 0
        )
        if not ok:
            where = f"inside the installed '{self.package}' package" if self.shipped else "(user-supplied)"
            raise MemberError(
                f"weights of member '{self.name}' not found or empty at {path} {where}. Reinstall it with {install_command('mlff')} (nothing is downloaded at run time)."
            )
        return path

    def calculator(self, device: str = "cpu"):
        """Build the member's ASE calculator (weights checked on disk first, nothing downloaded)."""
        path = self.weight_path()
        return _FACTORIES[self.family](self, path, device)

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "family": self.family,
            "package": self.package,
            "package_version": self.package_version(),
            "model": self.model,
            "modal": self.modal,
            "shipped": self.shipped,
        }
        return d


def file_sha256(path: Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a folder's files in sorted order."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ shipped weights
def _package_dir(module: str, family: str) -> Path:
    mod = require(module, "mlff", f"the {family} force fields")
    return Path(mod.__file__).resolve().parent


def _chgnet_weights(model: str) -> Path:
    folder = _package_dir("chgnet", "CHGNet") / "pretrained" / model
    files = sorted(folder.glob("*.pth.tar"))
    if len(files) != 1:
        raise MemberError(
            f"expected one CHGNet weight file in {folder}, found {len(files)}. Reinstall chgnet==0.4.2 ({install_command('mlff')})."
        )
    return files[0]


def _sevennet_weights(model: str) -> Path:
    require("sevenn", "mlff", "the SevenNet force fields")
    from sevenn import _const

    path = getattr(_const, model, None)
    if path is None:
        raise MemberError(
            f"sevenn has no shipped checkpoint constant '{model}'. Install sevenn==0.13.0 ({install_command('mlff')})."
        )
    return Path(path)


_SHIPPED_WEIGHTS: dict[str, Callable[[str], Path]] = {
    "chgnet": _chgnet_weights,
    "sevennet": _sevennet_weights,
}


# ------------------------------------------------------------------ calculator factories
def _chgnet_calculator(member: Member, path: Path, device: str):
    require("chgnet", "mlff", "the CHGNet force fields")
    import contextlib
    import io

    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()) as out:  # CHGNet prints its parameter count and device
        if member.shipped:
            model = CHGNet.load(model_name=member.model, use_device=device, verbose=False)
        else:
            model = CHGNet.from_file(str(path))
        calc = CHGNetCalculator(model, use_device=device)
    log.debug("%s", out.getvalue().strip())
    return calc


def _sevennet_calculator(member: Member, path: Path, device: str):
    require("sevenn", "mlff", "the SevenNet force fields")
    import warnings

    from sevenn.calculator import SevenNetCalculator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no tensor-product accelerator" advice on CPU
        return SevenNetCalculator(model=str(path), device=device, modal=member.modal)


def _mace_calculator(member: Member, path: Path, device: str):
    mod = require("mace.calculators", "mlff", "a MACE member (pip install mace-torch)")
    return mod.MACECalculator(model_paths=str(path), device=device, default_dtype="float64")


def _m3gnet_calculator(member: Member, path: Path, device: str):
    matgl = require("matgl", "mlff", "an M3GNet member (pip install matgl)")
    from matgl.ext.ase import PESCalculator

    return PESCalculator(matgl.load_model(str(path)))


def _mattersim_calculator(member: Member, path: Path, device: str):
    mod = require("mattersim.forcefield", "mlff", "a MatterSim member (pip install mattersim)")
    return mod.MatterSimCalculator(load_path=str(path), device=device)


_FACTORIES: dict[str, Callable[[Member, Path, str], object]] = {
    "chgnet": _chgnet_calculator,
    "sevennet": _sevennet_calculator,
    "mace": _mace_calculator,
    "m3gnet": _m3gnet_calculator,
    "mattersim": _mattersim_calculator,
}

#: The shipped members, in the order they run.
SHIPPED_MEMBERS: dict[str, Member] = {
    m.name: m
    for m in (
        Member("chgnet-0.3.0", "chgnet", "0.3.0"),
        Member("chgnet-0.2.0", "chgnet", "0.2.0"),
        Member("chgnet-r2scan", "chgnet", "r2scan"),
        Member("7net-0", "sevennet", "SEVENNET_0_11Jul2024"),
        Member("7net-0_22may2024", "sevennet", "SEVENNET_0_22May2024"),
        Member("7net-l3i5", "sevennet", "SEVENNET_l3i5"),
        Member("7net-mf-0-pbe", "sevennet", "SEVENNET_MF_0", modal="PBE"),
        Member("7net-mf-0-r2scan", "sevennet", "SEVENNET_MF_0", modal="R2SCAN"),
    )
}


def resolve_member(spec: str) -> Member:
    """A member from its name (``"7net-0"``) or a user weight file (``"mace:/path/model.model"``).

    Raises
    ------
    MemberError
        Unknown name or family, with the valid choices.
    """
    key = spec.strip()
    if key.lower() in SHIPPED_MEMBERS:
        return SHIPPED_MEMBERS[key.lower()]
    m = re.fullmatch(r"([A-Za-z0-9]+):(.+)", key)
    if m is None:
        raise MemberError(
            f"unknown ensemble member '{spec}'. Shipped members: {', '.join(SHIPPED_MEMBERS)}; or pass a weight file as FAMILY:PATH with FAMILY one of {', '.join(FAMILY_PACKAGES)}."
        )
    family, rest = m.group(1).lower(), m.group(2)
    if family not in FAMILY_PACKAGES:
        raise MemberError(
            f"unknown force-field family '{family}' in '{spec}'. Use one of {', '.join(FAMILY_PACKAGES)} (e.g. mace:/path/to/model.model)."
        )
    modal = None
    if family == "sevennet" and "@" in rest:
        rest, modal = rest.rsplit("@", 1)
    path = Path(rest).expanduser()
    name = f"{family}:{path.name}" + (f"@{modal}" if modal else "")
    return Member(name=name, family=family, model=str(path), modal=modal, shipped=False)  # type: ignore[arg-type]


def resolve_members(specs: list[str] | None = None) -> list[Member]:
    """Members for the given names/specs (``None``: all shipped members); duplicates raise."""
    members = list(SHIPPED_MEMBERS.values()) if not specs else [resolve_member(s) for s in specs]
    names = [m.name for m in members]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise MemberError(f"ensemble member(s) {dup} given twice. Name each member once.")
    return members


def safe_name(name: str) -> str:
    """A member name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


__all__ = [
    "FAMILY_PACKAGES",
    "SHIPPED_MEMBERS",
    "Member",
    "MemberError",
    "MissingDependencyError",
    "file_sha256",
    "resolve_member",
    "resolve_members",
    "safe_name",
]
