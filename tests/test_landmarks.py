"""Landmark detection on the shared photos: faces found, counted, placed; no face where there is none."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io
from PIL import Image

from inference_core.errors import ErrorCode, FaceAlbedoError
from conftest import FACES
from inference_core.landmarks import MIN_FACE_SIDE, detect, fan, resolve_detector
from inference_core.photo import load_example, load_photo, photo_from_pixels

# Faces counted by eye. Group photos from dlib's examples hold small, half-hidden faces: a range there.
FACE_COUNTS: dict[str, tuple[int, int]] = {
    "dlib/2007_007763.jpg": (7, 7), "dlib/2008_001009.jpg": (2, 2), "dlib/2008_001322.jpg": (3, 3),
    "dlib/2008_002079.jpg": (6, 7), "dlib/2008_002470.jpg": (6, 7), "dlib/2008_002506.jpg": (3, 3),
    "dlib/2008_004176.jpg": (7, 7), "dlib/2008_007676.jpg": (7, 7), "dlib/2009_004587.jpg": (2, 2),
    "dlib/bald_guys.jpg": (22, 25), "face_recognition/kit_with_rose.jpg": (2, 2),
    "face_recognition/obama_and_biden.jpg": (3, 3),  # two men and a girl behind them
    "face_recognition/two_people.jpg": (2, 2), "insightface/t1.jpg": (6, 6),
}
# Photos whose face is cut by the frame: some landmarks (jaw, chin) rightly lie outside the image.
PARTIAL_FACES = {"face_recognition/obama_partial_face.jpg", "face_recognition/obama_partial_face2.jpg",
                 "insightface/Tom_Hanks_54745.png"}


def shared_photos() -> list[str]:
    root = FACES / "photos"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in {".jpg", ".png"})


def inside(points: np.ndarray, size: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """(68,) bool: points within the image (pixel centres at integers, edges at -0.5), grown by margin."""
    width, height = size
    return ((points >= -0.5 - margin) & (points <= np.array([width, height]) - 0.5 + margin)).all(axis=1)


def nme(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error over sqrt(width * height) of the ground-truth points' box."""
    width, height = truth.max(axis=0) - truth.min(axis=0)
    return float(np.linalg.norm(points - truth, axis=1).mean() / np.sqrt(width * height))


@pytest.fixture(scope="module")
def astronaut():
    return load_example("astronaut")


@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut):
    return detect(astronaut, "dlib")


@pytest.mark.parametrize("name", shared_photos())
def test_every_photo_gives_68_landmarks_on_its_faces(faces_dir, name):
    photo = load_photo(faces_dir / "photos" / name)
    landmarks = detect(photo, "dlib")
    assert landmarks.points.shape == (68, 2) and landmarks.points.dtype == np.float32
    assert np.isfinite(landmarks.points).all()
    low, high = FACE_COUNTS.get(name, (1, 1))
    assert low <= landmarks.face_count <= high
    x0, y0, x1, y1 = landmarks.face_box
    box_side = np.sqrt((x1 - x0) * (y1 - y0))
    assert box_side >= MIN_FACE_SIDE
    on_image = inside(landmarks.points, photo.size)
    if name in PARTIAL_FACES:
        assert on_image.mean() >= 0.8 and inside(landmarks.points, photo.size, margin=box_side / 2).all()
    else:
        assert on_image.all()
    # The points describe the face in the box: their centre near the box's, their spread like the box's.
    centre = landmarks.points.mean(axis=0)
    assert np.linalg.norm(centre - [(x0 + x1) / 2, (y0 + y1) / 2]) < 0.25 * box_side
    spread = landmarks.points.max(axis=0) - landmarks.points.min(axis=0)
    assert 0.6 * box_side < np.sqrt(spread.prod()) < 1.6 * box_side


@pytest.mark.parametrize("name", sorted(p.name for p in (FACES / "no_face").iterdir()))
def test_no_face_photos_give_no_face(faces_dir, name):
    with pytest.raises(FaceAlbedoError) as caught:
        detect(load_photo(faces_dir / "no_face" / name), "dlib")
    assert caught.value.code is ErrorCode.NO_FACE
    assert name in caught.value.message


