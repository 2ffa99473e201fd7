"""Differentiable rendering in PyTorch (CPU and CUDA), in small composable pieces.

- camera.py      rigid transform, perspective projection, rotation parameterisation
- sh.py          real SH bands 0-2 and Lambertian shading (the one place for the constants)
- rasterize.py   screen-space rasterisation -> Fragments (triangle id, barycentrics, depth)
- interpolate.py differentiable attribute interpolation and soft silhouettes
- uv.py          rasterisation in UV space (unwrapping and baking)
"""
