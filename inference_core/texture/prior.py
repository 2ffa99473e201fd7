"""The prior albedo: a globally parameterised albedo fitted jointly with the global SH lighting.

photo colour ~= albedo(coefficients) x shading(normal, SH) over the visible texels, solved by alternating
weighted least squares (albedo coefficients given the light, then the light given the albedo), with
robust (Cauchy) re-weighting so that hair, glasses and cast shadows do not pull the fit, on a
downsampled texel grid (the prior only explains low frequencies). The albedo is linear in its
coefficients: per-region colours (regions.py) or a learned PCA basis (pca.py) when one is available.

Light: one SH shape for all channels in the colour of the fit's light (`solve_light`), so that albedo
colour the parametric model cannot explain stays in the albedo instead of tinting the light; constrained
to non-negative irradiance for every surface orientation, so that it cannot explain albedo by negative
light and Blender's World can stand in for it.

Scale: albedo x light has one global scale ambiguity. It is fixed by keeping the light's peak shading
over the directions that face the camera equal to that of the fit's lighting (`FaceFit.sh_camera`): a
lamp of a given strength gives the same peak wherever it stands, so one lamp moved around (Yale B) gives
one albedo. (The DC term would not do: over the visible hemisphere of normals it trades off against the
z-facing band-1 and band-2 terms, so it does not pin the scale.) Only where that would make the albedo
implausibly bright (above ALBEDO_CEILING) is the light scaled up instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import functools

import cv2
import numpy as np
import torch

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.facemodel import FaceModel
from inference_core.facemodel.regions import ALBEDO_REGIONS
from inference_core.render.sh import AMBIENT_WHITE, fibonacci_sphere, lambert_factors, sh_basis
from inference_core.texture.completion import complete
from inference_core.texture.pca import AlbedoBasis, default_basis_path, load_basis
from inference_core.texture.regions import REGIONS, region_weights
from inference_core.values import UV_TILES, FaceFit, PriorAlbedo, UVTexture


@dataclass(frozen=True)
class PriorSettings:
    """How the prior albedo is parameterised and fitted."""

    basis_path: Path | None = None
    """A learned PCA basis (pca.py). None: `<assets>/prior/albedo_pca.safetensors` when present."""
    use_learned_basis: bool = True
    """False: always per-region colours, even when a learned basis is present."""
    fit_resolution: int = 128
    """Texel grid (per tile side) on which albedo and light are fitted."""
    iterations: int = 8
    """Alternations of albedo and light solves."""
    symmetry: bool = True
    """Fill unseen texels from their mirror texels where those are seen (False: from the prior only)."""


REGION_PRIOR_COLOURS = np.array([
    [0.50, 0.33, 0.26],  # skin
    [0.45, 0.22, 0.20],  # lips
    [0.18, 0.12, 0.09],  # brows
    [0.45, 0.30, 0.24],  # eye area
], dtype=np.float32)
"""Linear-RGB colours each region is pulled towards where the photo says little (rows in REGIONS order)."""
REGION_COLOUR_SPREAD = 0.25
"""Prior standard deviation of a region colour channel: wide, to admit every skin tone."""
FITTED_COLOUR_SPREAD = 0.08
"""Prior standard deviation about the colours the photometric fit measured on the skin."""
FIT_NOISE = 0.03
"""Assumed std of the low-frequency model error (linear colour), weighing the priors against the photo."""
EFFECTIVE_SAMPLES = 200.0
"""The photo's low frequencies count as this many independent observations (texels are correlated)."""
LIGHT_SPREAD = 0.1
"""Prior std of each SH coefficient about the fit's lighting, relative to the DC term. The fit's light
comes from the robust photometric fit over the skin pixels; a much looser prior lets region colours and
fringes pull the light to shine from below (astronaut: from 0.12 up), a much tighter one keeps too little
of a strong side light (Yale B23 de-lit/raw spread 0.67 at 0.08, 0.59 here)."""
ROBUST_SCALE = 0.25
"""Relative residual at which a texel's weight halves (Cauchy re-weighting)."""
ALBEDO_CEILING = 0.6
"""The brightest fitted albedo (99th percentile over the fitted texels, any channel) may be at most this: a
light whose scale would need brighter skin is scaled up instead (measured skin albedo stays below ~0.6 in
linear RGB, and the de-lit photo may be brighter than the prior by AGREEMENT_RATIO without clipping)."""
MIN_FIT_VISIBILITY = 0.2
"""Texels less visible than this (at the fit resolution) do not enter the fit."""
CONSTRAINT_NORMALS = 200
"""Normals, evenly spread, at which the fitted light must give non-negative irradiance."""
NONNEGATIVE_ITERATIONS = 8
PEAK_DIRECTIONS = 400
"""Directions on the camera-facing hemisphere where the light's peak shading is looked for."""


