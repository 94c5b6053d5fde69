"""One result type for θ ± σ, whoever made it: the ML model, a least-squares fit or the pipeline.

An :class:`FCResult` carries the parameter names, θ and σ (eV/Å²), the method, what σ means,
how adequate the answer looks (coverage, χ²/dof, whether θ lies in the training domain, ...)
and its provenance. It prints as a table (:meth:`~FCResult.table`), writes JSON and CSV
(:meth:`~FCResult.to_json`, :meth:`~FCResult.to_csv`), reads JSON back
(:meth:`~FCResult.from_json`), and exports a full force-constant set for phonopy and Euphonic
(:meth:`~FCResult.to_phonopy`).

JSON layout (``format = "fcinv-result"``, version 1)::

    {"format", "format_version", "names": [...], "theta": {name: value}, "sigma": {name: value},
     "unit": "eV/Å^2", "method", "sigma_meaning", "material", "adequacy": {...},
     "provenance": {"fcinv_version", "command", "seed", "created"}, "extra": {...},
     "parts": {"ml": <the same layout>, ...}}

``theta`` is a mapping by name, so ``fcinv export --theta-json`` and
:func:`fcinv.io.read_theta_json` read it directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fcinv.errors import DataError, ForceConstantError, describe_exception, json_kind
from fcinv.io.atomic import json_dumps, jsonable, write_text
from fcinv.io.provenance import Provenance

FORMAT = "fcinv-result"
FORMAT_VERSION = 1
UNIT = "eV/Å^2"

#: What σ means, per way of making θ.
SIGMA_ML = (
    "standard deviation of the regressor's output over latent samples drawn from the encoder's "
    "N(mu, sigma^2); a spread, not a calibrated error (it does not cover the domain shift between "
    "simulated and measured spectra)"
)
SIGMA_POINT = "none: a point estimate (sigma = 0)"


@dataclass(frozen=True, eq=False)
class FCResult:
    """Force-constant parameters θ ± σ with what made them.

    Parameters
    ----------
    names
        The k parameter names, FC0 first (e.g. ``"1NN_xx"``).
    theta
        Shape (k,) float64, eV/Å².
    sigma
        Shape (k,) float64, eV/Å², >= 0 (``inf`` where the data do not constrain a parameter).
    method
        How θ was made, one line (e.g. ``"ML: VAE + latent regressor (ge)"``).
    sigma_meaning
        What σ is (and is not), one line.
    material
        The material's name (what :meth:`to_phonopy` exports for), or None.
    adequacy
        JSON-able figures of how far to trust θ: e.g. ``coverage``, ``chi2_dof``, ``success``,
        ``in_domain``, ``reconstruction_rms``.
    provenance
        Version, seed, command, time.
    extra
        Method-specific JSON-able details (timings, the fit's covariance, the model's source ...).
    parts
        Earlier results this one builds on, by stage name (e.g. ``{"ml": ...}`` in a refined result).
    """

    names: tuple[str, ...]
    theta: np.ndarray
    sigma: np.ndarray
    method: str
    sigma_meaning: str
    material: str | None = None
    adequacy: dict = field(default_factory=dict)
    provenance: Provenance | None = None
    extra: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        theta = np.asarray(self.theta, dtype=float).ravel()
        sigma = np.asarray(self.sigma, dtype=float).ravel()
        if len(set(names)) != len(names):
            raise ForceConstantError(f"result names {list(names)} repeat a name. Pass each parameter once.")
        if theta.shape != (len(names),) or sigma.shape != theta.shape:
            raise ForceConstantError(
                f"result has {len(names)} names, {theta.size} θ and {sigma.size} σ values. "
                "Pass one θ and one σ per name."
            )
        if not np.all(np.isfinite(theta)):
            raise ForceConstantError(
                f"θ is not finite for {[n for n, t in zip(names, theta) if not np.isfinite(t)]}. "
                "A result holds finite force constants."
            )
        if np.any(np.isnan(sigma)) or np.any(sigma < 0):
            raise ForceConstantError(
                f"σ must be >= 0 (or inf), got {sigma.tolist()}. Pass standard deviations."
            )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "adequacy", dict(self.adequacy))
        object.__setattr__(self, "extra", dict(self.extra))
        object.__setattr__(self, "parts", dict(self.parts))

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> tuple[float, float]:
        """``result["1NN_xx"]`` → (θ, σ) in eV/Å²."""
        if name not in self.names:
            raise KeyError(f"{name!r} is not a parameter of this result; names: {', '.join(self.names)}")
        i = self.names.index(name)
        return float(self.theta[i]), float(self.sigma[i])

    def theta_dict(self) -> dict[str, float]:
        """θ by name, eV/Å²."""
        return dict(zip(self.names, (float(v) for v in self.theta)))

    def sigma_dict(self) -> dict[str, float]:
        """σ by name, eV/Å²."""
        return dict(zip(self.names, (float(v) for v in self.sigma)))

    def relative_error(self, truth: Mapping[str, float]) -> np.ndarray:
        """|θ − truth| / |truth| per name, shape (k,) (NaN where the truth is unknown or ~0)."""
        out = np.full(len(self.names), np.nan)
        for i, n in enumerate(self.names):
            if n in truth and abs(truth[n]) > 1e-12:
                out[i] = abs(self.theta[i] - truth[n]) / abs(truth[n])
        return out

    # ------------------------------------------------------------------ text
    def table(self, truth: Mapping[str, float] | None = None, *, title: str | None = None) -> str:
        """A plain-text table: one line per parameter (θ, σ, and the error against ``truth`` when given)."""
        w = max(8, *(len(n) for n in self.names))
        head = f"      {'name':<{w}} {'theta':>10} {'± sigma':>9}  unit"
        if truth is not None:
            head += f"    {'truth':>9} {'error':>7}"
        first = [title] if title is not None else [self.method, f"σ: {self.sigma_meaning.split(';')[0]}"]
        lines = [*first, head]
        rel = self.relative_error(truth) if truth is not None else None
        for i, (n, t, s) in enumerate(zip(self.names, self.theta, self.sigma)):
            line = f"FC{i:<3} {n:<{w}} {t:>10.4f} {s:>9.4f}  eV/Å²"
            if truth is not None and rel is not None:
                tv = truth.get(n)
                line += f"  {tv:>9.4f} {100 * rel[i]:>6.1f}%" if tv is not None else f"  {'?':>9} {'':>7}"
            lines.append(line)
        if self.adequacy:
            lines.append("adequacy: " + ", ".join(f"{k} {_fmt(v)}" for k, v in self.adequacy.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        vals = ", ".join(f"{n}={t:.4g}±{s:.2g}" for n, t, s in zip(self.names[:3], self.theta, self.sigma))
        more = ", ..." if len(self.names) > 3 else ""
        return f"FCResult({vals}{more}; {self.method})"

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of the module docstring (plain types; non-finite σ as null)."""
        return jsonable(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "names": list(self.names),
                "theta": self.theta_dict(),
                "sigma": {n: (v if math.isfinite(v) else None) for n, v in self.sigma_dict().items()},
                "unit": UNIT,
                "method": self.method,
                "sigma_meaning": self.sigma_meaning,
                "material": self.material,
                "adequacy": self.adequacy,
                "provenance": None if self.provenance is None else self.provenance.to_dict(),
                "extra": _finite_or_none(jsonable(self.extra)),
                "parts": {k: v.to_dict() for k, v in self.parts.items()},
            }
        )

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as JSON text; written atomically to ``path`` when given."""
        text = json_dumps(self.to_dict(), indent=1) + "\n"
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FCResult:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        DataError
            Not an fcinv result, or a newer format version.
        """
        if d.get("format") != FORMAT:
            raise DataError(
                f"this JSON has format {d.get('format')!r}, not {FORMAT!r}. Pass a file written by "
                "FCResult.to_json (fcinv infer --json); for other θ files use fcinv.io.read_theta_json."
            )
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(
                f"result format version {d.get('format_version')} is newer than this fcinv reads "
                f"({FORMAT_VERSION}). Upgrade fcinv."
            )
        names = list(d["names"])
        sig = d.get("sigma") or {}
        return cls(
            names=tuple(names),
            theta=np.array([float(d["theta"][n]) for n in names]),
            sigma=np.array([math.inf if sig.get(n) is None else float(sig[n]) for n in names]),
            method=str(d.get("method", "")),
            sigma_meaning=str(d.get("sigma_meaning", "")),
            material=d.get("material"),
            adequacy=dict(d.get("adequacy") or {}),
            provenance=None if d.get("provenance") is None else Provenance.from_dict(d["provenance"]),
            extra=dict(d.get("extra") or {}),
            parts={k: cls.from_dict(v) for k, v in (d.get("parts") or {}).items()},
        )

    @classmethod
    def from_json(cls, path: str | Path) -> FCResult:
        """Read a file written by :meth:`to_json`."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"result file '{p}' does not exist. Check the path.")
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(
                f"'{p}' is not valid JSON ({describe_exception(exc)}). Pass a file written by "
                "FCResult.to_json."
            ) from None
        if not isinstance(doc, dict):
            raise DataError(
                f"'{p}' holds a JSON {json_kind(doc)}, not a result. Pass a file written by FCResult.to_json."
            )
        return cls.from_dict(doc)

    # ------------------------------------------------------------------- CSV
    def to_csv(self, path: str | Path | None = None) -> str:
        """``index,name,theta,sigma,unit`` lines (σ ``inf`` where unconstrained); also written to ``path``."""
        rows = ["index,name,theta,sigma,unit"]
        rows += [
            f"{i},{n},{t:.10g},{s:.10g},{UNIT}"
            for i, (n, t, s) in enumerate(zip(self.names, self.theta, self.sigma))
        ]
        text = "\n".join(rows) + "\n"
        if path is not None:
            write_text(path, text)
        return text

    # --------------------------------------------------------------- phonopy
    def to_phonopy(
        self,
        outdir: str | Path,
        *,
        material=None,
        supercell: Sequence[int] | None = None,
        compact: bool = True,
        check: bool = True,
    ):
        """Write the full force-constant set of this θ as phonopy ``FORCE_CONSTANTS`` + ``POSCAR`` (+ YAML).

        A result that holds every parameter of its space (the all-parameter models, the refinements;
        a refinement continued into more shells carries ``extra["n_shells"]``) is exported with zero
        force constants beyond its cutoff, as its forward model had them. A result of some parameters
        (the paper convention) keeps the reference member's values for the rest and beyond the
        cutoff: reference + Σ (θ − θ_ref) × unit arrays on the reference's supercell (see
        :func:`fcinv.fitting.export_phonopy`). Either is checked against the forward model with phonopy.

        Parameters
        ----------
        outdir
            Output folder.
        material
            A :class:`~fcinv.material.Material` or anything :func:`~fcinv.material.load_material`
            takes; default: the result's :attr:`material`.
        supercell
            Default: the reference's supercell, else the material's.

        Returns
        -------
        fcinv.fitting.ExportResult
            The folder, the files written and the self-check's deviation.
        """
        from fcinv.fitting.export import export_phonopy
        from fcinv.io.provenance import current_command
        from fcinv.material import load_material

        if material is None and self.material is None:
            raise DataError("this result names no material. Pass material= (e.g. 'Ge' or a Material).")
        mat = load_material(material if material is not None else self.material)
        n_shells = self.extra.get("n_shells")
        ref = None
        if mat.reference_available:
            from fcinv.reference import load_reference

            # a refinement continued into more shells carries its shell count; else the material's space
            ref = (
                load_reference(mat.name, int(n_shells), supercell=self.extra.get("supercell"))
                if n_shells and mat.embedded
                else mat.reference
            )
            theta = ref.theta_ref.copy()
            for k, v in self.theta_dict().items():
                if k not in ref.space.names:
                    raise DataError(
                        f"'{k}' is not a parameter of {mat.name} at {ref.n_shells} shells. "
                        f"Parameters: {', '.join(ref.space.names)}."
                    )
                theta[ref.space.names.index(k)] = float(v)
        else:
            theta = mat.theta_full(self.theta_dict())
        meta = {
            "result_method": self.method,
            "result_provenance": None if self.provenance is None else self.provenance.to_dict(),
        }
        sigma = {n: (v if math.isfinite(v) else None) for n, v in self.sigma_dict().items()}
        space, reference, theta_ref, sc = mat.space, None, None, supercell
        if ref is not None:
            space = ref.space
            sc = mat.reference_supercell if supercell is None else supercell
            # the result's own tail: zero beyond the cutoff when it holds every parameter of its space (the
            # all-parameter models and the refinements), else the reference member's (the paper convention)
            tail = ref.tail_for(list(self.names))
            meta["beyond_cutoff"] = tail
            if tail == "reference":
                reference, theta_ref = ref.pairs, ref.theta_ref
        elif sc is None:
            sc = mat.supercell
        return export_phonopy(
            outdir,
            space,
            theta,
            reference=reference,
            theta_ref=theta_ref,
            supercell=sc,
            compact=compact,
            check=check,
            sigma=sigma,
            meta=meta,
            command=current_command(),
        )

    # ------------------------------------------------------------ converters
    @classmethod
    def from_fit(
        cls,
        fit,
        *,
        material: str | None = None,
        provenance: Provenance | None = None,
        parts: dict | None = None,
    ) -> FCResult:
        """Convert a :class:`fcinv.fitting.FitResult` (the fit's σ: linearised, statistical, local)."""
        note = str(fit.as_dict().get("uncertainty", "1 sigma of the least-squares fit"))
        adequacy = {
            "success": bool(fit.success),
            "chi2_dof": fit.chi2_dof,
            "dof": int(fit.dof),
            "cost": float(fit.cost),
        }
        for key in ("stable", "warnings", "fallback"):  # what a trust-checking fit reports, when it does
            if key in (fit.extra or {}):
                adequacy[key] = fit.extra[key]
        extra = {
            "message": fit.message,
            "n_iter": int(fit.n_iter),
            "wall_s": float(fit.wall_s),
            "covariance": np.asarray(fit.covariance),
            "theta_start": dict(zip(fit.names, np.asarray(fit.theta_start, float))),
            **{k: v for k, v in (fit.extra or {}).items() if k not in ("names", "theta", "sigma")},
        }
        sigma = np.where(np.isfinite(np.asarray(fit.sigma, float)), np.asarray(fit.sigma, float), np.inf)
        return cls(
            tuple(fit.names),
            np.asarray(fit.theta, float),
            sigma,
            method=f"fit: {fit.method}",
            sigma_meaning=note,
            material=material,
            adequacy=adequacy,
            provenance=provenance or Provenance.now(),
            extra=extra,
            parts=parts or {},
        )


def _finite_or_none(obj: Any) -> Any:
    """NaN and infinities (which strict JSON lacks) → None, recursively."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
