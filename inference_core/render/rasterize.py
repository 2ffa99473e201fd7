"""Screen-space z-buffer rasterisation in PyTorch (CPU and CUDA), vectorised over (triangle, pixel) pairs.

Each triangle is expanded to the pixel centres of its bounding box (pixel centres sit at integer
coordinates), the centres are tested against the three edges, and the nearest surface per pixel wins
through one `scatter_reduce("amin")` over a packed int64 key: the float32 bit pattern of the camera depth
(monotonic for positive floats) in the high 32 bits, the triangle id in the low 32 bits. Rasterisation
carries no gradients; `interpolate.barycentrics` recomputes differentiable barycentrics afterwards.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

NEAR_Z = 1e-4
"""Triangles with a corner closer to the camera plane than this (camera z, same units) are not drawn."""
MAX_PAIRS_PER_CHUNK = 1 << 22
"""Candidate (triangle, pixel) pairs tested at once; bounds memory for huge triangles or images."""
_NO_HIT = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Fragments:
    """What a rasteriser hands to the shaders: the visible triangle per pixel and where on it.

    triangle_id: (H, W) int64, index into the rasterised triangle list, -1 = background.
    bary: (H, W, 3) float, perspective-correct barycentrics of the pixel centre, detached (0 on background).
    depth: (H, W) float, camera z of the visible surface, +inf on background.
    """

    triangle_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.triangle_id.shape[1]), int(self.triangle_id.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        """(H, W) bool, True where a triangle is visible."""
        return self.triangle_id >= 0

    @functools.cached_property
    def covered_pixels(self) -> torch.Tensor:
        """(N,) int64 flat indices (y * W + x) of the covered pixels, computed once and shared by shaders."""
        return torch.nonzero(self.triangle_id.reshape(-1) >= 0).squeeze(1)


def rasterize(verts_screen: torch.Tensor, triangles: torch.Tensor, image_size: tuple[int, int], *,
              cull_backfaces: bool = False, backend: str = "torch") -> Fragments:
    """Z-buffer rasterisation: the nearest triangle covering each pixel centre.

    verts_screen: (V, 3) [pixel x, pixel y, camera z] (camera.project plus the camera-space z).
    triangles: (F, 3) int64 vertex ids. image_size: (width, height).
    cull_backfaces: drop triangles facing away from the camera (counter-clockwise seen from outside, as
    the ICT mesh is, means clockwise on screen because pixel y points down). Default: both windings drawn.
    backend: "torch" (this module) or "pytorch3d" (where that package is installed).
    Triangles behind or touching the camera plane (any corner z < NEAR_Z) and degenerate ones are skipped;
    centres exactly on an edge count as inside, so meshes have no cracks.
    """
    if backend == "pytorch3d":
        from inference_core.render.pytorch3d_backend import rasterize_pytorch3d

        return rasterize_pytorch3d(verts_screen, triangles, image_size, cull_backfaces=cull_backfaces)
    if backend != "torch":
        raise ValueError(f"unknown rasteriser backend {backend!r}: use 'torch' or 'pytorch3d'")
    width, height = int(image_size[0]), int(image_size[1])
    verts = verts_screen.detach()
    triangles = triangles.to(device=verts.device, dtype=torch.int64)
    nearest = _zbuffer(verts, triangles, width, height, cull_backfaces)
    return _fragments_from_zbuffer(verts, triangles, nearest, width, height)


def _zbuffer(verts: torch.Tensor, triangles: torch.Tensor, width: int, height: int,
             cull_backfaces: bool) -> torch.Tensor:
    """(H*W,) int64 packed keys (depth bits << 32 | triangle id) of the nearest hit, _NO_HIT elsewhere."""
    setup = _TriangleSetup.build(verts, triangles, width, height, cull_backfaces)
    nearest = torch.full((height * width,), _NO_HIT, dtype=torch.int64, device=verts.device)
    total = setup.total_pairs
    for start in range(0, total, MAX_PAIRS_PER_CHUNK):
        pair_triangle, pixel_x, pixel_y = setup.candidate_pairs(start, min(total, start + MAX_PAIRS_PER_CHUNK))
        inside, depth = setup.test(pair_triangle, pixel_x, pixel_y)
        pair_triangle, depth = pair_triangle[inside], depth[inside]
        depth_bits = depth.to(torch.float32).view(torch.int32).to(torch.int64)
        keys = (depth_bits << 32) | setup.triangle_id[pair_triangle]
        pixel = pixel_y[inside] * width + pixel_x[inside]
        nearest.scatter_reduce_(0, pixel, keys, reduce="amin")
    return nearest


@dataclass(frozen=True)
class _TriangleSetup:
    """Per-triangle quantities for the drawable triangles (those with a non-empty pixel bounding box).

    Edge functions are evaluated in float64 with each edge written from its smaller to its larger
    vertex id, so that two triangles sharing an edge compute bit-identical values of opposite sign.
    """

    triangle_id: torch.Tensor  # (T,) index into the caller's triangle list
    x0: torch.Tensor  # (T,) int64 first pixel column of the bounding box
    y0: torch.Tensor  # (T,) int64 first pixel row
    box_width: torch.Tensor  # (T,) int64
    box_pixels: torch.Tensor  # (T,) int64 pixel count of the bounding box
    first_pair: torch.Tensor  # (T,) int64 index of the triangle's first pair in the enumeration
    edges: torch.Tensor  # (T, 3, 4) float64 [start x, start y, dx, dy] of each canonical edge
    edge_signs: torch.Tensor  # (T, 3) float64, +-1 / area: turns canonical edge values into barycentrics
    inverse_z: torch.Tensor  # (T, 3) float64 1 / camera z of the corners

    @staticmethod
    def build(verts: torch.Tensor, triangles: torch.Tensor, width: int, height: int,
              cull_backfaces: bool) -> "_TriangleSetup":
        corners = verts[triangles].to(torch.float64)  # (F, 3, 3)
        xy, z = corners[..., :2], corners[..., 2]
        doubled_area = _cross2(xy[:, 1] - xy[:, 0], xy[:, 2] - xy[:, 0])
        drawable = (z.amin(1) >= NEAR_Z) & torch.isfinite(corners).all(2).all(1) & (doubled_area != 0)
        if cull_backfaces:
            drawable &= doubled_area < 0  # clockwise on a y-down screen = counter-clockwise from outside
        x0 = torch.ceil(xy[..., 0].amin(1)).clamp(0, width)
        x1 = torch.floor(xy[..., 0].amax(1)).clamp(-1, width - 1)
        y0 = torch.ceil(xy[..., 1].amin(1)).clamp(0, height)
        y1 = torch.floor(xy[..., 1].amax(1)).clamp(-1, height - 1)
        box_width = (x1 - x0 + 1).clamp_min(0).to(torch.int64)
        box_height = (y1 - y0 + 1).clamp_min(0).to(torch.int64)
        drawable &= (box_width > 0) & (box_height > 0)
        keep = torch.nonzero(drawable).squeeze(1)
        tri = triangles[keep]
        xy, z, doubled_area = xy[keep], z[keep], doubled_area[keep]
        # Edge k is opposite corner k: from corner k+1 to corner k+2, flipped to run from the smaller id.
        start_corner = torch.tensor([1, 2, 0], device=verts.device)
        end_corner = torch.tensor([2, 0, 1], device=verts.device)
        forward = tri[:, start_corner] < tri[:, end_corner]  # (T, 3)
        first = torch.where(forward[..., None], xy[:, start_corner], xy[:, end_corner])
        second = torch.where(forward[..., None], xy[:, end_corner], xy[:, start_corner])
        edges = torch.cat([first, second - first], dim=-1)
        edge_signs = torch.where(forward, 1.0, -1.0).to(torch.float64) / doubled_area[:, None]
        box_pixels = box_width[keep] * box_height[keep]
        return _TriangleSetup(
            triangle_id=keep, x0=x0[keep].to(torch.int64), y0=y0[keep].to(torch.int64),
            box_width=box_width[keep], box_pixels=box_pixels, first_pair=torch.cumsum(box_pixels, 0) - box_pixels,
            edges=edges, edge_signs=edge_signs, inverse_z=1.0 / z,
        )

    @property
    def total_pairs(self) -> int:
        return int(self.box_pixels.sum())

    def candidate_pairs(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pairs start..stop-1 of the (triangle, bounding-box pixel) enumeration: (P,) triangle, x, y."""
        device = self.box_pixels.device
        pair = torch.arange(start, stop, device=device)
        if start == 0 and stop == self.total_pairs:  # the usual single chunk: a cheaper expansion
            pair_triangle = torch.repeat_interleave(torch.arange(len(self.box_pixels), device=device),
                                                    self.box_pixels, output_size=stop)
        else:
            pair_triangle = torch.searchsorted(self.first_pair, pair, right=True) - 1
        rank = pair - self.first_pair[pair_triangle]
        box_width = self.box_width[pair_triangle]
        return pair_triangle, self.x0[pair_triangle] + rank % box_width, self.y0[pair_triangle] + rank // box_width

    def test(self, pair_triangle: torch.Tensor, pixel_x: torch.Tensor, pixel_y: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) inside flags and (P,) float64 perspective-correct camera depth of each pair."""
        edges = self.edges[pair_triangle]  # (P, 3, 4)
        px = pixel_x.to(torch.float64)[:, None]
        py = pixel_y.to(torch.float64)[:, None]
        values = edges[..., 2] * (py - edges[..., 1]) - edges[..., 3] * (px - edges[..., 0])
        screen_bary = values * self.edge_signs[pair_triangle]  # (P, 3), sums to 1
        inside = (screen_bary >= 0).all(1)
        depth = 1.0 / (screen_bary * self.inverse_z[pair_triangle]).sum(1)
        return inside, depth


def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z of the 2D cross product of (..., 2) vectors."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _fragments_from_zbuffer(verts: torch.Tensor, triangles: torch.Tensor, nearest: torch.Tensor,
                            width: int, height: int) -> Fragments:
    """Unpack the z-buffer keys and compute the (detached) barycentrics of the visible triangles."""
    from inference_core.render.interpolate import barycentrics_at_pixels

    covered = nearest != _NO_HIT
    triangle_id = torch.where(covered, nearest & _LOW32, -1)
    pixels = torch.nonzero(covered).squeeze(1)
    corners = triangles[triangle_id[pixels]]  # (N, 3)
    bary = verts.new_zeros(height * width, 3)
    bary[pixels] = barycentrics_at_pixels(verts, corners, pixels, width)
    depth = torch.full((height * width,), torch.inf, dtype=verts.dtype, device=verts.device)
    depth[pixels] = (bary[pixels] * verts[corners, 2]).sum(1)  # perspective-correct: = 1 / sum(l_i / z_i)
    return Fragments(triangle_id=triangle_id.reshape(height, width), bary=bary.reshape(height, width, 3),
                     depth=depth.reshape(height, width))
