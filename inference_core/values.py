"""The values that flow between the stages (DESIGN.md, "Data flow").

    photo ─load─▶ Photo ─detect─▶ Landmarks ─fit─▶ FaceFit ─unwrap─▶ UVTexture ─prior─▶ PriorAlbedo
          ─refine─▶ RefinedAlbedo (AlbedoMap + IlluminationMap) ─export─▶ result folder

Each is a small frozen dataclass of numpy arrays and plain numbers: no tensors, no hidden state, so a
value can be saved, compared in a test, or handed to another process. They live together here because
they are the contracts between the parts; the stages that make them live in their own packages.

Conventions used by every field below:
- Images are (H, W, C) float32 arrays of *linear* RGB in [0, 1] unless a name says otherwise.
- Pixel coordinates are (x right, y down) with the centre of the top-left pixel at (0, 0) (OpenCV), in
  the pixels of `Photo.image_linear` (the processing resolution) unless a name says otherwise.
- Model space is the ICT-FaceKit frame: centimetres, Y up, the face looking towards +Z.
- Camera space is OpenCV's: x right, y down, z forward (into the scene).
- UV maps are stacked by UDIM tile along the first axis in the order of `UV_TILES`; row 0 of a map is
  v = 1 (the top of the image, as in a PNG), column 0 is u = 0 of the tile.
- Spherical harmonics: real SH bands 0-2, 9 coefficients per colour channel, in the order and basis of
  `render.sh` (the same as lighting.json); coefficients describe incoming *radiance*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

UV_TILES: tuple[int, ...] = (1001, 1002)
"""The UDIM tiles with skin texture: 1001 is the face, 1002 the head and neck."""


@dataclass(frozen=True)
class Photo:
    """A photo ready for processing: EXIF-upright, linear RGB.

    `image_linear` is what detection and fitting see (downscaled when the file is very large);
    `texture_linear` is the same photo at up to `photo.TEXTURE_MAX_SIDE` pixels for texture sampling.
    """

    image_linear: np.ndarray  # (H, W, 3) float32, processing resolution
    texture_linear: np.ndarray  # (H2, W2, 3) float32, same view, resolution >= image_linear's
    original_size: tuple[int, int]  # (width, height) of the upright file, pixels
    path: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of `image_linear`."""
        return int(self.image_linear.shape[1]), int(self.image_linear.shape[0])

    @property
    def processing_scale(self) -> float:
        """Processing pixels per original pixel (1.0 unless the file was downscaled)."""
        return self.image_linear.shape[1] / self.original_size[0]


@dataclass(frozen=True)
class Landmarks:
    """68 facial landmarks in iBUG / Multi-PIE order, on one face of the photo."""

    points: np.ndarray  # (68, 2) float32, processing pixels
    detector: str  # "dlib" or "fan"
    face_box: tuple[float, float, float, float]  # (x0, y0, x1, y1), processing pixels
    confidence: float  # detector score, larger is surer (detector-specific scale)
    face_count: int = 1  # faces found in the photo
    face_index: int = 0  # which of them (0 = the largest)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: OpenCV intrinsics and the model-to-camera rigid transform.

    A model-space point p (cm) lands on pixel (fx*x/z + cx, fy*y/z + cy) with (x, y, z) = R p + t.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    image_size: tuple[int, int]  # (width, height) in pixels that the intrinsics refer to
    rotation: np.ndarray  # (3, 3) float64, model -> camera
    translation_cm: np.ndarray  # (3,) float64

    def scaled(self, factor: float) -> "Camera":
        """The same view for an image resized by `factor` (e.g. back to the original photo)."""
        w, h = self.image_size
        # Pixel centres sit at integers, so the principal point scales about the -0.5 pixel edge.
        return Camera(
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=(self.cx + 0.5) * factor - 0.5,
            cy=(self.cy + 0.5) * factor - 0.5,
            image_size=(round(w * factor), round(h * factor)),
            rotation=self.rotation,
            translation_cm=self.translation_cm,
        )


@dataclass(frozen=True)
class FaceFit:
    """The morphable head fitted to one photo (analysis-by-synthesis)."""

    identity: np.ndarray  # (n_identity,) float32, ~N(0, 1) coefficients
    expression: np.ndarray  # (57,) float32, ICT/ARKit blendshape weights, mostly in [0, 1]
    camera: Camera  # in processing pixels of the photo
    sh_camera: np.ndarray  # (9, 3) float32, global SH radiance, directions in camera space
    albedo_params: np.ndarray  # (k, 3) float32, low-dimensional albedo of the photometric fit
    vertices_cm: np.ndarray  # (n_vertices, 3) float32, full head in model space, shape + expression
    face_mask: np.ndarray  # (H, W) bool, pixels covered by the fitted face skin
    inlier_weight: np.ndarray  # (H, W) float32 in [0, 1]: 0 where the robust photometric loss saw an outlier
    landmarks_2d: np.ndarray  # (68, 2) float32, projected fitted landmarks (jaw on the silhouette)
    residuals: dict[str, float] = field(default_factory=dict)  # per loss term, final values
    history: dict[str, list[float]] = field(default_factory=dict)  # per loss term, over iterations


@dataclass(frozen=True)
class UVTexture:
    """The photo unwrapped into the UV tiles through the fitted mesh, with per-texel confidence."""

    colour: np.ndarray  # (T, R, R, 3) float32 linear photo colour, 0 where unseen
    visibility: np.ndarray  # (T, R, R) float32 in [0, 1]: how much each texel can be trusted
    normals_camera: np.ndarray  # (T, R, R, 3) float32 unit surface normal in camera space (0 off-mesh)
    coverage: np.ndarray  # (T, R, R) bool: texels the mesh covers at all
    tiles: tuple[int, ...] = UV_TILES


@dataclass(frozen=True)
class PriorAlbedo:
    """The prior stage: a globally parameterised albedo and the complete de-lit texture.

    `parametric` is the low-dimensional albedo (region colours or a learned PCA basis) that explains the
    photo's low frequencies together with `sh_camera`; `completed` is the photo divided by the fitted
    shading where seen, completed by symmetry and by `parametric` elsewhere, without seams.
    """

    parametric: np.ndarray  # (T, R, R, 3) float32 linear albedo
    completed: np.ndarray  # (T, R, R, 3) float32 linear albedo, every texel finite and in [0, 1]
    source: np.ndarray  # (T, R, R) uint8: 0 prior, 1 seen in the photo, 2 mirrored from the other side
    sh_camera: np.ndarray  # (9, 3) float32, the global lighting fitted with `parametric`
    kind: str  # "regions" or "pca"
    coefficients: np.ndarray  # the low-dimensional parameters of `parametric`
    tiles: tuple[int, ...] = UV_TILES


@dataclass(frozen=True)
class RefinedAlbedo:
    """The detail refinement module's output: final albedo and detailed per-texel illumination."""

    albedo: np.ndarray  # (T, R, R, 3) float32 linear, complete, in [0, 1]
    sh_map: np.ndarray  # (R, R, 9, 3) float32, per-texel SH radiance of the face tile (1001), camera space
    sh_global: np.ndarray  # (9, 3) float32, the global SH it refines, camera space
    losses: dict[str, float] = field(default_factory=dict)
    tiles: tuple[int, ...] = UV_TILES
