"""The least-squares problem of one spectrum fit: residuals and Jacobian (data rows, then prior rows).

Used by :func:`fcinv.fitting.spectrum_fit.fit_spectrum`; the data rows are the weighted residuals, or
the Poisson deviance residuals where the data carry their exposure (:mod:`fcinv.fitting.image`).
"""

from __future__ import annotations

import numpy as np

from fcinv.fitting.image import _image_and_jacobian, deviance_residuals


class _Problem:
    """Residuals and Jacobian of one spectrum fit (data rows, then prior rows), with a one-entry cache per θ.

    Data rows are w · (s·I(θ) + b − y) / ``data_scale``; prior rows (θ − μ)/σ_prior. With
    uniform weights ``data_scale`` is the empirical noise level (module docstring of
    :func:`fit_spectrum`), with errors it is 1.
    """

    def __init__(
        self,
        model,
        y: np.ndarray,
        w: np.ndarray,
        mask: np.ndarray,
        background: bool,
        prior=None,
        exposure: np.ndarray | None = None,
    ):
        self.model, self.y, self.w, self.mask, self.background = model, y, w, mask, background
        self.exposure = exposure
        self.mu0 = 1e-9 * max(float(np.max(np.abs(y))), 1e-300)
        self.k = model.k
        self.n_eval = 0
        self.prior = prior
        self.data_scale = 1.0
        self.active = np.ones(len(y), bool)
        self._key: bytes | None = None
        self._img: np.ndarray | None = None
        self._jac: np.ndarray | None = None

    def _eval(self, theta: np.ndarray, jac: bool):
        key = theta.tobytes()
        if key != self._key or (jac and self._jac is None):
            img, J = _image_and_jacobian(self.model, theta, jacobian=jac)
            self._key, self._img, self._jac = key, img[self.mask], (J[self.mask] if J is not None else None)
            self.n_eval += 1
        return self._img, self._jac

    def split(self, x: np.ndarray) -> tuple[np.ndarray, float, float]:
        return x[: self.k], float(x[self.k]), (float(x[self.k + 1]) if self.background else 0.0)

    def linear_residual(self, x: np.ndarray) -> np.ndarray:
        """w · (s·I + b − y) of all measured pixels (the pre-smoothed stage's misfit)."""
        theta, s, b = self.split(x)
        img, _ = self._eval(theta, jac=False)
        return self.w * (s * img + b - self.y)

    def _dmu(self, x: np.ndarray) -> np.ndarray:
        theta, s, _ = self.split(x)
        img, J = self._eval(theta, jac=True)
        cols = [s * J, img[:, None]] + ([np.ones((len(img), 1))] if self.background else [])
        return np.concatenate(cols, axis=1)

    def linear_jacobian(self, x: np.ndarray) -> np.ndarray:
        return self.w[:, None] * self._dmu(x)

    def mean(self, x: np.ndarray) -> np.ndarray:
        """The model's μ = s·I + b of every measured pixel."""
        theta, s, b = self.split(x)
        img, _ = self._eval(theta, jac=False)
        return s * img + b

    def data_residual(self, x: np.ndarray) -> np.ndarray:
        """Residuals of all measured pixels (outliers included), unscaled: weighted, or the Poisson
        deviance residuals where the data carry their exposure."""
        if self.exposure is None:
            return self.linear_residual(x)
        return deviance_residuals(self.mean(x), self.y, self.exposure, self.mu0)[0]

    def data_jacobian(self, x: np.ndarray) -> np.ndarray:
        if self.exposure is None:
            return self.linear_jacobian(x)
        dr = deviance_residuals(self.mean(x), self.y, self.exposure, self.mu0)[1]
        return dr[:, None] * self._dmu(x)

    def residual(self, x: np.ndarray) -> np.ndarray:
        r = self.data_residual(x)[self.active] / self.data_scale
        if self.prior is None:
            return r
        return np.concatenate([r, self.prior.residual(x[: self.k])])

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        J = self.data_jacobian(x)[self.active] / self.data_scale
        if self.prior is None:
            return J
        P = np.zeros((self.k, J.shape[1]))
        P[np.arange(self.k), np.arange(self.k)] = 1.0 / self.prior.sigma
        return np.vstack([J, P])
