"""The robust photometric term: the skin re-rendered (region albedo x SH shading) against a face crop.

The face is rendered into a small square crop of the photo (FitSettings.crop_size_px) so that each
step costs milliseconds. The residual of each skin pixel is scored by Geman-McClure; its weights are
recomputed every few steps (iteratively reweighted least squares), so pixels the model cannot explain
(hair, glasses, hands, hard shadows) fade out of the fit. The last weights are FaceFit.inlier_weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from inference_core.facemodel import FaceModel
from inference_core.facemodel.geometry import vertex_normals
from inference_core.facemodel.regions import albedo_regions
from inference_core.fitting.parameters import FitParameters, MorphableSubset, View
from inference_core.fitting.priors import make_shading_nonnegative_
from inference_core.fitting.settings import FitSettings
from inference_core.photo import LUMINANCE
from inference_core.render.interpolate import barycentrics, interpolate
from inference_core.render.rasterize import Fragments, rasterize
from inference_core.render.sh import lambert_factors, sh_basis, shading
from inference_core.values import Photo

RENDERED_PARTS = ("face", "head_neck", "eyeball_left", "eyeball_right")
"""Parts drawn into the z-buffer: the skin, and the eyes that fill its eye holes (they occlude skin)."""
PHOTOMETRIC_PARTS = ("narrow_face",)
"""Parts whose pixels the photometric term compares: the face without its sides (hair, ears, neck)."""
MASK_PARTS = ("face",)
"""Parts whose visible pixels make FaceFit.face_mask."""
CHEEK_LANDMARKS = ((1, 2, 3, 48, 31, 40, 41, 36), (15, 14, 13, 54, 35, 47, 46, 45))
"""Outlines of the two cheeks (iBUG indices): skin that hair, glasses and beards cover least often, where
the skin colour and the first lighting are measured before the rest of the face is trusted."""
INITIAL_SCALE_FACTORS = (4.0, 2.0, 1.0)
"""Robust scales (x robust_scale) of the reweighted least-squares rounds that start lighting and albedo."""
SH_RIDGE = (0.0, 0.05, 0.05, 0.05, 0.2, 0.2, 0.2, 0.2, 0.2)
"""Relative ridge on each SH coefficient in the first lighting solve: free ambient, mild directional
light, stronger damping of band 2, so that a skin patch cannot be explained by a wild rim light."""
CROP_MARGIN = 1.7
"""Crop side in units of the landmark box's longer side: the whole face with the forehead."""
CROP_LIFT = 0.12
"""Crop centre above the landmark box centre, in units of its height (the forehead has no landmarks)."""
BRIGHT_SKIN_QUANTILE = 0.9
"""Quantile of the skin pixels' luminance that stands for the best-lit skin (above it: highlights)."""
BRIGHT_SKIN_SHARE = 0.8
"""The starting skin albedo's luminance as a share of the best-lit skin's (frontal light: about the median)."""
MAX_INLIER_CROP_PX = 480
"""Largest side of the crop in which the final robust weights are rendered over the whole face mask."""


class RenderMesh:
    """The rendered parts of the head as a compact mesh: its vertex ids and re-indexed triangles."""

    def __init__(self, model: FaceModel, device: str):
        triangle_ids = model.part_triangles(*RENDERED_PARTS)
        triangles = model.triangles[triangle_ids]
        self.vertex_ids, compact = np.unique(triangles, return_inverse=True)
        self.triangles = torch.tensor(compact.reshape(-1, 3), device=device)
        skin = np.isin(triangle_ids, model.part_triangles(*PHOTOMETRIC_PARTS))
        self.is_skin = torch.tensor(skin, device=device)  # (F,) per rendered triangle
        self.is_face = torch.tensor(np.isin(triangle_ids, model.part_triangles(*MASK_PARTS)), device=device)

    def skin_pixels(self, fragments: Fragments, whole_face: bool = False) -> torch.Tensor:
        """(H, W) bool: pixels whose visible triangle is skin (of the whole face part with `whole_face`)."""
        tri = fragments.triangle_id
        return (tri >= 0) & (self.is_face if whole_face else self.is_skin)[tri.clamp_min(0)]


