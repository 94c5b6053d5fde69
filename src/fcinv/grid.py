"""The (q, E) grid on which every spectrum lives.

A spectrum is an array of shape ``(n_q, n_E)``: one row per q-bin along the
high-symmetry path, one column per energy bin. Everything that fixes the grid
(the q-points, the energy bin edges, the path labels) travels with datasets,
models and folded data, and :meth:`SpectrumGrid.check_same` refuses a mismatch
instead of letting a model silently receive a spectrum on another grid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from fcinv.errors import GridError, describe_exception, json_kind


@dataclass(frozen=True, eq=False)
class SpectrumGrid:
    """The q-path and energy binning of an I(q, E) image.

    Parameters
    ----------
    q_rlu
        Shape (n_q, 3) float64, r.l.u. of the conventional cell: the centre of each q-bin.
    energy_edges
        Shape (n_E + 1,) float64, meV: energy bin edges, increasing.
    labels
        High-symmetry point labels at the tick positions, e.g. ``("Γ", "X", "U|K", ...)``.
    ticks
        Tick positions in q-bin index units (a bin boundary is an integer), one per label.
    material
        Name of the material the grid was made for (informational, not compared).
    """

    q_rlu: np.ndarray
    energy_edges: np.ndarray
    labels: tuple[str, ...] = ()
    ticks: tuple[float, ...] = ()
    material: str = ""
    segment_bins: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        q = np.asarray(self.q_rlu, dtype=float)
        e = np.asarray(self.energy_edges, dtype=float)
        if q.ndim != 2 or q.shape[1] != 3 or len(q) == 0:
            raise GridError(
                f"q_rlu has shape {q.shape}; expected (n_q, 3) with n_q >= 1. Pass one (h, k, l) per q-bin."
            )
        if e.ndim != 1 or len(e) < 2 or not np.all(np.diff(e) > 0):
            raise GridError(
                "energy_edges must be a 1-D increasing array of at least 2 edges (meV). Pass bin edges, not centres."
            )
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(e))):
            raise GridError("the grid contains NaN or inf. Pass finite q-points and energy edges.")
        object.__setattr__(self, "q_rlu", q)
        object.__setattr__(self, "energy_edges", e)
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "ticks", tuple(float(x) for x in self.ticks))
        object.__setattr__(self, "segment_bins", tuple(int(x) for x in self.segment_bins))

    # ------------------------------------------------------------------ derived
    @property
    def n_q(self) -> int:
        """Number of q-bins."""
        return len(self.q_rlu)

    @property
    def n_e(self) -> int:
        """Number of energy bins."""
        return len(self.energy_edges) - 1

    @property
    def shape(self) -> tuple[int, int]:
        """The spectrum shape ``(n_q, n_E)``."""
        return (self.n_q, self.n_e)

    @property
    def energy(self) -> np.ndarray:
        """Energy bin centres, shape (n_E,) float64, meV."""
        return 0.5 * (self.energy_edges[1:] + self.energy_edges[:-1])

    # ------------------------------------------------------------- comparison
    def fingerprint(self) -> str:
        """A short hash of the q-points and energy edges (rounded to 1e-6)."""
        h = hashlib.sha256()
        h.update(np.round(self.q_rlu, 6).astype(np.float64).tobytes())
        h.update(np.round(self.energy_edges, 6).astype(np.float64).tobytes())
        return h.hexdigest()[:16]

    def same_as(self, other: SpectrumGrid, atol: float = 1e-6) -> bool:
        """True when both grids have the same q-points and energy edges."""
        return (
            self.q_rlu.shape == other.q_rlu.shape
            and self.energy_edges.shape == other.energy_edges.shape
            and np.allclose(self.q_rlu, other.q_rlu, atol=atol)
            and np.allclose(self.energy_edges, other.energy_edges, atol=atol)
        )

    def check_same(self, other: SpectrumGrid, what: str = "the spectrum") -> None:
        """Raise :class:`GridError` unless ``other`` is the same grid as ``self``.

        Parameters
        ----------
        other
            The grid to compare.
        what
            Name of the thing carrying ``other``, used in the message.
        """
        if self.same_as(other):
            return
        if other.shape != self.shape:
            detail = f"shape {other.shape} vs expected {self.shape}"
        elif not np.allclose(other.energy_edges, self.energy_edges, atol=1e-6):
            detail = (
                f"energy edges {other.energy_edges[0]:g}..{other.energy_edges[-1]:g} meV vs expected "
                f"{self.energy_edges[0]:g}..{self.energy_edges[-1]:g} meV"
            )
        else:
            i = int(np.argmax(np.abs(other.q_rlu - self.q_rlu).max(axis=1)))
            detail = f"q-point {i} is {np.round(other.q_rlu[i], 4).tolist()} vs expected {np.round(self.q_rlu[i], 4).tolist()}"
        raise GridError(
            f"{what} is on another grid ({detail}). Rebin it onto the model's grid (fcinv infer --rebin) or use a model trained on this grid."
        )

    # -------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict:
        """JSON-serialisable representation."""
        return {
            "q_rlu": self.q_rlu.tolist(),
            "energy_edges": self.energy_edges.tolist(),
            "labels": list(self.labels),
            "ticks": list(self.ticks),
            "material": self.material,
            "segment_bins": list(self.segment_bins),
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpectrumGrid:
        """Rebuild from :meth:`to_dict` output; a missing key or a malformed value raises :class:`GridError`."""
        if not isinstance(d, dict):
            raise GridError(
                f"grid description holds a JSON {json_kind(d)}, not an object. The file was not written by "
                "fcinv or is corrupt; regenerate it."
            )
        try:
            return cls(
                q_rlu=np.asarray(d["q_rlu"], dtype=float),
                energy_edges=np.asarray(d["energy_edges"], dtype=float),
                labels=tuple(d.get("labels", ())),
                ticks=tuple(d.get("ticks", ())),
                material=str(d.get("material", "")),
                segment_bins=tuple(d.get("segment_bins", ())),
            )
        except KeyError as exc:
            raise GridError(
                f"grid description lacks the key {exc}. The file was not written by fcinv or is truncated; regenerate it."
            ) from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, GridError):
                raise
            raise GridError(
                f"grid description is malformed ({describe_exception(exc)}). The file is corrupt; regenerate it."
            ) from None

    def to_json(self) -> str:
        """The grid as a JSON string (used as an HDF5 attribute)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> SpectrumGrid:
        """Inverse of :meth:`to_json`."""
        try:
            return cls.from_dict(json.loads(s))
        except json.JSONDecodeError as exc:
            raise GridError(
                f"grid description is not valid JSON ({describe_exception(exc)}). The file is corrupt; regenerate it."
            ) from None

    def plot_axes(self, ax) -> None:
        """Put the path ticks and labels on a matplotlib x-axis (q-bin index units)."""
        if self.ticks:
            ax.set_xticks(self.ticks)
            ax.set_xticklabels(self.labels)
            for t in self.ticks[1:-1]:
                ax.axvline(t, color="w", lw=0.5, alpha=0.6)
        ax.set_xlim(0, self.n_q)