@dataclass(frozen=True)
class LinearAlbedo:
    """albedo = offset + sum_k coefficient_k * components[k], with a Gaussian prior on the coefficients."""

    offset: np.ndarray  # (T, r, r, 3)
    components: np.ndarray  # (K, T, r, r, 3)
    prior_mean: np.ndarray  # (K,)
    prior_std: np.ndarray  # (K,)

    def evaluate(self, coefficients: np.ndarray) -> np.ndarray:
        return self.offset + np.tensordot(coefficients, self.components, axes=1)


def region_albedo(model: FaceModel, resolution: int, fitted_colours: np.ndarray | None = None) -> LinearAlbedo:
    """One colour per region and channel: components (len(REGIONS) * 3, T, r, r, 3).

    fitted_colours: the fit's photometric region colours (FaceFit.albedo_params, rows ALBEDO_REGIONS),
    measured on the skin under the same light; they anchor the regions more tightly than the generic
    colours, so hair, clothing and the neck's shadow cannot pull the skin colour away.
    """
    weights = region_weights(model, resolution)  # (K, T, r, r)
    eye = np.eye(3, dtype=np.float32)
    components = (weights[:, None, ..., None] * eye[None, :, None, None, None, :]).reshape(-1, *weights.shape[1:], 3)
    mean, spread = region_colour_prior(fitted_colours)
    return LinearAlbedo(offset=np.zeros(components.shape[1:], np.float32), components=components,
                        prior_mean=mean.reshape(-1), prior_std=np.full(components.shape[0], spread, np.float32))


def region_colour_prior(fitted_colours: np.ndarray | None) -> tuple[np.ndarray, float]:
    """((len(REGIONS), 3) prior colours, their std): the fit's measured colours when usable, else generic."""
    colours = None if fitted_colours is None else np.asarray(fitted_colours, np.float32)
    if colours is None or colours.shape != (len(ALBEDO_REGIONS), 3) or not np.all(np.isfinite(colours)) \
            or colours.min() <= 0:
        return REGION_PRIOR_COLOURS, REGION_COLOUR_SPREAD
    by_name = dict(zip(ALBEDO_REGIONS, colours))
    by_name.setdefault("eye_area", by_name["skin"])
    return np.stack([by_name[name] for name in REGIONS]), FITTED_COLOUR_SPREAD


def pca_albedo(basis: AlbedoBasis, resolution: int) -> LinearAlbedo:
    """The learned basis resampled to `resolution`."""
    return LinearAlbedo(offset=resize_maps(basis.mean, resolution),
                        components=np.stack([resize_maps(c, resolution) for c in basis.components]),
                        prior_mean=np.zeros(len(basis.stddev), np.float32), prior_std=basis.stddev)


