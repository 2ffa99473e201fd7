"""Priors on the fit's unknowns: keep shape, expression, focal length, albedo and lighting plausible."""
from __future__ import annotations


import torch

from inference_core.fitting.parameters import FitParameters
from inference_core.fitting.settings import FitSettings
from inference_core.render.sh import AMBIENT_WHITE, fibonacci_sphere, shading

SPHERE_SAMPLES = 256


def sphere_directions(samples: int = SPHERE_SAMPLES, device: torch.device | str | None = None) -> torch.Tensor:
    """(samples, 3) float32 unit vectors spread evenly over the sphere (Fibonacci spiral)."""
    return torch.from_numpy(fibonacci_sphere(samples)).to(device=device, dtype=torch.float32)


def negative_shading(sh: torch.Tensor) -> torch.Tensor:
    """Mean squared negative part of the shading E/pi over all directions: 0 for any physical light."""
    return torch.relu(-shading(sphere_directions(device=sh.device), sh)).pow(2).mean() * 100.0


def make_shading_nonnegative_(sh: torch.Tensor) -> None:
    """Raise the ambient coefficient (in place) until no direction receives negative light."""
    with torch.no_grad():
        lowest = shading(sphere_directions(device=sh.device), sh).amin(0)  # (3,)
        sh[0] += torch.relu(-lowest) * AMBIENT_WHITE  # the ambient term's shading is c0 * Y00


def prior_terms(params: FitParameters, settings: FitSettings, albedo_reference: torch.Tensor | None
                ) -> dict[str, tuple[float, torch.Tensor]]:
    """Named (weight, value) prior terms.

    identity: sum of squared coefficients (they are ~N(0, 1)); expression: sum of squared weights
    (neutral unless the landmarks say otherwise); focal: squared log focal ratio over its sigma;
    albedo: squared distance of the region colours from `albedo_reference` (k, 3) (the albedo-lighting
    scale is ambiguous, so the albedo stays near the first estimate); albedo scale: squared log ratio of
    the skin's brightness to the first estimate's (the photo cannot tell that scale, so the first
    estimate's convention holds, see PhotometricTerm.initialise_appearance); lighting: energy of the non-ambient
    SH coefficients relative to the ambient one (no wild lights to explain hair or shadows), plus any
    negative light (a physical environment lights every direction with >= 0); light colour: each colour
    channel's SH apart from the channels' mean, relative to the ambient term (the photo's colour cast
    goes to the albedo unless the photo insists).
    """
    terms = {
        "identity_prior": (settings.identity_prior_weight, params.identity.pow(2).sum()),
        "expression_prior": (settings.expression_prior_weight, params.expression.pow(2).sum()),
        "focal_prior": (1.0, (params.log_focal_ratio / settings.focal_prior_sigma).pow(2)),
    }
    if albedo_reference is not None:
        terms["albedo_prior"] = (settings.albedo_prior_weight, (params.albedo - albedo_reference).pow(2).sum())
        scale = params.albedo[0].mean() / albedo_reference[0].mean().clamp_min(1e-4)
        terms["albedo_scale_prior"] = (settings.albedo_scale_weight, scale.log().pow(2))
        ambient = params.sh[0].detach().abs().mean().clamp_min(1e-3)
        directional = (params.sh[1:] / ambient).pow(2).sum()
        terms["lighting_prior"] = (settings.lighting_prior_weight, directional + negative_shading(params.sh))
        tint = params.sh - params.sh.mean(dim=1, keepdim=True)
        terms["light_colour_prior"] = (settings.light_colour_weight, (tint / ambient).pow(2).sum())
    return terms
