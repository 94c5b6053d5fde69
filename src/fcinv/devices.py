"""The one place where fcinv chooses a torch device.

Precedence: an explicit ``device`` argument (``--device``), else the environment
variable ``FCINV_DEVICE``, else ``"auto"``. ``"auto"`` picks CUDA when a GPU is
available and the CPU otherwise; an explicit ``"cuda"`` without a GPU is an error
rather than a silent fallback.
"""

from __future__ import annotations

import os

from fcinv.errors import FcinvError

#: Environment variable overriding the default device.
ENV_VAR = "FCINV_DEVICE"
CHOICES = ("cpu", "cuda", "auto")


class DeviceError(FcinvError):
    """An unknown or unavailable compute device."""


def resolve_device(device: str | None = None):
    """Return the ``torch.device`` to compute on.

    Parameters
    ----------
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; None reads ``FCINV_DEVICE``
        (default ``"auto"``).

    Raises
    ------
    DeviceError
        Unknown name, or CUDA requested but not available.
    """
    import torch

    source = "--device"
    if device is None:
        device = os.environ.get(ENV_VAR, "auto") or "auto"
        source = ENV_VAR
    name = str(device).strip().lower()
    base = name.split(":", 1)[0]
    if base not in CHOICES or (":" in name and (base != "cuda" or not name.split(":", 1)[1].isdigit())):
        raise DeviceError(
            f"{source}={device!r} is not a device. Use one of {', '.join(CHOICES)} (or cuda:N)."
        )
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{source}={device!r} but no CUDA GPU is available to this torch build. Use --device cpu."
            )
        idx = int(name.split(":", 1)[1]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise DeviceError(
                f"{source}={device!r} but only {torch.cuda.device_count()} GPU(s) exist. Use cuda:0..{torch.cuda.device_count() - 1}."
            )
        return torch.device(name)
    return torch.device("cpu")
