"""The losses of the detail refinement: one re-rendering term and the regularisers that keep albedo and
illumination apart (Yang et al. 2021, sec. "detail refinement"; no ground-truth reflectance anywhere).

The unknowns are a per-texel albedo log-ratio to the prior-stage albedo, `log_ratio` (B, R, R, 3), and
the relative SH residual grid of `illumination` (B, g, g, 9, 3). The re-render albedo x shading must
match the photo where it was seen; among the many splits that do, the regularisers pick the one whose
illumination is smooth and close to the global SH and whose albedo keeps the prior's colour and
low frequencies, is left/right symmetric and has sparse (sharp) gradients. Test-time optimisation
(`optimise.py`) and network training (`train/`) minimise the same `refinement_loss`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from inference_core.photo import LUMINANCE
from inference_core.refine.illumination import texel_shading
from inference_core.refine.inputs import RefineInputs
from inference_core.refine.settings import LossWeights

LOG_EPS = 1e-3  # keeps logarithms of dark albedo finite
MAX_LOG_RATIO = 2.0  # the refined albedo stays within e^-2 .. e^2 of the prior's


def charbonnier(x: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Robust penalty: quadratic below `eps`, absolute value above (outliers such as moles pass)."""
    return torch.sqrt(x * x + eps * eps) - eps


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of (B, R, R) or (B, R, R, C) values under (B, R, R) weights (0 when all weights are 0)."""
    if values.dim() == weight.dim() + 1:
        values = values.mean(-1)
    return (values * weight).sum() / weight.sum().clamp_min(1e-6)


def refined_albedo(inputs: RefineInputs, log_ratio: torch.Tensor) -> torch.Tensor:
    """(B, R, R, 3) albedo: the prior-stage albedo times exp(log_ratio), the ratio bounded."""
    return inputs.completed * torch.exp(log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))


def photometric(inputs: RefineInputs, albedo: torch.Tensor, shading: torch.Tensor) -> torch.Tensor:
    """Robust re-rendering error on the texels seen in the photo, weighted by their trust for the lighting.

    The albedo learns only from the share of each texel's weight that the albedo may trust (`visibility`
    of `light_visibility`): texels the prior stage kept out of the albedo (cast shadows, hair) shape the
    illumination alone.
    """
    share = inputs.albedo_share
    albedo = share * albedo + (1 - share) * albedo.detach()  # same values, scaled gradient
    return weighted_mean(charbonnier(inputs.colour - albedo * shading), inputs.light_visibility)


def illumination_colour(grid: torch.Tensor, light_colour: torch.Tensor) -> torch.Tensor:
    """Robust (L1-like) tint of the residual grid (B, g, g, 9, 3) against the global light's colour (B, 3).

    A residual in the global light's own colour (each channel in proportion to its band-0 coefficient)
    dims or brightens the light; any other mixture tints it. L1-like, so that small tints cost as much as
    the photometric error they would remove.
    """
    in_light_colour = grid / light_colour[:, None, None, None, :]
    return charbonnier(in_light_colour - in_light_colour.mean(-1, keepdim=True), 0.01).mean()


def illumination_smoothness(grid: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring residual-grid cells (B, g, g, 9, 3)."""
    dy = grid[:, 1:] - grid[:, :-1]
    dx = grid[:, :, 1:] - grid[:, :, :-1]
    return dy.square().mean() + dx.square().mean()


def illumination_residual(grid: torch.Tensor) -> torch.Tensor:
    """Robust (L1-like) size of the relative residual: the global SH explains the lighting almost
    everywhere, the residual only where it cannot (cast shadows, occlusion, local light)."""
    return charbonnier(grid, 0.01).mean()


def chromaticity(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3) colour with the brightness divided out (r, g, b summing to 1)."""
    return rgb / (rgb.sum(-1, keepdim=True) + LOG_EPS)


def albedo_chromaticity(albedo: torch.Tensor, reference: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Per-texel chromaticity of the albedo against the prior's: lighting changes brightness, not hue."""
    return weighted_mean(charbonnier(chromaticity(albedo) - chromaticity(reference), 1e-3), coverage)


