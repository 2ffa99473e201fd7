"""Where PyTorch runs: the one place that turns --device auto|cpu|cuda into a device name."""
from __future__ import annotations

from inference_core.errors import ErrorCode, FaceAlbedoError


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when PyTorch sees a GPU, else 'cpu'; an unavailable 'cuda' is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FaceAlbedoError(ErrorCode.DEVICE_UNAVAILABLE,
                              "--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise FaceAlbedoError(ErrorCode.USAGE, f"unknown device {device!r}: use auto, cpu or cuda")
    return device
