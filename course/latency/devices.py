"""Which device to measure on: the course's one device chooser.

>>> default_device() in available_devices()
True
"""

from __future__ import annotations

from typing import List

import torch

__all__ = ["available_devices", "default_device"]


def available_devices() -> List[str]:
    """The devices this machine can measure on, CPU first: ``["cpu"]``, plus ``"cuda"`` and
    ``"mps"`` when PyTorch sees them."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def default_device() -> str:
    """The accelerator when there is one (``"cuda"``, else ``"mps"``), else ``"cpu"``."""
    devices = available_devices()
    return "cuda" if "cuda" in devices else devices[-1]
