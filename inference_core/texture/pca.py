"""A learned statistical albedo basis (mean + principal components over the skin tiles), as safetensors.

File layout (`facealbedo.albedo_pca/1`): tensors `mean` (T, R, R, 3), `components` (K, T, R, R, 3)
orthonormal when flattened, `stddev` (K,) coefficient standard deviations, all float32 linear RGB;
metadata `format` and `tiles` ("1001,1002"). `facealbedo prior build` writes one; the prior stage uses
the file named in PriorSettings, else `<assets>/prior/albedo_pca.safetensors` when one is there
(see `default_basis_path`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference_core.assets import asset_roots
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.values import UV_TILES

FORMAT = "facealbedo.albedo_pca/1"
DEFAULT_BASIS_RELPATH = Path("prior") / "albedo_pca.safetensors"
"""Where in an assets folder (FACEALBEDO_ASSETS or the user cache) the pipeline looks for a basis."""


@dataclass(frozen=True)
class AlbedoBasis:
    """albedo = mean + sum_k coefficient_k * components[k], coefficients ~ N(0, stddev_k^2)."""

    mean: np.ndarray  # (T, R, R, 3) float32
    components: np.ndarray  # (K, T, R, R, 3) float32
    stddev: np.ndarray  # (K,) float32
    tiles: tuple[int, ...] = UV_TILES

    @property
    def resolution(self) -> int:
        return int(self.mean.shape[1])

    def evaluate(self, coefficients: np.ndarray) -> np.ndarray:
        """(T, R, R, 3) albedo for (K,) coefficients."""
        return self.mean + np.tensordot(coefficients.astype(np.float32), self.components, axes=1)


def build_basis(textures: np.ndarray, n_components: int) -> AlbedoBasis:
    """PCA of (N, T, R, R, 3) complete albedo textures, keeping at most min(n_components, N - 1) modes."""
    if len(textures) < 2:
        raise FaceAlbedoError(ErrorCode.USAGE, "a PCA albedo basis needs at least 2 textures; give more photos")
    data = torch.from_numpy(textures.reshape(len(textures), -1).astype(np.float64))
    mean = data.mean(0)
    centred = data - mean
    # Few samples, many texels: eigen-decompose the (N, N) Gram matrix instead of the texel covariance.
    eigenvalues, vectors = torch.linalg.eigh(centred @ centred.T)
    order = torch.argsort(eigenvalues, descending=True)[: min(n_components, len(textures) - 1)]
    eigenvalues = eigenvalues[order].clamp_min(1e-12)
    components = (vectors[:, order].T @ centred) / eigenvalues.sqrt()[:, None]
    stddev = (eigenvalues / (len(textures) - 1)).sqrt()
    shape = textures.shape[1:]
    return AlbedoBasis(mean=mean.reshape(shape).float().numpy(),
                       components=components.reshape(-1, *shape).float().numpy(),
                       stddev=stddev.float().numpy())


def save_basis(basis: AlbedoBasis, path: Path | str) -> Path:
    """Write the basis as safetensors (atomically: a temporary file renamed into place)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file({"mean": np.ascontiguousarray(basis.mean, np.float32),
               "components": np.ascontiguousarray(basis.components, np.float32),
               "stddev": np.ascontiguousarray(basis.stddev, np.float32)},
              str(partial), metadata={"format": FORMAT, "tiles": ",".join(map(str, basis.tiles))})
    partial.replace(path)
    return path


def load_basis(path: Path | str) -> AlbedoBasis:
    """Read a basis written by `save_basis`; a wrong or damaged file raises ASSETS_CORRUPT."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except FileNotFoundError as exc:
        raise FaceAlbedoError(ErrorCode.ASSETS_MISSING, f"albedo basis {path} not found; "
                              "build one with `facealbedo prior build --images DIR --out FILE`") from exc
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"cannot read albedo basis {path}: {exc}; build it again") from exc
    if metadata.get("format") != FORMAT or not {"mean", "components", "stddev"} <= set(arrays):
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"{path} is not a {FORMAT} file; build it again "
                              "with `facealbedo prior build`")
    tiles = tuple(int(t) for t in metadata.get("tiles", "1001,1002").split(","))
    mean, components, stddev = arrays["mean"], arrays["components"], arrays["stddev"]
    if mean.ndim != 4 or components.shape[1:] != mean.shape or stddev.shape != components.shape[:1]:
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"{path}: inconsistent basis shapes; build it again")
    return AlbedoBasis(mean=mean, components=components, stddev=stddev, tiles=tiles)


def default_basis_path() -> Path | None:
    """`prior/albedo_pca.safetensors` in the first assets folder that has one, else None."""
    for root in asset_roots():
        candidate = root / DEFAULT_BASIS_RELPATH
        if candidate.is_file():
            return candidate
    return None
