"""The morphable head model (ICT-FaceKit light): loader, parts, landmark vertices, symmetry."""
from inference_core.facemodel.model import (
    JAW_CHAIN_LEFT,
    JAW_CHAIN_RIGHT,
    LANDMARK_VERTICES,
    POLYGON_RANGES,
    SKIN_PARTS,
    VERTEX_RANGES,
    FaceModel,
    load_face_model,
    load_face_model_file,
)

__all__ = [
    "JAW_CHAIN_LEFT", "JAW_CHAIN_RIGHT", "LANDMARK_VERTICES", "POLYGON_RANGES", "SKIN_PARTS",
    "VERTEX_RANGES", "FaceModel", "load_face_model", "load_face_model_file",
]
