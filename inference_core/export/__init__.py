"""The result folder (DESIGN.md, "Result folder" and "File formats"): `write_result()` writes one atomically.

Modules: folder (atomic temp folder + rename), mesh (exported parts and materials), obj, gltf, images
(sRGB PNG, HDR), camera (camera.json), lighting (lighting.json, environment.hdr, illumination.npz),
manifest (manifest.json and its schema), result (write_result).
"""
from inference_core.export.result import write_result

__all__ = ["write_result"]
