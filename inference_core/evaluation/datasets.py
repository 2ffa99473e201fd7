"""Evaluation sets: a folder of photos, with ground truth where the folder has it.

Three kinds of folder are understood, and a folder may mix them:
- plain photos (any image the photo loader reads, found recursively), e.g. faces/photos/;
- photos with 68-point ground truth beside them: AFLW2000-3D `.mat` files (`pt3d_68`, first two rows
  = x, y in pixels) or iBUG `.pts` files (1-based pixel positions), e.g. faces/aflw2000/;
- lighting sets: the same person under many lights, grouped by subject. Extended Yale B crops are named
  `yaleB23_P00A+020E-10.pgm` (light azimuth +20 deg, elevation -10 deg); Yale faces are named
  `subject01.leftlight.gif` (only the light conditions centerlight/leftlight/rightlight/normal count).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from inference_core.errors import ErrorCode, FaceAlbedoError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".pgm", ".gif"})

YALE_B_NAME = re.compile(r"^(?P<subject>yaleB\d+)_P(?P<pose>\d+)A(?P<azimuth>[+-]\d+)E(?P<elevation>[+-]\d+)$")
YALE_NAME = re.compile(r"^(?P<subject>subject\d+)\.(?P<condition>centerlight|leftlight|rightlight|normal)$")
YALE_LIGHT_ANGLES = {"centerlight": (0.0, 0.0), "normal": (0.0, 0.0), "leftlight": (None, 0.0),
                     "rightlight": (None, 0.0)}
"""Yale faces say only the side of the light; azimuth is left unknown for the side lights."""
YALE_SIDE_ORDER = {"leftlight": -1.0, "rightlight": 1.0}
"""Where the side lights sort among the others when a subset spread over the lights is picked."""

YALE_SKIPPED = re.compile(r"^(yaleB\d+_P\d+_Ambient|subject\d+\.(glasses|noglasses|happy|sad|sleepy|"
                          r"surprised|wink))$")
"""Yale files that are not a change of light (ambient-only frames, expressions, glasses)."""


@dataclass(frozen=True)
class SetItem:
    """One photo of an evaluation set, with what is known about it."""

    path: Path
    name: str  # path relative to the set folder, without suffix: unique within the set
    landmarks_gt: np.ndarray | None = None  # (68, 2) float64 ground-truth pixel positions
    subject: str | None = None  # lighting sets: the same person under every light of the group
    light: str | None = None  # lighting sets: the light condition, e.g. "A+020E-10" or "leftlight"
    azimuth_deg: float | None = None  # light direction where the file name says it
    elevation_deg: float | None = None


def _read_landmarks(image_path: Path) -> np.ndarray | None:
    """(68, 2) ground truth from a `.mat` (AFLW2000-3D) or `.pts` (iBUG) file beside the image."""
    mat, pts = image_path.with_suffix(".mat"), image_path.with_suffix(".pts")
    if mat.is_file():
        points = scipy.io.loadmat(str(mat))["pt3d_68"][:2].T
        return np.asarray(points, np.float64)
    if pts.is_file():
        text = pts.read_text()
        body = text[text.index("{") + 1:text.index("}")]
        points = np.array([line.split() for line in body.strip().splitlines()], np.float64)
        return points - 1.0  # iBUG counts pixels from 1; values.py from 0
    return None


def _lighting_fields(stem: str) -> dict[str, object]:
    """subject / light / angles parsed from a Yale B or Yale file name (empty dict otherwise)."""
    match = YALE_B_NAME.match(stem)
    if match:
        azimuth, elevation = int(match["azimuth"]), int(match["elevation"])
        return {"subject": match["subject"], "light": f"A{azimuth:+04d}E{elevation:+03d}",
                "azimuth_deg": float(azimuth), "elevation_deg": float(elevation)}
    match = YALE_NAME.match(stem)
    if match:
        azimuth, elevation = YALE_LIGHT_ANGLES[match["condition"]]
        return {"subject": match["subject"], "light": match["condition"], "azimuth_deg": azimuth,
                "elevation_deg": elevation}
    return {}


def _within_angles(item: SetItem, max_azimuth_deg: float | None, max_elevation_deg: float | None) -> bool:
    """Whether a lighting item's light lies in the allowed cone (items without angles always do)."""
    if max_azimuth_deg is not None and item.azimuth_deg is not None and abs(item.azimuth_deg) > max_azimuth_deg:
        return False
    if (max_elevation_deg is not None and item.elevation_deg is not None
            and abs(item.elevation_deg) > max_elevation_deg):
        return False
    return True


def _spread_pick(items: list[SetItem], count: int) -> list[SetItem]:
    """`count` items evenly spread over the list (first and last kept), in list order."""
    if count >= len(items):
        return items
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, count)).astype(int))
    return [items[i] for i in picks]


def _light_order(item: SetItem) -> tuple[float, float, str]:
    """Sort key of a lighting item: azimuth (the side for Yale faces' side lights), elevation, name."""
    azimuth = item.azimuth_deg if item.azimuth_deg is not None else 180.0 * YALE_SIDE_ORDER.get(item.light, 0.0)
    return azimuth, item.elevation_deg or 0.0, item.name


def _limit(items: list[SetItem], limit: int | None) -> list[SetItem]:
    """`limit` photos spread over the sorted list; for lighting groups `limit` lights per subject, spread
    over azimuth (so that a subset still spans the set: first, last and evenly between)."""
    if limit is None:
        return items
    plain = [item for item in items if item.subject is None]
    subjects = sorted({item.subject for item in items if item.subject is not None})
    lit: list[SetItem] = []
    for subject in subjects:
        group = sorted((item for item in items if item.subject == subject), key=_light_order)
        lit += _spread_pick(group, limit)
    return _spread_pick(plain, limit) + lit


def load_set(set_dir: Path | str, *, limit: int | None = None, max_azimuth_deg: float | None = 50.0,
             max_elevation_deg: float | None = 40.0) -> list[SetItem]:
    """The photos of an evaluation folder, sorted by name, with ground truth and lighting groups.

    Lighting items whose light lies outside |azimuth| <= max_azimuth_deg, |elevation| <=
    max_elevation_deg are left out (beyond that the crops are mostly shadow, where no method can
    recover albedo); None keeps all. `limit` caps the photos (per subject for lighting groups).
    """
    root = Path(set_dir)
    if not root.is_dir():
        raise FaceAlbedoError(ErrorCode.USAGE, f"evaluation set {root} is not a folder: give a folder of photos")
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        if YALE_SKIPPED.match(path.stem):
            continue
        item = SetItem(path=path, name=path.relative_to(root).with_suffix("").as_posix(),
                       landmarks_gt=_read_landmarks(path), **_lighting_fields(path.stem))
        if _within_angles(item, max_azimuth_deg, max_elevation_deg):
            items.append(item)
    items = _limit(items, limit)
    if not items:
        raise FaceAlbedoError(ErrorCode.USAGE, f"no photos found in {root} (looked for {sorted(IMAGE_SUFFIXES)})")
    return items


def lighting_groups(items: list[SetItem]) -> dict[str, list[SetItem]]:
    """Items of the same subject under at least two lights, by subject."""
    groups: dict[str, list[SetItem]] = {}
    for item in items:
        if item.subject is not None:
            groups.setdefault(item.subject, []).append(item)
    return {subject: group for subject, group in sorted(groups.items()) if len(group) >= 2}
