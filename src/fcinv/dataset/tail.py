"""A documented tail in a training set (``fcinv dataset --tail-shells N --tail-width X``).

A model of ``n`` shells (Ge: 5, 16 parameters) trained with zero force constants beyond its
cutoff learns "the best n-shell description" of a spectrum. A real crystal has interactions
beyond the cutoff (the DFT Ge set: 9NN_zz = 0.081 eV/Å²), and what the model should report is
the crystal's *projection* onto its n-shell space. With a tail the spectra are made in a larger
space of ``N`` shells:

- the model's own parameters (shells 1…n) are drawn from the usual widened domain
  (:func:`fcinv.dataset.generate.widened_domain`);
- every parameter of shells n+1…N from the members' interval [lo, hi] widened symmetrically by
  ``X`` times its range r (with the same floor as the near shells): [lo − X r, hi + X r]. The
  members' far-shell spread is small (their receptive fields are 5–6 Å) and the DFT Ge set lies
  outside it (9NN_zz 0.081 against [0.001, 0.023]); X = 3 (:data:`DEFAULT_TAIL_WIDTH`) is the
  smallest whole number that contains the DFT Ge set's 11-shell projection in all 31 far
  parameters (the largest need is 2.78, 10NN_yz);
- beyond N shells the force constants are zero;
- the stored labels are the n-shell parameters only: the n-shell projection of an N-shell set is
  its shells 1…n (the projection is per shell), so the labels are the projection exactly. The
  far-shell values are stored per sample under ``/conditions`` as ``tail_<name>``.

The dataset meta records it under ``tail``: shells, width, names, the far-shell domain.
"""

from __future__ import annotations

import math

import numpy as np

from fcinv.errors import DataError

#: Default widening of the far-shell domain, × the members' range on each side.
DEFAULT_TAIL_WIDTH = 3.0
#: Prefix of the far-shell values in ``/conditions``.
TAIL_PREFIX = "tail_"


def check_tail_option(tail_shells, tail_width, n_shells: int, max_shells: int) -> tuple[int, float]:
    """Validate ``--tail-shells``/``--tail-width`` against the model's ``n_shells``.

    Raises
    ------
    DataError
        A shell count not above the model's or beyond ``max_shells``, or a width that is not a
        finite number >= 0.
    """
    try:
        n = int(tail_shells)
    except (TypeError, ValueError):
        raise DataError(
            f"--tail-shells {tail_shells!r} is not an integer. Pass a shell count such as 11."
        ) from None
    if n != tail_shells or not n_shells < n <= max_shells:
        raise DataError(
            f"--tail-shells {tail_shells} must lie above the model's {n_shells} shells and at most "
            f"{max_shells}. "
            "Pass e.g. 11."
        )
    try:
        w = float(tail_width)
    except (TypeError, ValueError):
        raise DataError(
            f"--tail-width {tail_width!r} is not a number. Pass e.g. {DEFAULT_TAIL_WIDTH:g}."
        ) from None
    if not (math.isfinite(w) and w >= 0):
        raise DataError(
            f"--tail-width {tail_width} must be a finite number >= 0 (× the members' range). "
            f"Pass e.g. {DEFAULT_TAIL_WIDTH:g}."
        )
    return n, w


def tail_domain(
    ref, big, names, *, width: float = DEFAULT_TAIL_WIDTH, widen=None, min_range_frac: float = 0.05
):
    """The sampled domain of a tail set: ``names`` (of ``ref``'s space) as usual, then every
    parameter of ``big``'s space outside ``ref``'s, widened by ``width`` (module docstring).

    Parameters
    ----------
    ref, big
        :class:`fcinv.reference.MaterialReference` of the model's space and of the larger one.
    names
        The model's parameters (labels), in order.

    Returns
    -------
    tuple
        ``(domain, tail_names)``: a :class:`fcinv.dataset.generate.Domain` over ``names`` +
        ``tail_names``, and the far-shell names (``big`` space order).
    """
    from fcinv.dataset.generate import Domain

    near = ref.domain(list(names), widen=widen)
    missing = [n for n in names if n not in big.space.names]
    if missing:
        raise DataError(
            f"the {big.n_shells}-shell space lacks {missing}; it must contain the model's shells."
        )
    tail_names = [n for n in big.space.names if n not in ref.space.names]
    lo, hi = big.bounds(tail_names)
    r = np.maximum(hi - lo, min_range_frac * np.maximum(np.abs(lo), np.abs(hi)))
    r = np.maximum(r, 1e-4)
    low = np.concatenate([near.low, lo - width * r])
    high = np.concatenate([near.high, hi + width * r])
    return Domain(tuple(list(names) + tail_names), low, high), tail_names


