"""Differentiable rendering in PyTorch (CPU and CUDA), in small composable pieces.

- camera.py      rigid transform, perspective projection, rotation parameterisation
- sh.py          real SH bands 0-2 and Lambertian shading (the one place for the constants)
- rasterize.py   screen-space z-buffer rasterisation -> Fragments (triangle id, depth, barycentrics)
- interpolate.py differentiable barycentrics, attribute interpolation and soft silhouettes
- uv.py          rasterisation in the texel grid of a UDIM tile (unwrapping and baking)
- pytorch3d_backend.py  the same Fragments from PyTorch3D's rasteriser, where it is installed

A render step (screen vertices = camera.project(...) with the camera z appended):

    fragments = rasterize(verts_screen, triangles, (W, H))               # no gradients
    bary = barycentrics(verts_screen, triangles, fragments, packed=True)  # (N, 3), grads to vertices
    albedo_normals = interpolate(torch.cat([albedo, normals], 1), triangles, fragments, bary, packed=True)
    colour = albedo_normals[:, :3] * sh.shading(F.normalize(albedo_normals[:, 3:], dim=-1), lighting)
    loss = (colour - fragments.pack(photo)).abs().mean()                 # covered pixels only
    image = fragments.unpack(colour)                                     # (H, W, 3) for looking

"Packed" (N, C) rows hold the covered pixels only (fragments.covered_pixels order) and skip the
background: use them in loops; the (H, W, C) forms (packed=False, the default) are for convenience.
"""
from inference_core.render.interpolate import barycentrics, interpolate, soft_silhouette
from inference_core.render.rasterize import Fragments, rasterize
from inference_core.render.uv import rasterize_uv, texel_attributes, uv_to_texel

__all__ = ["Fragments", "barycentrics", "interpolate", "rasterize", "rasterize_uv", "soft_silhouette",
           "texel_attributes", "uv_to_texel"]
