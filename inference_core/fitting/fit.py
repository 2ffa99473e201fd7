"""fit(): the morphable head fitted to one photo by analysis-by-synthesis (landmarks, then photometric).

Stages, each an Adam run over a growing set of unknowns:
1. rigid: rotation, translation and focal length from the closed-form initial pose, against landmarks;
2. landmarks: + identity and expression;
3. photometric: + lighting and region albedo, with the robust photometric term on the skin pixels.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable

import numpy as np
import torch

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.facemodel import FaceModel
from inference_core.facemodel.regions import ALBEDO_REGIONS
from inference_core.fitting.initial_pose import initial_pose, prior_focal_px
from inference_core.fitting.landmark_term import LandmarkTerm
from inference_core.fitting.parameters import FitParameters, MorphableSubset, View, photo_view
from inference_core.fitting.photometric_term import PhotometricTerm, face_mask_at
from inference_core.fitting.priors import prior_terms
from inference_core.fitting.settings import FitSettings
from inference_core.progress import ProgressCallback, ignore_progress
from inference_core.values import Camera, FaceFit, Landmarks, Photo

STAGE = "fit"
RIGID_UNKNOWNS = ("rotation", "translation", "log_focal_ratio")
SHAPE_UNKNOWNS = (*RIGID_UNKNOWNS, "identity", "expression")
ALL_UNKNOWNS = (*SHAPE_UNKNOWNS, "sh", "albedo")
LEARNING_RATE_SCALE = {"rotation": 0.5, "translation": 0.3, "log_focal_ratio": 0.5, "identity": 2.0,
                       "expression": 1.0, "sh": 0.3, "albedo": 0.1}
"""Per-unknown multipliers of FitSettings.learning_rate (Adam steps are about lr in each unknown's units)."""


class _Objective:
    """Sums the active loss terms for the current parameters and records each term's history."""

    def __init__(self, photo: Photo, landmarks: Landmarks, model: FaceModel, settings: FitSettings,
                 device: str):
        self.settings = settings
        self.image_size = photo.size
        self.prior_focal = prior_focal_px(self.image_size, settings.focal_prior_factor)
        self.landmark_term = LandmarkTerm(model, landmarks.points, settings.jaw_landmark_weight, device)
        self.landmark_model = MorphableSubset(model, self.landmark_term.vertex_ids, settings.identity_modes, device)
        self.photometric_term: PhotometricTerm | None = None
        self.albedo_reference: torch.Tensor | None = None
        self.history: dict[str, list[float]] = defaultdict(list)

    def view(self, params: FitParameters) -> View:
        return photo_view(params, self.image_size, self.prior_focal)

    def landmarks_px(self, params: FitParameters, view: View) -> torch.Tensor:
        """(68, 2) the model's landmarks in the photo, jaw on the silhouette."""
        points = view.project(view.to_camera(self.landmark_model.vertices(params)))
        return self.landmark_term.project(points)

    def __call__(self, params: FitParameters) -> torch.Tensor:
        view = self.view(params)
        terms = {"landmark": (self.settings.landmark_weight, self.landmark_term.loss(self.landmarks_px(params, view)))}
        if self.photometric_term is not None:
            terms["photometric"] = (self.settings.photometric_weight, self.photometric_term.loss(params, view))
        terms.update(prior_terms(params, self.settings, self.albedo_reference))
        total = sum(weight * value for weight, value in terms.values())
        for name, (_, value) in terms.items():
            self.history[name].append(float(value.detach()))
        if self.photometric_term is not None:  # the robust cost itself, which IRLS lowers step by step
            self.history["photometric_irls"].append(self.history["photometric"][-1])
            self.history["photometric"][-1] = self.photometric_term.last_robust_value
        self.history["total"].append(float(total.detach()))
        return total


def _optimise(params: FitParameters, objective: Callable[[FitParameters], torch.Tensor], unknowns: tuple[str, ...],
              iterations: int, learning_rate: float, on_step: Callable[[int], None],
              geometry_rate: float = 1.0) -> None:
    """Adam over the named unknowns of `params` (the others stay fixed), projecting after each step.

    `geometry_rate` scales the steps of the shape and pose unknowns (not of lighting and albedo).
    """
    tensors = params.tensors()
    groups = [{"params": [tensors[name]],
               "lr": learning_rate * LEARNING_RATE_SCALE[name] * (geometry_rate if name in SHAPE_UNKNOWNS else 1.0)}
              for name in unknowns]
    optimiser = torch.optim.Adam(groups)
    for step in range(iterations):
        optimiser.zero_grad(set_to_none=True)
        objective(params).backward()
        optimiser.step()
        params.clamp_()
        on_step(step)


def fit(photo: Photo, landmarks: Landmarks, model: FaceModel, settings: FitSettings | None = None, *,
        device: str = "cpu", progress: ProgressCallback = ignore_progress, seed: int = 0) -> FaceFit:
    """Fit identity, expression, pose, focal length, SH lighting and region albedo to one face.

    Landmarks are in the processing pixels of `photo.image_linear`; so is the returned camera.
    Deterministic: the same inputs and seed give bit-identical results (nothing is drawn at random
    today; the seed keeps that so if it changes, without touching the caller's random state).
    """
    settings = settings or FitSettings()
    _check_landmarks(landmarks, photo)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        objective = _Objective(photo, landmarks, model, settings, device)
        params = _start(objective, landmarks, model, photo, settings, device)
        total_steps = settings.rigid_iterations + settings.landmark_iterations + (
            settings.photometric_iterations if settings.photometric else 0)
        done = [0]

        def report(message: str) -> Callable[[int], None]:
            def on_step(_: int) -> None:
                done[0] += 1
                if done[0] % 10 == 0:
                    progress(STAGE, done[0] / total_steps, message)
            return on_step

        lr = settings.learning_rate
        _optimise(params, objective, RIGID_UNKNOWNS, settings.rigid_iterations, lr, report("fitting head pose"))
        _optimise(params, objective, SHAPE_UNKNOWNS, settings.landmark_iterations, lr, report("fitting shape"))
        if settings.photometric:
            term = PhotometricTerm(photo, landmarks.points, model, settings, device)
            term.initialise_appearance(params, objective.view(params))
            objective.photometric_term = term
            objective.albedo_reference = params.albedo.detach().clone()
            _optimise(params, objective, ALL_UNKNOWNS, settings.photometric_iterations, lr,
                      report("fitting shape, lighting and skin colour"), settings.photometric_geometry_rate)
        progress(STAGE, 1.0, "fitted")
        return _face_fit(params, objective, model, photo, device)


def _check_landmarks(landmarks: Landmarks, photo: Photo) -> None:
    """FIT_FAILED unless there are 68 finite points spread over more than a few pixels."""
    points = np.asarray(landmarks.points)
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
        raise FaceAlbedoError(ErrorCode.FIT_FAILED,
                              f"expected 68 finite landmarks (iBUG order), got an array of shape {points.shape}; "
                              "detect them with inference_core.landmarks.detect")
    if np.ptp(points, axis=0).min() < 4:
        raise FaceAlbedoError(ErrorCode.FIT_FAILED, "the landmarks span less than 4 pixels: the face is too small "
                              f"to fit in this {photo.size[0]}x{photo.size[1]} photo")


def _start(objective: _Objective, landmarks: Landmarks, model: FaceModel, photo: Photo, settings: FitSettings,
           device: str) -> FitParameters:
    """Mean head at the closed-form pose of the landmarks, prior focal length, neutral appearance."""
    rotation, translation = initial_pose(landmarks.points, model, photo.size, objective.prior_focal)
    face_angle = objective.landmark_term.face_size_px / objective.prior_focal
    return FitParameters.start(settings.identity_modes, len(ALBEDO_REGIONS), rotation, translation, face_angle,
                               device)


def _face_fit(params: FitParameters, objective: _Objective, model: FaceModel, photo: Photo,
              device: str) -> FaceFit:
    """The FaceFit of the final parameters: full-head vertices, masks, residuals and their history."""
    with torch.no_grad():
        view = objective.view(params)
        landmarks_px = objective.landmarks_px(params, view)
        residuals = {name: values[-1] for name, values in objective.history.items()}
        residuals["landmark_nme"] = objective.landmark_term.nme(landmarks_px)
        verts = model.vertices(params.identity.cpu().numpy(), params.expression.cpu().numpy())
        face_mask = face_mask_at(verts, model, view, photo.size, device)
        term = objective.photometric_term
        if term is not None:
            inlier_weight = term.inlier_weight_at(params, view, face_mask) * face_mask
            residuals["inlier_fraction"] = float(inlier_weight[face_mask].mean()) if face_mask.any() else 0.0
        else:
            inlier_weight = face_mask.astype(np.float32)
        width, height = photo.size
        focal = float(view.focal_px)
        camera = Camera(fx=focal, fy=focal, cx=view.cx, cy=view.cy, image_size=(width, height),
                        rotation=view.rotation.cpu().numpy().astype(np.float64),
                        translation_cm=view.translation_cm.cpu().numpy().astype(np.float64))
    return FaceFit(
        identity=params.identity.detach().cpu().numpy().astype(np.float32),
        expression=params.expression.detach().cpu().numpy().astype(np.float32),
        camera=camera,
        sh_camera=params.sh.detach().cpu().numpy().astype(np.float32),
        albedo_params=params.albedo.detach().cpu().numpy().astype(np.float32),
        vertices_cm=verts.astype(np.float32),
        face_mask=face_mask,
        inlier_weight=inlier_weight.astype(np.float32),
        landmarks_2d=landmarks_px.cpu().numpy().astype(np.float32),
        residuals=residuals,
        history=dict(objective.history),
    )