@dataclass(frozen=True)
class Rendering:
    """The rendered crop: all (S, S, C) tensors; colour and albedo linear RGB, normals camera space."""

    colour: torch.Tensor  # (S, S, 3) albedo x shading
    regions: torch.Tensor  # (S, S, k) albedo region weights
    normals: torch.Tensor  # (S, S, 3) unit
    skin: torch.Tensor  # (S, S) bool, skin pixels inside the photo


def face_mask_at(verts_cm: np.ndarray, model: FaceModel, view: View, image_size: tuple[int, int],
                 device: str) -> np.ndarray:
    """(H, W) bool: pixels of an image of `image_size` where the fitted face skin is visible."""
    mesh = RenderMesh(model, device)
    verts = torch.tensor(verts_cm[mesh.vertex_ids], device=device)
    fragments = rasterize(view.screen(verts), mesh.triangles, image_size)
    return mesh.skin_pixels(fragments, whole_face=True).cpu().numpy()


def _crop_box(points_px: np.ndarray) -> tuple[int, int, int]:
    """(x0, y0, side) of the square crop around the landmarks, integer pixels."""
    low, high = points_px.min(0), points_px.max(0)
    size = high - low
    centre = (low + high) / 2 - np.array([0.0, CROP_LIFT * size[1]])
    side = int(np.ceil(CROP_MARGIN * size.max()))
    x0, y0 = np.round(centre - side / 2).astype(int)
    return int(x0), int(y0), side


def _covering_box(mask: np.ndarray) -> tuple[int, int, int] | None:
    """(x0, y0, side) of the square around the True pixels of a (H, W) mask, None if it has none."""
    rows, columns = np.nonzero(mask)
    if not len(rows):
        return None
    low, high = np.array([columns.min(), rows.min()]), np.array([columns.max(), rows.max()]) + 1
    side = int((high - low).max())
    x0, y0 = np.round((low + high) / 2 - side / 2).astype(int)
    return int(x0), int(y0), side


@dataclass(frozen=True)
class Crop:
    """A square of the photo, (x0, y0) to (x0 + side, y0 + side) in photo pixels, resampled to size x size."""

    x0: int
    y0: int
    side: int
    size: int
    image: torch.Tensor  # (size, size, 3) linear RGB, 0 outside the photo
    in_photo: torch.Tensor  # (size, size) bool: pixels wholly inside the photo

    @staticmethod
    def of(photo_image: np.ndarray, box: tuple[int, int, int], size: int, device: str) -> "Crop":
        """The (x0, y0, side) square of the (H, W, 3) photo, area-averaged to size x size pixels."""
        x0, y0, side = box
        inside = _cut(np.ones(photo_image.shape[:2], np.float32), x0, y0, side)
        resize = lambda image: cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)  # noqa: E731
        return Crop(x0=x0, y0=y0, side=side, size=size,
                    image=torch.tensor(resize(_cut(photo_image, x0, y0, side)), device=device),
                    in_photo=torch.tensor(resize(inside) > 0.99, device=device))

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return self.size / self.side

    def to_photo(self, values: np.ndarray, image_size: tuple[int, int], fill: float) -> np.ndarray:
        """(H, W) float32 photo-pixel map of (size, size) crop values; `fill` where the crop does not reach."""
        resampled = cv2.resize(values.astype(np.float32), (self.side, self.side), interpolation=cv2.INTER_LINEAR)
        width, height = image_size
        out = np.full((height, width), fill, np.float32)
        xs, ys = max(self.x0, 0), max(self.y0, 0)
        xe, ye = min(self.x0 + self.side, width), min(self.y0 + self.side, height)
        if xe > xs and ye > ys:
            out[ys:ye, xs:xe] = resampled[ys - self.y0:ye - self.y0, xs - self.x0:xe - self.x0]
        return out


