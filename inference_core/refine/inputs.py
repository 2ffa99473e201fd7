"""The face tile (UDIM 1001) as batched tensors: what the refinement losses and network read.

One value carries everything the refinement needs, so that test-time optimisation (batch of 1) and
training (batch of many photos) share one loss function. Images are channel-last, (B, R, R, C), in the
texel grid of `values.UVTexture` (row 0 is v = 1). The face tile is mirror-symmetric in UV about
u = 0.5 (checked on the ICT mesh to 1e-6), so a texel's left/right mirror is the same row, column R-1-j.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.render import sh
from inference_core.values import PriorAlbedo, UVTexture

FACE_TILE = 1001
SOURCE_SEEN = 1  # PriorAlbedo.source of texels taken from the photo


@dataclass(frozen=True)
class RefineInputs:
    """Face-tile maps of B photos at one resolution R (float32 tensors on one device)."""

    colour: torch.Tensor  # (B, R, R, 3) unwrapped linear photo colour, 0 where unseen
    visibility: torch.Tensor  # (B, R, R) in [0, 1], trust in `colour` for the albedo (0 where the prior rejected it)
    light_visibility: torch.Tensor  # (B, R, R) in [0, 1], trust in `colour` for the lighting (>= visibility)
    normals: torch.Tensor  # (B, R, R, 3) unit normals, camera space (0 off the mesh)
    coverage: torch.Tensor  # (B, R, R) in {0, 1}: texels on the mesh
    completed: torch.Tensor  # (B, R, R, 3) prior-stage complete de-lit albedo
    parametric: torch.Tensor  # (B, R, R, 3) prior-stage low-dimensional albedo
    sh_global: torch.Tensor  # (B, 9, 3) global SH radiance, camera space

    @property
    def resolution(self) -> int:
        return int(self.colour.shape[1])

    @property
    def batch_size(self) -> int:
        return int(self.colour.shape[0])

    def to(self, device: torch.device | str) -> "RefineInputs":
        return RefineInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @cached_property
    def shading_basis(self) -> torch.Tensor:
        """(B, R, R, 9) SH basis x Lambert factors of the normals (shading = basis . SH), computed once."""
        return sh.sh_basis(self.normals) * sh.lambert_factors(self.normals.dtype, self.normals.device)

    @cached_property
    def symmetry_weight(self) -> torch.Tensor:
        """(B, R, R) weight of a texel and its mirror agreeing: both on the mesh, either of them seen."""
        return self.coverage * self.coverage.flip(2) * torch.maximum(self.visibility, self.visibility.flip(2))

    @cached_property
    def albedo_share(self) -> torch.Tensor:
        """(B, R, R, 1) share of each texel's photometric weight that the albedo may learn from:
        `visibility` over `light_visibility` (0 where the prior stage kept the texel out of the albedo)."""
        return (self.visibility / self.light_visibility.clamp_min(1e-6)).clamp(0, 1)[..., None]

    @cached_property
    def global_light_colour(self) -> torch.Tensor:
        """(B, 3) colour of the global light: its band-0 coefficients over their mean."""
        ambient = self.sh_global[:, 0, :].abs().clamp_min(1e-6)
        return ambient / ambient.mean(-1, keepdim=True)

    def global_shading(self) -> torch.Tensor:
        """(B, R, R, 3) shading E/pi of the global SH alone."""
        return torch.einsum("bhwk,bkc->bhwc", self.shading_basis, self.sh_global)

    def resized(self, resolution: int) -> "RefineInputs":
        """The same maps at another resolution: area averages weighted by trust, normals renormalised."""
        if resolution == self.resolution:
            return self
        coverage = resample(self.coverage[..., None], resolution)
        visibility = resample(self.visibility[..., None], resolution)
        light_visibility = resample(self.light_visibility[..., None], resolution)
        inside = coverage.clamp_min(1e-6)
        on_mesh = coverage[..., 0] >= 0.5
        return RefineInputs(
            colour=resample(self.colour * self.light_visibility[..., None], resolution)
            / light_visibility.clamp_min(1e-6),
            visibility=(visibility / inside).clamp(0, 1)[..., 0] * on_mesh,
            light_visibility=(light_visibility / inside).clamp(0, 1)[..., 0] * on_mesh,
            normals=F.normalize(resample(self.normals, resolution), dim=-1, eps=1e-6),
            coverage=(coverage[..., 0] >= 0.5).float(),
            completed=resample(self.completed * self.coverage[..., None], resolution) / inside,
            parametric=resample(self.parametric * self.coverage[..., None], resolution) / inside,
            sh_global=self.sh_global,
        )

    def mirrored(self) -> "RefineInputs":
        """The left/right mirror image of the face (a training augmentation): flip u, negate normal x."""
        flip = lambda t: t.flip(2)  # noqa: E731 - column axis of (B, R, R, ...)
        mirror_x = torch.tensor([-1.0, 1.0, 1.0], dtype=self.normals.dtype, device=self.normals.device)
        return RefineInputs(
            colour=flip(self.colour), visibility=flip(self.visibility), light_visibility=flip(self.light_visibility),
            normals=flip(self.normals) * mirror_x, coverage=flip(self.coverage),
            completed=flip(self.completed), parametric=flip(self.parametric),
            sh_global=mirror_sh_x(self.sh_global),
        )


def mirror_sh_x(sh_coefficients: torch.Tensor) -> torch.Tensor:
    """(..., 9, 3) SH of the lighting reflected in x -> -x: the odd-in-x basis functions change sign."""
    sign = torch.tensor([1, 1, 1, -1, -1, 1, 1, -1, 1], dtype=sh_coefficients.dtype,
                        device=sh_coefficients.device)
    return sh_coefficients * sign[:, None]


def resample(maps: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, R, R, C) -> (B, resolution, resolution, C): area average when shrinking, bilinear when growing."""
    channels_first = maps.permute(0, 3, 1, 2)
    if resolution < maps.shape[1]:
        out = F.interpolate(channels_first, size=(resolution, resolution), mode="area")
    else:
        out = F.interpolate(channels_first, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return out.permute(0, 2, 3, 1)


def face_tile_index(tiles: tuple[int, ...]) -> int:
    """Position of the face tile in a value's tile stack."""
    if FACE_TILE not in tiles:
        raise FaceAlbedoError(ErrorCode.USAGE, f"the UV maps hold tiles {tiles}, not the face tile {FACE_TILE}")
    return tiles.index(FACE_TILE)


def face_tile_inputs(uv: UVTexture, prior: PriorAlbedo) -> RefineInputs:
    """The face tile of one photo's unwrap and prior as a batch of 1, at the UV resolution (CPU).

    The photo is trusted for the albedo where the prior stage took it as seen (`source` 1): where it
    judged the texel an outlier (hair, frames, deep cast shadow) and filled it from the mirror or the
    prior, the refinement follows that judgement instead of pulling the outlier back into the albedo.
    Every seen texel still tells the lighting what it looks like (`light_visibility`): a cast shadow
    kept out of the albedo belongs in the detailed illumination map.
    """
    if uv.colour.shape[:3] != prior.completed.shape[:3] or uv.tiles != prior.tiles:
        raise FaceAlbedoError(
            ErrorCode.USAGE,
            f"unwrapped texture {uv.colour.shape[:3]} and prior albedo {prior.completed.shape[:3]} differ in "
            "tiles or resolution: make both from the same unwrap")
    t = face_tile_index(uv.tiles)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]

    return RefineInputs(
        colour=tensor(uv.colour[t]),
        visibility=tensor(np.clip(uv.visibility[t], 0, 1) * uv.coverage[t] * (prior.source[t] == SOURCE_SEEN)),
        light_visibility=tensor(np.clip(uv.visibility[t], 0, 1) * uv.coverage[t]),
        normals=tensor(uv.normals_camera[t]),
        coverage=tensor(uv.coverage[t]),
        completed=tensor(prior.completed[t]),
        parametric=tensor(prior.parametric[t]),
        sh_global=tensor(prior.sh_camera),
    )


def stack_inputs(items: list[RefineInputs]) -> RefineInputs:
    """Concatenate batches of the same resolution into one."""
    return RefineInputs(**{f.name: torch.cat([getattr(i, f.name) for i in items]) for f in fields(RefineInputs)})
