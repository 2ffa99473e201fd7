"""The morphable model loads, is consistent with NOTES.md, and its geometry helpers hold."""
import numpy as np
import torch

from inference_core.facemodel import LANDMARK_VERTICES, load_face_model_file
from inference_core.facemodel.geometry import mirror_map, vertex_normals
from inference_core.errors import ErrorCode, FaceAlbedoError


def test_model_shapes_and_triangles(face_model):
    m = face_model
    assert m.neutral_cm.shape == (26719, 3)
    assert m.identity_basis_cm.shape[0] == 100 and m.expression_basis_cm.shape[0] == 57
    assert "jawOpen" in m.expression_names and "eyeBlink_L" in m.expression_names
    # 25,836 quads and 548 triangles -> 2 * 25836 + 548 triangles
    assert len(m.triangles) == 2 * 25836 + 548
    assert m.triangles.max() < m.n_vertices and m.triangle_uvs.max() < len(m.uvs)
    tiles = m.triangle_tiles()
    assert set(tiles[m.part_triangles("head_neck")]) == {1002}
    assert set(tiles[m.part_triangles("narrow_face")]) == {1001}


def test_normals_point_outwards(face_model):
    normals = vertex_normals(torch.tensor(face_model.neutral_cm), torch.tensor(face_model.triangles)).numpy()
    nose_tip = LANDMARK_VERTICES[30]
    assert normals[nose_tip, 2] > 0.8  # the nose tip faces the +Z view direction
    assert normals[LANDMARK_VERTICES[0], 0] < -0.5  # landmark 0 is on the subject's right (-X) cheek


def test_mirror_map_maps_landmarks_to_their_partners(face_model):
    mirror = mirror_map(face_model)
    # iBUG pairs: jaw 0<->16, brows 17<->26, eye corners 36<->45, mouth corners 48<->54; nose 30 on the plane
    for a, b in [(0, 16), (17, 26), (36, 45), (48, 54)]:
        va, vb = LANDMARK_VERTICES[a], LANDMARK_VERTICES[b]
        partner = face_model.neutral_cm[mirror[va]]
        assert np.allclose(partner * [-1, 1, 1], face_model.neutral_cm[va], atol=1e-2)
        assert np.allclose(partner, face_model.neutral_cm[vb], atol=1e-2)  # the mirror is the iBUG partner
    skin = face_model.part_vertices("face")
    defined = skin[mirror[skin] >= 0]
    assert len(defined) > 0.99 * len(skin)
    assert np.mean(mirror[mirror[defined]] == defined) > 0.95


def test_corrupt_model_file_is_reported(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"not a zip")
    try:
        load_face_model_file(bad)
    except FaceAlbedoError as error:
        assert error.code is ErrorCode.ASSETS_CORRUPT
    else:
        raise AssertionError("a corrupt model file must raise ASSETS_CORRUPT")
