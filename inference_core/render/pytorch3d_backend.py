"""The same Fragments from PyTorch3D's rasteriser, for machines where PyTorch3D is installed.

Only the visible triangle per pixel is taken from PyTorch3D; depth and barycentrics are then computed
exactly as for the built-in rasteriser, so both backends feed the shaders identical quantities.
PyTorch3D's NDC has +X left and +Y up, the shorter image side spanning [-1, 1], so pixel centre (x, y)
(x right, y down, integer centres) sits at ((W - 1 - 2x) / S, (H - 1 - 2y) / S) with S = min(W, H).
Not installable on this project's Python here; the parity test runs wherever it imports.
"""
from __future__ import annotations

import torch

from inference_core.render.rasterize import Fragments


def rasterize_pytorch3d(verts_screen: torch.Tensor, triangles: torch.Tensor, image_size: tuple[int, int], *,
                        cull_backfaces: bool = False) -> Fragments:
    """Drop-in for rasterize(..., backend="pytorch3d"): (V, 3) [pixel x, pixel y, camera z], (F, 3), (W, H)."""
    try:
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as exc:
        raise ImportError("backend='pytorch3d' needs the pytorch3d package; use backend='torch'") from exc
    width, height = int(image_size[0]), int(image_size[1])
    verts = verts_screen.detach()
    triangles = triangles.to(device=verts.device, dtype=torch.int64)
    shorter = min(width, height)
    ndc = torch.stack([(width - 1 - 2 * verts[:, 0]) / shorter, (height - 1 - 2 * verts[:, 1]) / shorter,
                       verts[:, 2]], dim=1)
    mesh = Meshes(verts=[ndc.to(torch.float32)], faces=[triangles])
    # PyTorch3D's NDC flips x, so a face's screen winding flips too: its "back" is our front.
    pix_to_face, _, _, _ = rasterize_meshes(mesh, image_size=(height, width), blur_radius=0.0, faces_per_pixel=1,
                                            perspective_correct=False, cull_backfaces=False)
    triangle_id = pix_to_face[0, ..., 0].to(torch.int64)  # (H, W), -1 = background
    if cull_backfaces:
        triangle_id = _drop_back_facing(verts, triangles, triangle_id)
    return _with_depth(Fragments(triangle_id=triangle_id, depth=torch.empty(0), verts_screen=verts,
                                 triangles=triangles))


def _drop_back_facing(verts: torch.Tensor, triangles: torch.Tensor, triangle_id: torch.Tensor) -> torch.Tensor:
    """Background where the visible triangle winds counter-clockwise on screen (faces away, see rasterize)."""
    corners = verts[triangles][..., :2]
    side_a, side_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    back = (side_a[:, 0] * side_b[:, 1] - side_a[:, 1] * side_b[:, 0]) > 0
    return torch.where((triangle_id >= 0) & back[triangle_id.clamp_min(0)], -1, triangle_id)


def _with_depth(fragments: Fragments) -> Fragments:
    """Fill in the camera depth of the visible surface, as the built-in rasteriser reports it."""
    height, width = fragments.triangle_id.shape
    corners = fragments.triangles.index_select(0, fragments.covered_triangles)
    z = fragments.verts_screen[:, 2].index_select(0, corners.reshape(-1)).reshape(-1, 3)
    depth = torch.full((height * width,), torch.inf, dtype=fragments.verts_screen.dtype,
                       device=fragments.verts_screen.device)
    depth[fragments.covered_pixels] = (fragments.packed_bary * z).sum(1)
    return Fragments(triangle_id=fragments.triangle_id, depth=depth.reshape(height, width),
                     verts_screen=fragments.verts_screen, triangles=fragments.triangles)