def resize_maps(maps: np.ndarray, resolution: int) -> np.ndarray:
    """(T, R, R, C) maps resized per tile to (T, r, r, C): area averaging down, bilinear up."""
    if maps.shape[1] == resolution:
        return maps.astype(np.float32, copy=False)
    interpolation = cv2.INTER_AREA if resolution < maps.shape[1] else cv2.INTER_LINEAR
    resized = [cv2.resize(np.ascontiguousarray(tile, np.float32), (resolution, resolution),
                          interpolation=interpolation) for tile in maps]
    return np.stack(resized).reshape(len(maps), resolution, resolution, *maps.shape[3:])


@dataclass(frozen=True)
class FitData:
    """The unwrapped texture at the fit resolution, flattened over the texels that enter the fit."""

    texels: np.ndarray  # (M,) flat indices into (T, r, r)
    colour: np.ndarray  # (M, 3) linear photo colour
    weight: np.ndarray  # (M,) visibility
    sh_basis: np.ndarray  # (M, 9) SH basis x Lambert factors of the normals: shading = sh_basis @ sh

    @staticmethod
    def from_texture(uv: UVTexture, resolution: int) -> "FitData":
        visibility = uv.visibility[..., None]
        weight = resize_maps(visibility, resolution)
        colour = resize_maps(uv.colour * visibility, resolution) / np.maximum(weight, 1e-6)
        covered = resize_maps(uv.coverage[..., None].astype(np.float32), resolution)
        normals = resize_maps(uv.normals_camera * uv.coverage[..., None], resolution) / np.maximum(covered, 1e-6)
        face_tile = np.zeros(weight.shape[:3], bool)
        face_tile[0] = True  # the head tile's skin is mostly under hair, collars and the jaw's shadow
        texels = np.nonzero(((weight[..., 0] >= MIN_FIT_VISIBILITY) & face_tile).reshape(-1))[0]
        normals = normals.reshape(-1, 3)[texels].astype(np.float64)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
        basis = (sh_basis(torch.from_numpy(normals)) * lambert_factors(torch.float64)).numpy()
        return FitData(texels=texels, colour=colour.reshape(-1, 3)[texels].astype(np.float64),
                       weight=weight.reshape(-1)[texels].astype(np.float64), sh_basis=basis)


def prior_albedo(uv: UVTexture, fit: FaceFit, model: FaceModel, settings: PriorSettings | None = None) -> PriorAlbedo:
    """Fit the parametric albedo and the global light to the unwrapped photo; complete the de-lit texture."""
    settings = settings or PriorSettings()
    resolution = uv.colour.shape[1]
    fit_resolution = min(settings.fit_resolution, resolution)
    basis = learned_basis(settings)
    albedo_model = (region_albedo(model, fit_resolution, fit.albedo_params) if basis is None
                    else pca_albedo(basis, fit_resolution))
    data = FitData.from_texture(uv, fit_resolution)
    coefficients, sh = fit_albedo_and_light(data, albedo_model, starting_light(fit.sh_camera), settings.iterations)
    if basis is not None:
        parametric = resize_maps(basis.evaluate(coefficients), resolution)
    else:
        parametric = region_albedo_at(model, resolution, coefficients)
    parametric = np.clip(parametric, 0.0, 1.0).astype(np.float32)
    completed, source = complete(uv, parametric, sh, symmetry=settings.symmetry)
    coefficients = np.asarray(coefficients, np.float32)
    return PriorAlbedo(parametric=parametric, completed=completed, source=source, sh_camera=sh.astype(np.float32),
                       kind="regions" if basis is None else "pca",
                       coefficients=coefficients.reshape(len(REGIONS), 3) if basis is None else coefficients,
                       tiles=uv.tiles)


def region_albedo_at(model: FaceModel, resolution: int, coefficients: np.ndarray) -> np.ndarray:
    """(T, R, R, 3) albedo of region colours (len(REGIONS) * 3 coefficients) at `resolution`."""
    colours = np.asarray(coefficients, np.float32).reshape(len(REGIONS), 3)
    return np.tensordot(region_weights(model, resolution), colours, axes=([0], [0]))