def test_aflw2000_dlib_nme_below_6_percent(faces_dir):
    errors, missed = {}, []
    for mat in sorted((faces_dir / "aflw2000").glob("*.mat")):
        truth = scipy.io.loadmat(mat)["pt3d_68"][:2].T  # (68, 2) image pixels
        try:
            landmarks = detect(load_photo(mat.with_suffix(".jpg")), "dlib")
        except FaceAlbedoError as error:
            assert error.code is ErrorCode.NO_FACE
            missed.append(mat.stem)
            continue
        errors[mat.stem] = nme(landmarks.points, truth)
    mean_nme = float(np.mean(list(errors.values())))
    print(f"\nAFLW2000 dlib NME: mean {100 * mean_nme:.2f}% over {len(errors)} photos "
          f"({', '.join(f'{k} {100 * v:.1f}%' for k, v in errors.items())}); no face found: {missed}")
    assert len(errors) >= 7  # all but the extreme profile image04331
    assert mean_nme < 0.06
    assert max(errors.values()) < 0.10


def test_ibug_photo_matches_its_ground_truth(faces_dir):
    lines = (faces_dir / "photos" / "eos_ibug" / "image_0010.pts").read_text().split("{")[1].split("}")[0]
    truth = np.array([line.split() for line in lines.strip().splitlines()], float) - 1.0  # 1-based .pts
    landmarks = detect(load_photo(faces_dir / "photos" / "eos_ibug" / "image_0010.png"), "dlib")
    assert nme(landmarks.points, truth) < 0.04


@pytest.mark.parametrize("name", ["yaleB23/yaleB23_P00A+000E+00.pgm", "yaleB27/yaleB27_P00A-035E-20.pgm",
                                  "yaleB27/yaleB27_P00A+050E+00.pgm", "yalefaces/subject01.leftlight.gif"])
def test_tight_and_side_lit_crops_are_found(faces_dir, name):
    """Yale crops are cut at the cheeks (the jaw line lies outside), and half of some faces is in shadow."""
    photo = load_photo(faces_dir / "lighting" / name)
    landmarks = detect(photo, "dlib")
    points = landmarks.points
    assert inside(points[27:], photo.size).all()  # nose, eyes and mouth
    right_eye, left_eye = points[36:42].mean(0), points[42:48].mean(0)  # the subject's right is image left
    nose_tip, mouth = points[30], points[48:68].mean(0)
    assert right_eye[0] < nose_tip[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < nose_tip[1] < mouth[1]
    assert left_eye[0] - right_eye[0] > 0.3 * (landmarks.face_box[2] - landmarks.face_box[0])


def test_crop_around_the_face_gives_the_same_landmarks(astronaut, astronaut_landmarks):
    x0, y0, x1, y1 = (int(v) for v in astronaut_landmarks.face_box)
    pad = (x1 - x0) // 4
    top, left = max(y0 - pad, 0), max(x0 - pad, 0)
    crop = astronaut.image_linear[top:y1 + pad, left:x1 + pad]
    cropped = detect(photo_from_pixels(_srgb8(crop), 255), "dlib")
    shifted = astronaut_landmarks.points - [left, top]
    assert np.abs(cropped.points - shifted).mean() < 3.0


def _srgb8(image_linear: np.ndarray) -> np.ndarray:
    from inference_core.photo import linear_to_srgb

    return (linear_to_srgb(image_linear) * 255 + 0.5).astype(np.uint8)


def test_face_index_chooses_among_faces(faces_dir):
    photo = load_photo(faces_dir / "photos" / "face_recognition" / "two_people.jpg")
    first, second = detect(photo, "dlib", face_index=0), detect(photo, "dlib", face_index=1)
    assert first.face_count == second.face_count == 2 and second.face_index == 1
    side = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    assert side(first.face_box) >= side(second.face_box)
    assert np.linalg.norm(first.points.mean(0) - second.points.mean(0)) > 100
    with pytest.raises(FaceAlbedoError) as caught:
        detect(photo, "dlib", face_index=2)
    assert caught.value.code is ErrorCode.USAGE and "2 face(s)" in caught.value.message


def test_small_face_is_reported_as_too_small():
    from skimage import data

    canvas = np.full((600, 600, 3), 128, np.uint8)
    canvas[250:370, 250:370] = cv2.resize(data.astronaut(), (120, 120), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceAlbedoError) as caught:
        detect(photo_from_pixels(canvas, 255), "dlib")
    assert caught.value.code is ErrorCode.FACE_TOO_SMALL


def test_40_megapixel_photo_is_detected_at_processing_size(tmp_path, astronaut_landmarks):
    from skimage import data

    side, width = 5480, 7300  # the astronaut enlarged to 5480 x 5480, centred on a 7300 x 5480 grey photo
    offset = (width - side) // 2
    pixels = np.full((side, width, 3), 128, np.uint8)
    pixels[:, offset:offset + side] = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=85)
    del pixels
    photo = load_photo(tmp_path / "big.jpg")
    landmarks = detect(photo, "dlib")
    # Where the astronaut's landmarks land in the processing image (pixel centres at integers).
    scale = photo.processing_scale
    expected = ((astronaut_landmarks.points + 0.5) * side / 512 + [offset, 0]) * scale - 0.5
    assert np.abs(landmarks.points - expected).mean() < 2.0 * side / 512 * scale


