"""What the fit optimises, and the morphable model restricted to the vertices a loss needs, in torch."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from inference_core.facemodel import FaceModel
from inference_core.render.camera import axis_angle_to_matrix, matrix_to_axis_angle, project, to_camera
from inference_core.render.sh import AMBIENT_WHITE


@dataclass
class FitParameters:
    """The unknowns of the fit, as leaf tensors (float32).

    The translation is (x/z / face_angle, y/z / face_angle, log z): the image-plane position in units of
    the face's angular size (face pixels / focal pixels) and the log depth, so that one Adam step size
    suits all three whatever the size of the face in the photo. The focal length is `prior_focal_px * exp(log_focal_ratio)`; fx = fy and the
    principal point stays at the image centre.
    """

    identity: torch.Tensor  # (N,) ~N(0, 1)
    expression: torch.Tensor  # (57,) blendshape weights, kept in [0, 1]
    rotation: torch.Tensor  # (3,) axis-angle, model -> camera
    translation: torch.Tensor  # (3,) (x/z / face_angle, y/z / face_angle, log z[cm])
    log_focal_ratio: torch.Tensor  # () log(focal / prior focal)
    sh: torch.Tensor  # (9, 3) SH radiance, camera space
    albedo: torch.Tensor  # (k, 3) linear RGB per albedo region
    face_angle: float = 1.0  # angular size of the face (radians), the unit of the image-plane position

    @classmethod
    def start(cls, n_identity: int, n_regions: int, rotation: np.ndarray, translation_cm: np.ndarray,
              face_angle: float, device: str) -> "FitParameters":
        """Mean head, neutral expression, the given pose, prior focal, white ambient light, grey skin."""
        def leaf(values) -> torch.Tensor:
            return torch.tensor(np.asarray(values), dtype=torch.float32, device=device).requires_grad_(True)

        x, y, z = translation_cm
        sh = np.zeros((9, 3))
        sh[0] = AMBIENT_WHITE  # shading E/pi = 1
        return cls(
            identity=leaf(np.zeros(n_identity)),
            expression=leaf(np.zeros(57)),
            rotation=leaf(matrix_to_axis_angle(rotation)),
            translation=leaf([x / z / face_angle, y / z / face_angle, np.log(z)]),
            log_focal_ratio=leaf(0.0),
            sh=leaf(sh),
            albedo=leaf(np.full((n_regions, 3), 0.4)),
            face_angle=face_angle,
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The unknowns by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "face_angle"}

    def rotation_matrix(self) -> torch.Tensor:
        return axis_angle_to_matrix(self.rotation)

    def translation_cm(self) -> torch.Tensor:
        """(3,) camera-space translation in cm."""
        depth = torch.exp(self.translation[2])
        scale = self.face_angle * depth
        return torch.stack([self.translation[0] * scale, self.translation[1] * scale, depth])

    def clamp_(self) -> None:
        """Project onto the feasible set after an optimiser step: expression weights and albedo in [0, 1]."""
        with torch.no_grad():
            self.expression.clamp_(0.0, 1.0)
            self.albedo.clamp_(0.0, 1.0)


class MorphableSubset:
    """The morphable model on a subset of vertices, as torch tensors: shape + expression -> cm."""

    def __init__(self, model: FaceModel, vertex_ids: np.ndarray, n_identity: int, device: str):
        ids = np.asarray(vertex_ids, dtype=np.int64)
        self.vertex_ids = ids
        self.neutral = torch.tensor(model.neutral_cm[ids], device=device)  # (S, 3)
        self.identity_basis = torch.tensor(
            model.identity_basis_cm[:n_identity, ids].reshape(n_identity, -1), device=device)  # (N, S*3)
        self.expression_basis = torch.tensor(
            model.expression_basis_cm[:, ids].reshape(57, -1), device=device)  # (57, S*3)

    def vertices(self, params: FitParameters) -> torch.Tensor:
        """(S, 3) model-space vertices in cm."""
        offsets = params.identity @ self.identity_basis + params.expression @ self.expression_basis
        return self.neutral + offsets.reshape(-1, 3)


@dataclass(frozen=True)
class View:
    """A pinhole view of the fitted head into some image (the photo or a crop of it)."""

    focal_px: torch.Tensor  # ()
    cx: float
    cy: float
    rotation: torch.Tensor  # (3, 3)
    translation_cm: torch.Tensor  # (3,)

    def to_camera(self, verts_cm: torch.Tensor) -> torch.Tensor:
        return to_camera(verts_cm, self.rotation, self.translation_cm)

    def project(self, points_camera: torch.Tensor) -> torch.Tensor:
        """(..., 3) camera-space points -> (..., 2) pixels of this view."""
        return project(points_camera, self.focal_px, self.focal_px, self.cx, self.cy)

    def screen(self, verts_cm: torch.Tensor) -> torch.Tensor:
        """(V, 3) model-space -> (V, 3) [pixel x, pixel y, camera z], the rasteriser's input."""
        camera = self.to_camera(verts_cm)
        return torch.cat([self.project(camera), camera[:, 2:]], dim=-1)

    def cropped(self, scale: float, origin_px: tuple[float, float]) -> "View":
        """The view of an image cut out at `origin_px` (its top-left pixel edge) and resized by `scale`."""
        x0, y0 = origin_px
        return View(self.focal_px * scale, (self.cx - x0 + 0.5) * scale - 0.5, (self.cy - y0 + 0.5) * scale - 0.5,
                    self.rotation, self.translation_cm)


def photo_view(params: FitParameters, image_size: tuple[int, int], prior_focal_px: float) -> View:
    """The current view of the photo: focal from its prior and ratio, principal point at the centre."""
    width, height = image_size
    return View(prior_focal_px * torch.exp(params.log_focal_ratio), (width - 1) / 2, (height - 1) / 2,
                params.rotation_matrix(), params.translation_cm())