def _cut(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """image[y0:y0+side, x0:x0+side] with zeros where the square leaves the image."""
    height, width = image.shape[:2]
    out = np.zeros((side, side) + image.shape[2:], image.dtype)
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + side, width), min(y0 + side, height)
    if xe > xs and ye > ys:
        out[ys - y0:ye - y0, xs - x0:xe - x0] = image[ys:ye, xs:xe]
    return out


def _cheek_mask(landmarks_px: np.ndarray, origin_px: tuple[int, int], scale: float, size: int) -> np.ndarray:
    """(size, size) bool: the cheek polygons of CHEEK_LANDMARKS in the crop's pixels."""
    crop_points = (landmarks_px - np.array(origin_px) + 0.5) * scale - 0.5
    canvas = np.zeros((size, size), np.uint8)
    polygons = [np.round(crop_points[list(ids)]).astype(np.int32) for ids in CHEEK_LANDMARKS]
    cv2.fillPoly(canvas, polygons, 1)
    return canvas.astype(bool)


class PhotometricTerm:
    """Renders the skin into the face crop and scores it against the photo robustly."""

    def __init__(self, photo: Photo, landmarks_px: np.ndarray, model: FaceModel, settings: FitSettings,
                 device: str):
        self.settings = settings
        self.photo_image = photo.image_linear
        self.device = device
        size = settings.crop_size_px
        self.crop = Crop.of(photo.image_linear, _crop_box(landmarks_px), size, device)
        self.cheeks = torch.tensor(_cheek_mask(landmarks_px, (self.crop.x0, self.crop.y0), self.crop.scale, size),
                                   device=device)
        self.mesh = RenderMesh(model, device)
        self.shape = MorphableSubset(model, self.mesh.vertex_ids, settings.identity_modes, device)
        self.region_weights = torch.tensor(albedo_regions(model)[self.mesh.vertex_ids], device=device)  # (S, k)
        self.weights = torch.ones(size, size, device=device)  # IRLS weights per crop pixel
        self.calls = 0
        # Geman-McClure scale in linear RGB; initialise_appearance() sets it relative to the skin colour.
        self.sigma = settings.robust_scale * 0.5
        self.last_robust_value = float("nan")

    def render(self, params: FitParameters, view: View, whole_face: bool = False,
               crop: Crop | None = None) -> Rendering:
        """The skin in the crop (the term's own unless given) under the current parameters (differentiable).

        `skin` covers the compared parts (PHOTOMETRIC_PARTS), or with `whole_face` the whole face mask.
        """
        crop = crop or self.crop
        crop_view = view.cropped(crop.scale, (crop.x0, crop.y0))
        verts = self.shape.vertices(params)
        screen = crop_view.screen(verts)
        fragments = rasterize(screen, self.mesh.triangles, (crop.size, crop.size))
        bary = barycentrics(screen, self.mesh.triangles, fragments)
        normals = vertex_normals(verts, self.mesh.triangles) @ crop_view.rotation.T
        pixels = interpolate(torch.cat([normals, self.region_weights], dim=1), self.mesh.triangles, fragments, bary)
        pixel_normals = torch.nn.functional.normalize(pixels[..., :3], dim=-1, eps=1e-9)
        regions = pixels[..., 3:]
        colour = (regions @ params.albedo) * shading(pixel_normals, params.sh)
        skin = self.mesh.skin_pixels(fragments, whole_face) & crop.in_photo
        return Rendering(colour=colour, regions=regions, normals=pixel_normals, skin=skin)

    def _residual2(self, colour: torch.Tensor, crop: Crop | None = None) -> torch.Tensor:
        """(S, S) squared RGB distance to the photo's crop (the term's own unless given)."""
        return (colour - (crop or self.crop).image).pow(2).sum(-1)

    def _robust_weights(self, residual2: torch.Tensor, scale_factor: float = 1.0) -> torch.Tensor:
        """Geman-McClure IRLS weights sigma^4 / (r^2 + sigma^2)^2 in (0, 1], or 1 without `robust`."""
        if not self.settings.robust:
            return torch.ones_like(residual2)
        sigma2 = (scale_factor * self.sigma) ** 2
        return (sigma2 / (residual2 + sigma2)).pow(2)

    def _outlier_weights(self, residual2: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
        """(S, S) IRLS weights averaged over skin neighbourhoods of `weight_smoothing_px`.

        Outliers (hair, glasses, a hand) come in regions while skin texture that the smooth albedo
        cannot explain comes in specks; averaging keeps the first and forgives the second.
        """
        weights = self._robust_weights(residual2)
        size = self.settings.weight_smoothing_px
        if size <= 1:
            return weights
        mask = skin.to(weights.dtype)
        stacked = torch.stack([weights * mask, mask])[:, None]  # (2, 1, S, S)
        pooled = torch.nn.functional.avg_pool2d(stacked, size, stride=1, padding=size // 2)
        return (pooled[0, 0] / pooled[1, 0].clamp_min(1e-6)).clamp(0.0, 1.0)

    def loss(self, params: FitParameters, view: View) -> torch.Tensor:
        """IRLS objective: weighted mean squared skin residual in units of sigma^2 (see `sigma`).

        The weights are refreshed every `reweight_every` calls, so between refreshes this is a weighted
        least-squares problem whose gradient equals the Geman-McClure one at the refresh point.
        """
        rendering = self.render(params, view)
        residual2 = self._residual2(rendering.colour)
        if self.calls % self.settings.reweight_every == 0:
            self.weights = self._outlier_weights(residual2.detach(), rendering.skin)
        self.calls += 1
        weights = self.weights * rendering.skin
        self.last_robust_value = float(self.robust_value(residual2.detach(), rendering.skin))
        return (weights * residual2).sum() / (self.sigma ** 2 * rendering.skin.sum().clamp_min(1))

    def robust_value(self, residual2: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
        """Mean Geman-McClure cost r^2 / (r^2 + sigma^2) over the skin pixels (mean r^2 / sigma^2 if not robust)."""
        sigma2 = self.sigma ** 2
        cost = residual2 / (residual2 + sigma2) if self.settings.robust else residual2 / sigma2
        return (cost * skin).sum() / skin.sum().clamp_min(1)

    def initialise_appearance(self, params: FitParameters, view: View) -> None:
        """Closed-form start for lighting and albedo by reweighted least squares with a shrinking scale.

        The albedo-lighting scale is ambiguous: the skin albedo starts at the photo's median skin colour,
        so that the fitted light keeps about the photo's exposure (a white surface facing it is near 1).
        Each round solves one grey SH light for all channels with the albedo fixed (linear; then lifted to
        light no direction negatively: the photo's colour cast starts in the albedo, see
        FitSettings.light_colour_weight), then the lip and brow colours with the shading fixed (linear), weighting
        pixels by Geman-McClure at the round's scale.
        """
        with torch.no_grad():
            rendering = self.render(params, view)
            skin = rendering.skin
            observed = self.crop.image[skin]  # (N, 3)
            if len(observed) < 20:
                return
            cheeks = self.cheeks[skin]
            if int(cheeks.sum()) < 20:
                cheeks = torch.ones_like(cheeks)
            skin_colour = _skin_colour(observed, cheeks)
            params.albedo[:] = skin_colour
            # Residuals scale with exposure: the robust scale is relative to the skin's brightness.
            self.sigma = self.settings.robust_scale * float(skin_colour.norm())
            basis = sh_basis(rendering.normals[skin]) * lambert_factors(device=observed.device)  # (N, 9)
            regions = rendering.regions[skin]  # (N, k)
            weights = cheeks.to(observed.dtype)  # the first round trusts the cheeks only
            for factor in INITIAL_SCALE_FACTORS:
                root_w = weights.sqrt()[:, None]
                pixel_albedo = regions @ params.albedo  # (N, 3)
                design = torch.cat([basis * pixel_albedo[:, channel:channel + 1] for channel in range(3)])
                grey_light = _weighted_lstsq(design, observed.T.reshape(-1), root_w.repeat(3, 1), SH_RIDGE)
                params.sh[:] = grey_light[:, None]
                make_shading_nonnegative_(params.sh)
                shade = basis @ params.sh  # (N, 3)
                for channel in range(3):  # lips and brows; the skin colour stays, it fixes the scale
                    skin_part = regions[:, 0] * shade[:, channel] * params.albedo[0, channel]
                    design = regions[:, 1:] * shade[:, channel:channel + 1]
                    solution = _weighted_lstsq(design, observed[:, channel] - skin_part, root_w)
                    params.albedo[1:, channel] = solution.clamp(0.01, 1.0)
                residual2 = ((regions @ params.albedo) * shade - observed).pow(2).sum(-1)
                weights = self._robust_weights(residual2, factor)

    def inlier_weight_at(self, params: FitParameters, view: View, face_mask: np.ndarray) -> np.ndarray:
        """(H, W) float32: the final robust weights over the face mask (H, W), in the photo's pixels.

        Weighed over the whole face mask, not only the compared parts: the fitted skin colour and light
        also predict the forehead's top, the face's sides and the neck, where hair, hats and collars
        most often lie. They are rendered in a crop that covers the mask, at the fitting crop's pixel size.
        Pixels the rendering leaves out get 1 (no evidence of an outlier); callers multiply by the mask.
        """
        box = _covering_box(face_mask) or (self.crop.x0, self.crop.y0, self.crop.side)
        size = int(np.clip(round(box[2] * self.crop.scale), 8, MAX_INLIER_CROP_PX))
        crop = Crop.of(self.photo_image, box, size, self.device)
        with torch.no_grad():
            rendering = self.render(params, view, whole_face=True, crop=crop)
            weights = self._outlier_weights(self._residual2(rendering.colour, crop), rendering.skin)
            weights = torch.where(rendering.skin, weights, torch.ones_like(weights))
        height, width = face_mask.shape
        return np.clip(crop.to_photo(weights.cpu().numpy(), (width, height), fill=1.0), 0.0, 1.0)


def _skin_colour(observed: torch.Tensor, cheeks: torch.Tensor) -> torch.Tensor:
    """(3,) the starting skin albedo: the cheeks' median colour at the brightness of the best-lit skin.

    The brightness fixes the albedo-light scale. The best-lit skin (a high percentile over all skin
    pixels) is about as bright wherever a lamp stands, while the cheeks' median darkens as the lamp moves
    to the side; scaled to BRIGHT_SKIN_SHARE of the former, one face under lamps from many sides gets
    about one albedo (Yale B), and a frontally lit face about its median skin colour as before.
    """
    weights = torch.tensor(LUMINANCE, dtype=observed.dtype, device=observed.device)
    colour = observed[cheeks].median(dim=0).values.clamp_min(1e-4)
    bright = torch.quantile(observed @ weights, BRIGHT_SKIN_QUANTILE)
    level = BRIGHT_SKIN_SHARE * bright / (colour @ weights).clamp_min(1e-4)
    return (colour * level).clamp(0.02, 0.95)


def _weighted_lstsq(design: torch.Tensor, target: torch.Tensor, root_weights: torch.Tensor,
                    ridge: tuple[float, ...] | None = None) -> torch.Tensor:
    """argmin_x sum_i w_i (design_i . x - target_i)^2 + sum_j ridge_j s x_j^2 for design (N, k), target
    (N,), sqrt(w) (N, 1), with s the mean diagonal of the normal matrix (so ridges are relative).

    Normal equations in float64 with numpy's einsum (plain loops, no BLAS): BLAS/LAPACK kernels may
    round differently from call to call, and the fit must repeat exactly.
    """
    a = (design * root_weights).detach().cpu().numpy().astype(np.float64)
    b = (target[:, None] * root_weights).detach().cpu().numpy().astype(np.float64)[:, 0]
    normal = np.einsum("ni,nj->ij", a, a, optimize=False)
    rhs = np.einsum("ni,n->i", a, b, optimize=False)
    relative = np.full(len(normal), 1e-9) if ridge is None else np.maximum(np.asarray(ridge, np.float64), 1e-9)
    solution = np.linalg.solve(normal + np.diag(relative * np.trace(normal) / len(normal)), rhs)
    return torch.tensor(solution, dtype=design.dtype, device=design.device)