def test_exif_rotated_photo_is_detected_upright(tmp_path, astronaut_landmarks):
    from skimage import data

    image = Image.fromarray(np.rot90(data.astronaut(), k=1).copy())  # stored turned; EXIF 6 turns it back
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    landmarks = detect(load_photo(tmp_path / "turned.jpg"), "dlib")
    assert np.abs(landmarks.points - astronaut_landmarks.points).mean() < 3.0


def test_detector_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_detector("auto") == "dlib"
    with pytest.raises(FaceAlbedoError) as caught:
        resolve_detector("cnn")
    assert caught.value.code is ErrorCode.USAGE
    with pytest.raises(FaceAlbedoError) as caught:
        detect(load_example(), "fan")  # asked for FAN without its weights: never a download
    assert caught.value.code is ErrorCode.ASSETS_MISSING and fan.FAN_WEIGHTS_FILE in caught.value.message
    weights = fan.fan_weights_path()
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"<html>rate limited</html>")  # a failed download is not FAN
    assert resolve_detector("auto") == "dlib"
    with open(weights, "wb") as stub:
        stub.truncate(fan.FAN_WEIGHTS_MIN_BYTES)  # sparse file of the size of real weights
    assert resolve_detector("auto") == "fan"
    fan.fan_model.cache_clear()
    with pytest.raises(FaceAlbedoError) as caught:
        fan.fan_model()  # the real face-alignment constructor on a damaged file: a clear error, no network
    assert caught.value.code is ErrorCode.ASSETS_CORRUPT and str(weights) in caught.value.message
    assert "urlopen" not in caught.value.message and "http" not in caught.value.message
    fan.fan_model.cache_clear()


def test_fan_path_uses_our_face_box(monkeypatch, astronaut, astronaut_landmarks):
    """FAN itself needs weights that are not here: a stand-in checks what we hand it and what we return."""
    seen = {}

    class FakeFan:
        def get_landmarks_from_image(self, image, detected_faces, return_landmark_score):
            seen["image"], seen["box"] = image, detected_faces[0]
            x0, y0, x1, y1 = detected_faces[0][:4]
            points = np.stack([np.linspace(x0, x1, 68), np.linspace(y0, y1, 68)], axis=1)
            return [points], [np.full(68, 0.75)], None

    monkeypatch.setattr(fan, "fan_available", lambda: True)
    monkeypatch.setattr(fan, "fan_model", lambda: FakeFan())
    monkeypatch.setattr("inference_core.landmarks.fan_available", lambda: True)
    landmarks = detect(astronaut, "auto")
    assert landmarks.detector == "fan" and landmarks.confidence == pytest.approx(0.75)
    assert seen["image"].dtype == np.uint8 and seen["image"].shape == (512, 512, 3)
    x0, y0, x1, y1 = astronaut_landmarks.face_box
    fx0, fy0, fx1, fy1 = seen["box"][:4]
    assert fx1 - fx0 > x1 - x0 and fy0 < y0  # grown towards the forehead, as FAN's training boxes
    assert landmarks.points.shape == (68, 2)
