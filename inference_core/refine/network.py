"""The refinement network: a small U-Net from the face tile's maps to albedo detail and illumination.

Input (B, 14, R, R), R = 256 by default: the de-lit photo (colour / global shading, 3), its trust (1),
the prior-stage albedo (3), normals (3), the global shading relative to its mean (3) and the coverage
(1). Output: the albedo log-ratio to the prior-stage albedo (B, R, R, 3) and the relative SH residual
grid (B, R/8, R/8, 9, 3) of `illumination.py`, i.e. the two unknowns of `losses.refinement_loss`.
Both output layers start at zero, so an untrained network returns the prior unchanged. Weights are
stored as safetensors with the architecture in the metadata.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.refine.inputs import RefineInputs

WEIGHTS_FORMAT = "facealbedo.refine-net/1"
IN_CHANNELS = 14
GRID_DOWNSAMPLING = 8  # the illumination grid has R/8 cells per side


def network_features(inputs: RefineInputs) -> torch.Tensor:
    """(B, 14, R, R) scale-free input features of the face tile (see the module docstring)."""
    shading = inputs.global_shading()
    mean_shading = shading.mean((1, 2, 3), keepdim=True).abs().clamp_min(1e-3)
    delit = inputs.colour / shading.clamp_min(0.05 * mean_shading) * (inputs.visibility[..., None] > 0)
    features = torch.cat([
        delit.clamp(0, 2), inputs.visibility[..., None], inputs.completed, inputs.normals,
        shading / mean_shading, inputs.coverage[..., None],
    ], dim=-1)
    return features.permute(0, 3, 1, 2) * inputs.coverage[:, None]


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each with group normalisation and SiLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GroupNorm(4, out_channels), nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(4, out_channels), nn.SiLU(),
        )


class RefineNet(nn.Module):
    """U-Net with `levels` halvings; channels base, 2 base, 4 base, then 4 base."""

    def __init__(self, base_channels: int = 16, levels: int = 4, input_resolution: int = 256):
        super().__init__()
        if levels < 3 or input_resolution % (2 ** levels):
            raise ValueError(f"need levels >= 3 and input_resolution divisible by 2^levels, got {levels}, "
                             f"{input_resolution}")
        self.base_channels, self.levels, self.input_resolution = base_channels, levels, input_resolution
        channels = [base_channels * min(2 ** i, 4) for i in range(levels + 1)]
        self.stem = ConvBlock(IN_CHANNELS, channels[0])
        self.down = nn.ModuleList(ConvBlock(channels[i], channels[i + 1]) for i in range(levels))
        self.up = nn.ModuleList(ConvBlock(channels[i + 1] + channels[i], channels[i]) for i in range(levels))
        self.detail_head = nn.Conv2d(channels[0], 3, 1)
        self.grid_level = 3  # decoder output at R / 2^3 = R / GRID_DOWNSAMPLING
        self.grid_head = nn.Conv2d(channels[self.grid_level], 27, 1)
        for head in (self.detail_head, self.grid_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, inputs: RefineInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (log_ratio (B, R, R, 3), grid (B, R/8, R/8, 9, 3)) for inputs at `input_resolution`."""
        x = self.stem(network_features(inputs))
        skips = [x]
        for block in self.down:
            x = block(F.avg_pool2d(x, 2))
            skips.append(x)
        grid = None
        for level in reversed(range(self.levels)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.up[level](torch.cat([x, skips[level]], dim=1))
            if level == self.grid_level:
                grid = self.grid_head(x)
        b, _, g, _ = grid.shape
        log_ratio = self.detail_head(x).permute(0, 2, 3, 1)
        return log_ratio, grid.permute(0, 2, 3, 1).reshape(b, g, g, 9, 3)

    def metadata(self) -> dict[str, str]:
        return {"format": WEIGHTS_FORMAT, "base_channels": str(self.base_channels), "levels": str(self.levels),
                "input_resolution": str(self.input_resolution)}


def save_weights(network: RefineNet, path: Path) -> None:
    """Write the network's weights and architecture as safetensors (atomically: temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    temporary = path.with_name(path.name + ".partial")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
    save_file(state, str(temporary), metadata=network.metadata())
    temporary.replace(path)


def load_network(path: Path, device: torch.device | str = "cpu") -> RefineNet:
    """The network stored at `path` (safetensors from `save_weights`), in eval mode on `device`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FaceAlbedoError(ErrorCode.ASSETS_MISSING,
                              f"refinement weights {path} not found: train them with "
                              "`python -m inference_core.train` or leave --weights out")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not ours
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"cannot read refinement weights {path}: {exc}") from exc
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT,
                              f"{path} is not a FaceAlbedo refinement network ({WEIGHTS_FORMAT}); train one "
                              "with `python -m inference_core.train`")
    network = RefineNet(int(metadata["base_channels"]), int(metadata["levels"]), int(metadata["input_resolution"]))
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"refinement weights {path} do not fit the network: "
                              f"{exc}") from exc
    return network.to(device).eval()
