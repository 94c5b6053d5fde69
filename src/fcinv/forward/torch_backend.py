"""Differentiable torch twin of :class:`fcinv.forward.model.ForwardModel`.

Same matrices, same broadening, same results as the numpy backend (tested
against each other); gradients flow to θ through ``torch.linalg.eigvalsh``.
Runs on any torch device (``--device cpu|cuda``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fcinv.units import EV_A2_AMU_TO_MEV


class TorchForward(torch.nn.Module):
    """θ (B, k) → I(q, E) (B, n_q, n_E) and energies, differentiable in θ.

    Parameters
    ----------
    model
        The numpy ForwardModel to mirror.
    device
        Torch device name.
    dtype
        Default float64 (exact parity with numpy); float32 for speed on GPUs.
    """

    def __init__(self, model, device: str = "cpu", dtype=None):
        super().__init__()
        dtype = dtype or torch.float64
        self.model = model
        dyn = model.path
        if dyn.real:
            Mc, Mp = dyn.Mc, dyn.Mp
        else:
            Mc, Mp = dyn.Mc, dyn.Mp
            dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.register_buffer("Mc", torch.as_tensor(np.ascontiguousarray(Mc), dtype=dtype, device=device))
        self.register_buffer("Mp", torch.as_tensor(np.ascontiguousarray(Mp), dtype=dtype, device=device))
        e = model.grid.energy_edges
        real_dtype = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
        self.register_buffer("edges", torch.as_tensor(e, dtype=real_dtype, device=device))
        self.fwhm0 = model.broadening.fwhm0
        self.fwhm1 = model.broadening.fwhm1

    def omega2(self, theta: torch.Tensor) -> torch.Tensor:
        """ω² (B, n_q, m), eV/(Å² amu)."""
        theta = theta.to(self.Mp.dtype) if self.Mp.is_complex() else theta.to(self.Mc.dtype)
        D = self.Mc.unsqueeze(0) + torch.einsum("bp,pqij->bqij", theta, self.Mp)
        return torch.linalg.eigvalsh(D)

    def energies(self, theta: torch.Tensor) -> torch.Tensor:
        """Signed energies (B, n_q, m), meV."""
        w2 = self.omega2(theta)
        return torch.sign(w2) * torch.sqrt(torch.abs(w2) + 1e-30) * EV_A2_AMU_TO_MEV

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """Broadened spectra (B, n_q, n_E), same dtype as the energy grid."""
        e = self.energies(theta)
        sigma = (self.fwhm0 + self.fwhm1 * torch.clamp(e, min=0.0)) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        z = (self.edges.view(1, 1, 1, -1) - e.unsqueeze(-1)) / (math.sqrt(2.0) * sigma.unsqueeze(-1))
        cdf = 0.5 * torch.erf(z)
        return (cdf[..., 1:] - cdf[..., :-1]).sum(dim=2)
