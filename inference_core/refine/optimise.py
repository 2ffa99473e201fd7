"""`refine()`: the detail refinement stage as test-time optimisation of albedo and illumination map.

The face tile is solved at a working resolution (256 by default): the albedo as a per-texel ratio to
the prior-stage albedo, the illumination as a coarse SH residual grid, both by Adam on
`losses.refinement_loss`, started from zero (the prior as it is) or from the refinement network's
prediction. The result is then brought to the UV resolution without losing detail: the ratio is smooth
where lighting was taken out, so the full-resolution prior albedo times the upsampled ratio keeps every
texel of the photo's detail; the illumination map is smooth by construction and is upsampled exactly.
"""
from __future__ import annotations

import numpy as np
import torch

from inference_core.device import resolve_device
from inference_core.facemodel import FaceModel
from inference_core.progress import ProgressCallback, ignore_progress
from inference_core.refine.illumination import resize_grid, sh_map, texel_shading, zero_grid
from inference_core.refine.inputs import RefineInputs, face_tile_index, face_tile_inputs, resample
from inference_core.refine.losses import MAX_LOG_RATIO, refined_albedo, refinement_loss, weighted_mean
from inference_core.refine.settings import RefineSettings
from inference_core.values import FaceFit, PriorAlbedo, RefinedAlbedo, UVTexture

STAGE = "refine"
HEAD_TILE = 1002


def torch_device(device: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda[:n]' -> a usable torch device (see `device.resolve_device`)."""
    return torch.device(resolve_device(device))


def initial_unknowns(work: RefineInputs, settings: RefineSettings,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(log_ratio (1, r, r, 3), grid (1, g, g, 9, 3)): zeros, or the refinement network's prediction."""
    cells = settings.grid_resolution
    if settings.weights is None:
        return torch.zeros_like(work.colour), zero_grid(1, cells, device)
    from inference_core.refine.network import load_network  # only when weights are asked for

    network = load_network(settings.weights, device)
    with torch.no_grad():
        log_ratio, grid = network(work.resized(network.input_resolution))
    grid = resize_grid(grid, cells) if settings.detailed_illumination else zero_grid(1, cells, device)
    return resample(log_ratio, work.resolution), grid


def optimise(work: RefineInputs, settings: RefineSettings, device: torch.device,
             progress: ProgressCallback) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise the refinement loss over (log_ratio, grid) at the working resolution; returns them detached."""
    log_ratio, grid = initial_unknowns(work, settings, device)
    log_ratio.requires_grad_(True)
    unknowns = [log_ratio]
    if settings.detailed_illumination:
        grid.requires_grad_(True)
        unknowns.append(grid)
    optimiser = torch.optim.Adam(unknowns, lr=settings.learning_rate)
    report_every = max(1, settings.iterations // 20)
    for step in range(settings.iterations):
        optimiser.zero_grad(set_to_none=True)
        loss, _ = refinement_loss(work, log_ratio, grid, settings.loss_weights, settings.low_frequency_resolution)
        loss.backward()
        optimiser.step()
        if step % report_every == 0:
            progress(STAGE, step / settings.iterations, "separating albedo detail from illumination")
    return log_ratio.detach(), grid.detach()


def rerender_error(inputs: RefineInputs, albedo: torch.Tensor, shading: torch.Tensor) -> float:
    """Mean absolute re-render error over the trusted seen texels (visibility-weighted), linear RGB."""
    return float(weighted_mean((inputs.colour - albedo * shading).abs(), inputs.visibility))


def summarise(work: RefineInputs, log_ratio: torch.Tensor, grid: torch.Tensor,
              settings: RefineSettings) -> dict[str, float]:
    """Final loss terms plus the re-render errors of the prior (global SH) and of the refinement."""
    with torch.no_grad():
        total, terms = refinement_loss(work, log_ratio, grid, settings.loss_weights,
                                       settings.low_frequency_resolution)
        figures = {name: float(value) for name, value in terms.items()}
        figures["total"] = float(total)
        figures["rerender_prior"] = rerender_error(work, work.completed, work.global_shading())
        figures["rerender_refined"] = rerender_error(
            work, refined_albedo(work, log_ratio), texel_shading(work.shading_basis, work.sh_global, grid))
    return figures


def full_resolution_albedo(full: RefineInputs, log_ratio: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Face-tile albedo (R, R, 3) at the UV resolution and the ratio (R, R, 3) applied to the prior's."""
    ratio = resample(torch.exp(log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)).cpu(), full.resolution)[0]
    on_mesh = full.coverage[0, ..., None] > 0
    albedo = torch.where(on_mesh, (full.completed[0] * ratio).clamp(0, 1), full.completed[0])
    return albedo.numpy(), ratio.numpy()


def head_tile_gain(full: RefineInputs, ratio: np.ndarray) -> np.ndarray:
    """(3,) median albedo change over the seen face texels: applied to tile 1002 so the tiles still meet."""
    seen = full.visibility[0].numpy() > 0.5
    if not seen.any():
        return np.ones(3, np.float32)
    return np.median(ratio[seen], axis=0).astype(np.float32)


def refine(uv: UVTexture, prior: PriorAlbedo, fit: FaceFit, model: FaceModel,
           settings: RefineSettings | None = None, *, device: str = "cpu",
           progress: ProgressCallback = ignore_progress) -> RefinedAlbedo:
    """Final albedo (every tile) and detailed per-texel SH illumination of the face tile.

    `fit` and `model` complete the stage signature (API.md); the lighting refined is `prior.sh_camera`,
    the global SH that the prior-stage albedo was de-lit with.
    """
    settings = settings or RefineSettings()
    target = torch_device(device)
    full = face_tile_inputs(uv, prior)
    work = full.resized(min(full.resolution, settings.working_resolution)).to(target)
    progress(STAGE, 0.0, "separating albedo detail from illumination")
    log_ratio, grid = optimise(work, settings, target, progress)
    figures = summarise(work, log_ratio, grid, settings)

    face_albedo, ratio = full_resolution_albedo(full, log_ratio)
    albedo = prior.completed.astype(np.float32, copy=True)
    albedo[face_tile_index(prior.tiles)] = face_albedo
    if settings.correct_head_tile and HEAD_TILE in prior.tiles:
        head = prior.tiles.index(HEAD_TILE)
        albedo[head] = np.clip(albedo[head] * head_tile_gain(full, ratio), 0, 1)
    illumination = sh_map(full.sh_global, grid.cpu(), full.resolution)[0]
    progress(STAGE, 1.0, "albedo and illumination map ready")
    return RefinedAlbedo(
        albedo=albedo,
        sh_map=illumination.numpy().astype(np.float32),
        sh_global=prior.sh_camera.astype(np.float32),
        losses=figures,
        tiles=prior.tiles,
    )