def learned_basis(settings: PriorSettings) -> AlbedoBasis | None:
    """The PCA basis named by the settings, else the assets folder's, else None (region colours)."""
    if not settings.use_learned_basis:
        return None
    path = settings.basis_path or default_basis_path()
    if path is None:
        return None
    basis = load_basis(path)
    if tuple(basis.tiles) != UV_TILES:
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"albedo basis {path} covers tiles {basis.tiles}, not "
                              f"{UV_TILES}; build it again with `facealbedo prior build`")
    return basis


def starting_light(sh_camera: np.ndarray) -> np.ndarray:
    """(9, 3) the fit's lighting, or a uniform white light where the fit gives none with positive energy."""
    sh = np.asarray(sh_camera, np.float64)
    if sh.shape == (9, 3) and np.all(np.isfinite(sh)) and peak_shading(sh).min() > 1e-6:
        return sh.copy()
    light = np.zeros((9, 3))
    light[0] = AMBIENT_WHITE
    return light


def fit_albedo_and_light(data: FitData, albedo: LinearAlbedo, sh_start: np.ndarray,
                         iterations: int = PriorSettings.iterations) -> tuple[np.ndarray, np.ndarray]:
    """Alternating robust weighted least squares: ((K,) albedo coefficients, (9, 3) SH radiance).

    The light's peak shading per channel stays that of `sh_start` (the scale and colour convention, see the module docstring)
    unless the albedo would then exceed ALBEDO_CEILING; the last step is an albedo solve, so the returned
    pair is consistent.
    """
    components = albedo.components.reshape(len(albedo.components), -1, 3)[:, data.texels].transpose(1, 0, 2)
    offset = albedo.offset.reshape(-1, 3)[data.texels].astype(np.float64)  # (M, 3)
    components = components.astype(np.float64)  # (M, K, 3)
    target_peak = peak_shading(sh_start)
    sh, weight = sh_start.copy(), data.weight.copy()
    coefficients = albedo.prior_mean.astype(np.float64)
    texel_albedo = offset + np.einsum("mkc,k->mc", components, coefficients)
    for _ in range(iterations):
        coefficients = solve_albedo(data, components, offset, sh, weight, albedo)
        texel_albedo = offset + np.einsum("mkc,k->mc", components, coefficients)
        sh = solve_light(data, texel_albedo, weight, sh_start)
        sh *= target_peak / np.maximum(peak_shading(sh), 1e-6 * target_peak)
        weight = data.weight * robust_weight(data.colour, texel_albedo * (data.sh_basis @ sh))
    brightest = float(np.percentile(texel_albedo, 99)) if len(texel_albedo) else 0.0
    sh *= max(1.0, brightest / ALBEDO_CEILING)
    coefficients = solve_albedo(data, components, offset, sh, weight, albedo)
    return coefficients, sh


def camera_facing_directions(count: int = PEAK_DIRECTIONS) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the hemisphere facing the camera (z < 0)."""
    directions = fibonacci_sphere(2 * count)
    return directions[directions[:, 2] < 0]


def peak_shading(sh: np.ndarray) -> np.ndarray:
    """(3,) largest shading E/pi per colour channel under SH radiance `sh` (9, 3) over camera-facing normals.

    Kept per channel, so the light's colour stays the fit's: albedo x light is ambiguous per channel, and
    left free the light drifts to a strong tint that the albedo then cancels with the opposite one.
    """
    directions = torch.from_numpy(camera_facing_directions())
    basis = (sh_basis(directions) * lambert_factors(torch.float64)).numpy()
    return (basis @ sh).max(0)


def robust_weight(observed: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(M,) Cauchy weights of the relative residual: 1 for a perfect fit, 1/2 at ROBUST_SCALE."""
    relative = np.abs(observed - predicted).mean(1) / np.maximum(predicted.mean(1), 1e-3)
    return 1.0 / (1.0 + (relative / ROBUST_SCALE) ** 2)


