"""68 facial landmarks (iBUG order) on one face of a photo, by dlib or face-alignment's FAN.

    detect(photo, detector="auto", face_index=0) -> Landmarks

Faces are found by dlib's HOG detector (see `faces.py` for how tight crops, shadowed and small faces are
handled); the landmarks of the chosen face come from FAN when its weights are on disk ("auto" prefers
it), else from dlib's 68-point predictor, which ships with the `face-recognition-models` package and works
offline. Both give the same 68-point order. Points and boxes are in `photo.image_linear` pixels.

Several faces: the largest is face 0 and the others follow by size; `Landmarks.face_count` says how many
were found. A chosen face smaller than MIN_FACE_SIDE gives FACE_TOO_SMALL, no face gives NO_FACE.
"""
from __future__ import annotations

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.landmarks.dlib_predictor import dlib_available, dlib_landmarks
from inference_core.landmarks.faces import FaceBox, find_faces
from inference_core.landmarks.fan import fan_available, fan_landmarks, require_fan
from inference_core.values import Landmarks, Photo

DETECTORS = ("auto", "fan", "dlib")
MIN_FACE_SIDE = 32
"""Smallest usable face: the detector box's side (geometric mean of width and height), processing pixels.
(dlib's box spans brows to chin, so this is a face of about 40 pixels from hairline to chin.)"""


def available_detectors() -> list[str]:
    """The landmark detectors that can run on this machine now, preferred first."""
    return [name for name, ok in (("fan", fan_available()), ("dlib", dlib_available())) if ok]


def resolve_detector(detector: str = "auto") -> str:
    """"auto" -> "fan" when its weights are present, else "dlib"; an explicit name is checked."""
    if detector not in DETECTORS:
        raise FaceAlbedoError(ErrorCode.USAGE, f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if detector == "auto":
        return "fan" if fan_available() else "dlib"
    if detector == "fan":
        require_fan()
    return detector


def detect(photo: Photo, detector: str = "auto", face_index: int = 0) -> Landmarks:
    """The 68 landmarks of face `face_index` (0 = the largest) of `photo`, in processing pixels."""
    name = resolve_detector(detector)
    faces = find_faces(photo)
    face = choose_face(faces, face_index, photo)
    if name == "fan":
        points, confidence = fan_landmarks(photo, face)
    else:
        points, confidence = dlib_landmarks(face), face.score
    return Landmarks(points=points, detector=name, face_box=face.box, confidence=confidence,
                     face_count=len(faces), face_index=face_index)


def choose_face(faces: list[FaceBox], face_index: int, photo: Photo) -> FaceBox:
    """Face `face_index` of `faces` (largest first), or the error that says why there is none to use."""
    where = photo.path.name if photo.path else "the photo"
    if not faces:
        raise FaceAlbedoError(
            ErrorCode.NO_FACE,
            f"no face found in {where}; use a photo with an upright face, eyes visible, at least "
            f"{MIN_FACE_SIDE * 2} pixels wide",
        )
    if not 0 <= face_index < len(faces):
        raise FaceAlbedoError(
            ErrorCode.USAGE,
            f"face index {face_index} is out of range: {where} has {len(faces)} face(s), "
            f"numbered 0 (largest) to {len(faces) - 1}",
        )
    face = faces[face_index]
    if face.side < MIN_FACE_SIDE:
        raise FaceAlbedoError(
            ErrorCode.FACE_TOO_SMALL,
            f"the face in {where} is only {face.side:.0f} pixels across (at least {MIN_FACE_SIDE} needed "
            f"at the {max(photo.size)}-pixel processing size); use a closer or larger photo",
        )
    return face


__all__ = ["DETECTORS", "MIN_FACE_SIDE", "available_detectors", "detect", "resolve_detector"]
