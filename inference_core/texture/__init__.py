"""The prior generation module: unwrap the photo into UV, judge each texel, fit the prior albedo, complete.

    unwrap(photo, fit, model, resolution) -> UVTexture        (unwrap.py, visibility.py)
    prior_albedo(uv, fit, model, settings) -> PriorAlbedo     (prior.py, regions.py, pca.py, completion.py)

The prior is per-region colours unless a learned PCA basis is found: PriorSettings.basis_path, else
`<assets>/prior/albedo_pca.safetensors` in FACEALBEDO_ASSETS or the user cache folder (pca.py); build one
with `facealbedo prior build --images DIR --out FILE` (build.py).
"""
from inference_core.texture.prior import PriorSettings, prior_albedo
from inference_core.texture.unwrap import unwrap

__all__ = ["PriorSettings", "prior_albedo", "unwrap"]