def solve_albedo(data: FitData, components: np.ndarray, offset: np.ndarray, sh: np.ndarray, weight: np.ndarray,
                 albedo: LinearAlbedo) -> np.ndarray:
    """(K,) coefficients minimising the weighted photo residual under light `sh`, plus their prior."""
    shading = data.sh_basis @ sh  # (M, 3)
    design = components * shading[:, None, :]  # (M, K, 3)
    residual = data.colour - offset * shading
    scale = EFFECTIVE_SAMPLES / max(weight.sum(), 1e-9)
    precision = (FIT_NOISE / albedo.prior_std.astype(np.float64)) ** 2
    normal = scale * np.einsum("m,mkc,mlc->kl", weight, design, design) + np.diag(precision)
    rhs = scale * np.einsum("m,mkc,mc->k", weight, design, residual) + precision * albedo.prior_mean
    return np.linalg.solve(normal, rhs)


def solve_light(data: FitData, texel_albedo: np.ndarray, weight: np.ndarray, sh_start: np.ndarray) -> np.ndarray:
    """(9, 3) SH radiance minimising the weighted photo residual for a fixed albedo, pulled to `sh_start`.

    One light shape for all channels, in the colour of `sh_start` (`light_colour`): solved per channel,
    a channel whose albedo the parametric model cannot explain drifts to a shape of its own, tinting the
    shading wherever the light is not at its peak (and the albedo the opposite way).
    Constrained so that no surface orientation receives negative irradiance (a light that darkens is not
    a light; it would also make the albedo absorb the difference and the World map unable to show it):
    violated normals are added as stiff penalty rows until none is left (a small active-set loop).
    """
    colour = light_colour(sh_start)  # (3,)
    design = data.sh_basis[:, None, :] * (texel_albedo * colour)[:, :, None]  # (M, 3, 9)
    start_shape = (sh_start / colour).mean(1)  # (9,)
    scale = EFFECTIVE_SAMPLES / max(weight.sum(), 1e-9)
    spread = LIGHT_SPREAD * max(abs(start_shape[0]), 1e-6)
    ridge = 3 * (FIT_NOISE / spread) ** 2 * np.eye(9)  # three channels of evidence about one shape
    normal = scale * np.einsum("m,mci,mcj->ij", weight, design, design) + ridge  # (9, 9)
    rhs = scale * np.einsum("m,mci,mc->i", weight, design, data.colour) + ridge @ start_shape  # (9,)
    constraint = irradiance_basis()  # (N, 9): shading E/pi at evenly spread normals
    stiffness = 1e4 * np.trace(normal) / len(constraint)
    active = np.zeros(len(constraint), bool)
    for _ in range(NONNEGATIVE_ITERATIONS):
        penalty = constraint[active].T @ constraint[active]
        shape = np.linalg.solve(normal + stiffness * penalty, rhs)  # (9,)
        violated = (constraint @ shape) < -1e-6 * abs(shape[0])
        if not (violated & ~active).any():
            break
        active |= violated
    return shape[:, None] * colour[None, :]


def light_colour(sh: np.ndarray) -> np.ndarray:
    """(3,) the colour of SH radiance `sh` (9, 3): its ambient (band-0) terms over their mean (1, 1, 1 if grey)."""
    ambient = np.maximum(np.abs(np.asarray(sh, np.float64)[0]), 1e-9)
    return ambient / ambient.mean()


@functools.lru_cache(maxsize=1)
def irradiance_basis() -> np.ndarray:
    """(N, 9) factors that turn SH radiance into shading E/pi at evenly spread normals."""
    normals = torch.from_numpy(fibonacci_sphere(CONSTRAINT_NORMALS))
    return (sh_basis(normals) * lambert_factors(torch.float64)).numpy()