def masked_pool(values: torch.Tensor, weight: torch.Tensor, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted area averages of (B, R, R) values over (cells x cells) blocks -> (averages, block weights)."""
    pooled_weight = F.adaptive_avg_pool2d(weight[:, None], cells)[:, 0]
    pooled = F.adaptive_avg_pool2d((values * weight)[:, None], cells)[:, 0] / pooled_weight.clamp_min(1e-6)
    return pooled, pooled_weight


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ torch.tensor(LUMINANCE, dtype=rgb.dtype, device=rgb.device)


def albedo_low_frequency(albedo: torch.Tensor, parametric: torch.Tensor, coverage: torch.Tensor,
                         cells: int) -> torch.Tensor:
    """Squared log difference of block-averaged brightness: the prior carries the albedo's low frequencies.

    Only the pattern is compared, not the overall level (each photo's mean log difference is removed):
    the level belongs to the global lighting, which the illumination residual term keeps.
    """
    ours, weight = masked_pool(luminance(albedo), coverage, cells)
    prior, _ = masked_pool(luminance(parametric), coverage, cells)
    difference = torch.log(ours + LOG_EPS) - torch.log(prior + LOG_EPS)
    level = (difference * weight).sum((1, 2), keepdim=True) / weight.sum((1, 2), keepdim=True).clamp_min(1e-6)
    return weighted_mean((difference - level).square(), weight)


def albedo_symmetry(albedo: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Robust log difference between each texel and its mirror (u -> 1-u) under (B, R, R) pair weights."""
    log_albedo = torch.log(albedo + LOG_EPS)
    return weighted_mean(charbonnier(log_albedo - log_albedo.flip(2), 0.05), weight)


def albedo_gradient_sparsity(albedo: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Robust L1 of log-albedo finite differences on the mesh: few, sharp edges rather than gradients."""
    log_albedo = torch.log(albedo + LOG_EPS)
    dy = charbonnier(log_albedo[:, 1:] - log_albedo[:, :-1], 1e-3).mean(-1)
    dx = charbonnier(log_albedo[:, :, 1:] - log_albedo[:, :, :-1], 1e-3).mean(-1)
    return (weighted_mean(dy, coverage[:, 1:] * coverage[:, :-1])
            + weighted_mean(dx, coverage[:, :, 1:] * coverage[:, :, :-1]))


def ratio_smoothness(log_ratio: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Mean squared finite differences of the albedo's log-ratio to the prior on the mesh.

    The prior-stage albedo already holds the photo's detail; the refinement changes it smoothly (taking
    out lighting) and adds its own detail only where the photo insists, so a texel seen at a grazing
    angle or half-trusted cannot copy the photo's lighting-dependent noise into the albedo.
    """
    dy = (log_ratio[:, 1:] - log_ratio[:, :-1]).square().sum(-1)
    dx = (log_ratio[:, :, 1:] - log_ratio[:, :, :-1]).square().sum(-1)
    return (weighted_mean(dy, coverage[:, 1:] * coverage[:, :-1])
            + weighted_mean(dx, coverage[:, :, 1:] * coverage[:, :, :-1]))


def refinement_loss(inputs: RefineInputs, log_ratio: torch.Tensor, grid: torch.Tensor, weights: LossWeights,
                    low_frequency_cells: int = 32) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted sum of every term and the terms themselves (unweighted), for one batch."""
    albedo = refined_albedo(inputs, log_ratio)
    terms = {
        "photometric": photometric(inputs, albedo, texel_shading(inputs.shading_basis, inputs.sh_global, grid)),
        "illumination_smoothness": illumination_smoothness(grid),
        "illumination_residual": illumination_residual(grid),
        "illumination_colour": illumination_colour(grid, inputs.global_light_colour),
        "albedo_chromaticity": albedo_chromaticity(albedo, inputs.completed, inputs.coverage),
        "albedo_low_frequency": albedo_low_frequency(albedo, inputs.parametric, inputs.coverage,
                                                     low_frequency_cells),
        "albedo_symmetry": albedo_symmetry(albedo, inputs.symmetry_weight),
        "albedo_gradient_sparsity": albedo_gradient_sparsity(albedo, inputs.coverage),
        "albedo_ratio_smoothness": ratio_smoothness(log_ratio, inputs.coverage),
    }
    weight_of = weights.as_dict()
    total = sum(weight_of[name] * term for name, term in terms.items() if weight_of[name] > 0)
    return total, terms