class TailLabels:
    """A forward object in the larger space whose stored labels are the model's parameters.

    ``names`` are every sampled parameter (labels first, then the far shells), so the
    generator draws and checks stability in the larger space; :attr:`label_names` are what the
    writer stores, and :meth:`tail_conditions` the far-shell values for ``/conditions``.

    Parameters
    ----------
    inner
        The forward object (a ForwardModel, a conditioner) over ``label_names + tail_names``.
    label_names, tail_names
        The model's parameters and the far-shell ones.
    description
        JSON-able description of the tail (meta ``tail``).
    """

    def __init__(self, inner, label_names, tail_names, description: dict):
        self.inner = inner
        self.label_names = list(label_names)
        self.tail_names = list(tail_names)
        self.names = self.label_names + self.tail_names
        if list(inner.names) != self.names:
            raise DataError(
                f"the forward model varies {list(inner.names)[:3]}... but the tail set needs "
                f"{self.names[:3]}...; "
                "build it with free=labels + tail names."
            )
        self.tail = dict(description)
        from fcinv.dataset.generate import base_model

        self.model = base_model(inner)  # what dataset_meta reads (space, θ_ref)

    def __getattr__(self, name):  # grid, coverages, uses_temperature, spectra_under, background_image ...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def is_stable(self, theta):
        return self.inner.is_stable(theta)

    def spectra(self, theta):
        return self.inner.spectra(theta)

    def describe(self) -> dict:
        d = dict(self.inner.describe())
        d["tail"] = self.tail
        return d

    def labels(self, theta: np.ndarray) -> np.ndarray:
        """The stored labels of θ (B, len(names)): its first ``len(label_names)`` columns."""
        return np.asarray(theta, float)[:, : len(self.label_names)]

    def tail_conditions(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``{tail_<name>: (B,)}`` far-shell values of θ."""
        t = np.asarray(theta, float)
        k = len(self.label_names)
        return {TAIL_PREFIX + n: t[:, k + i] for i, n in enumerate(self.tail_names)}


def tail_forward(ref, names, *, tail_shells: int, tail_width: float, make_forward):
    """(forward object, domain) of a tail set.

    Parameters
    ----------
    ref
        The model's :class:`~fcinv.reference.MaterialReference`.
    names
        The model's parameters (labels).
    tail_shells, tail_width
        As ``--tail-shells``/``--tail-width`` (validated here).
    make_forward
        ``make_forward(big_ref, free) -> forward object`` over ``free`` in ``big_ref``'s space
        (zero beyond its cutoff).
    """
    from fcinv.reference import MAX_SHELLS, TAIL_ZERO, load_reference

    n, w = check_tail_option(tail_shells, tail_width, ref.n_shells, MAX_SHELLS)
    big = load_reference(ref.material, n, tail=TAIL_ZERO)
    domain, tail_names = tail_domain(ref, big, names, width=w)
    inner = make_forward(big, list(names) + tail_names)
    desc = {
        "model_shells": ref.n_shells,
        "tail_shells": n,
        "tail_width": w,
        "rule": "far shells drawn in [lo - X r, hi + X r] of the stable members' interval (X = tail_width); "
        "zero beyond tail_shells; labels = the model's shells (the projection)",
        "names": tail_names,
        "low": domain.low[len(names) :].tolist(),
        "high": domain.high[len(names) :].tolist(),
        "conditions_prefix": TAIL_PREFIX,
    }
    return TailLabels(inner, names, tail_names, desc), domain


__all__ = [
    "DEFAULT_TAIL_WIDTH",
    "TAIL_PREFIX",
    "TailLabels",
    "check_tail_option",
    "tail_domain",
    "tail_forward",
]
