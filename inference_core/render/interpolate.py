"""Differentiable shading inputs from Fragments: barycentrics, attribute interpolation, soft silhouettes.

Rasterisation picks which triangle each pixel sees (a discrete choice, no gradient); everything here is
recomputed from the pixel centres and the vertex positions, so gradients reach vertex positions and
attributes through ordinary autograd.
"""
from __future__ import annotations

import torch

from inference_core.render.rasterize import Fragments


def barycentrics_at_pixels(verts_screen: torch.Tensor, corners: torch.Tensor, pixels: torch.Tensor,
                           width: int) -> torch.Tensor:
    """(N, 3) perspective-correct barycentrics of pixel centres on triangles (differentiable).

    verts_screen: (V, 3) [pixel x, pixel y, camera z]; corners: (N, 3) vertex ids of each pixel's
    triangle; pixels: (N,) flat pixel indices y * width + x. With s_k twice the signed area of
    (pixel, corner k+1, corner k+2), screen-space barycentrics are s_k / sum(s) and perspective-correct
    ones b_k = (s_k / z_k) / sum_j (s_j / z_j). The gradient is written out by hand (_Barycentrics):
    autograd's version of these few lines costs several times more on CPU.
    """
    return _Barycentrics.apply(verts_screen, corners, pixels, width)


class _Barycentrics(torch.autograd.Function):
    """b_k = q_k / Q with q_k = s_k / z_k, Q = sum(q), and its closed-form gradient."""

    @staticmethod
    def forward(ctx, verts_screen: torch.Tensor, corners: torch.Tensor, pixels: torch.Tensor,
                width: int) -> torch.Tensor:
        px = (pixels % width).to(verts_screen.dtype)
        py = torch.div(pixels, width, rounding_mode="floor").to(verts_screen.dtype)
        corner_xyz = verts_screen.index_select(0, corners.reshape(-1)).reshape(-1, 3, 3)  # (N, corner, xyz)
        dx = corner_xyz[..., 0] - px[:, None]  # (N, 3) corner minus pixel centre
        dy = corner_xyz[..., 1] - py[:, None]
        inverse_z = 1.0 / corner_xyz[..., 2]
        doubled_areas = dx.roll(-1, 1) * dy.roll(-2, 1) - dy.roll(-1, 1) * dx.roll(-2, 1)  # s_k
        weighted = doubled_areas * inverse_z  # q_k
        inverse_total = 1.0 / weighted.sum(1, keepdim=True)  # 1 / Q
        bary = weighted * inverse_total
        ctx.save_for_backward(corners, dx, dy, inverse_z, bary, inverse_total)
        ctx.n_vertices = verts_screen.shape[0]
        return bary

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_bary: torch.Tensor):
        corners, dx, dy, inverse_z, bary, inverse_total = ctx.saved_tensors
        grad_weighted = (grad_bary - (grad_bary * bary).sum(1, keepdim=True)) * inverse_total  # dL/dq
        grad_areas = grad_weighted * inverse_z  # dL/ds
        grad_z = -grad_weighted * bary * inverse_z / inverse_total  # dL/dz = -dL/dq * s / z^2, s / z = b Q
        # s_k = dx_{k+1} dy_{k+2} - dy_{k+1} dx_{k+2}: corner k appears in s_{k+1} and s_{k+2}.
        a_next, a_next2 = grad_areas.roll(-1, 1), grad_areas.roll(-2, 1)
        grad_x = a_next2 * dy.roll(-1, 1) - a_next * dy.roll(-2, 1)
        grad_y = a_next * dx.roll(-2, 1) - a_next2 * dx.roll(-1, 1)
        per_corner = torch.stack([grad_x, grad_y, grad_z], dim=-1).reshape(-1, 3)
        grad_verts = per_corner.new_zeros(ctx.n_vertices, 3).index_add_(0, corners.reshape(-1), per_corner)
        return grad_verts, None, None, None


def barycentrics(verts_screen: torch.Tensor, triangles: torch.Tensor, fragments: Fragments, *,
                 packed: bool = False) -> torch.Tensor:
    """Perspective-correct barycentrics of the pixel centres, differentiable w.r.t. verts_screen.

    verts_screen: (V, 3) [pixel x, pixel y, camera z], the same that were rasterised; triangles: (F, 3).
    Returns (H, W, 3) with 0 on background, or (N, 3) rows for fragments.covered_pixels if `packed`.
    """
    width = fragments.image_size[0]
    corners = triangles.index_select(0, fragments.covered_triangles)
    bary = barycentrics_at_pixels(verts_screen, corners, fragments.covered_pixels, width)
    return bary if packed else fragments.unpack(bary)


def interpolate(attributes: torch.Tensor, triangles: torch.Tensor, fragments: Fragments,
                bary: torch.Tensor | None = None, *, packed: bool = False) -> torch.Tensor:
    """Vertex attributes (V, C) blended by barycentrics at each pixel, differentiable.

    bary: from `barycentrics` (for gradients to vertex positions), in the same layout as the result
    ((H, W, 3) image, or (N, 3) rows if `packed`), or None for the detached fragments' barycentrics.
    Returns (H, W, C) with 0 on background, or (N, C) rows for fragments.covered_pixels if `packed`.
    Interpolate several attributes in one call by concatenating them along C: the gathers cost most.
    """
    if bary is None:
        bary = fragments.packed_bary
    elif not packed:
        bary = fragments.pack(bary)
    corners = triangles.index_select(0, fragments.covered_triangles)  # (N, 3)
    corner_values = attributes.index_select(0, corners.reshape(-1)).reshape(len(corners), 3, -1)
    values = (corner_values * bary[..., None]).sum(1)  # (N, C)
    return values if packed else fragments.unpack(values)


def soft_silhouette(verts_screen: torch.Tensor, triangles: torch.Tensor, fragments: Fragments,
                    sigma_px: float = 1.0) -> torch.Tensor:
    """(H, W) antialiased coverage in [0, 1], differentiable w.r.t. vertex positions at the boundary.

    Near the outline of the rasterised region (pixel centre within 3 sigma of an outline edge) the
    coverage is sigmoid(+-d / sigma), d being the distance from the pixel centre to the nearest outline
    edge, + inside the hard mask and - outside, rescaled so that it reaches exactly 0 and 1 at d = 3 sigma
    (no jump where the band ends); elsewhere it is the hard mask. Outline edges are the mesh's silhouette
    edges (bordering one triangle, or joining a front- and a back-facing one) that lie on the outline of
    the hard mask. Summed over pixels it approximates the projected area (corners get rounded), so moving
    an edge outwards raises the sum by the edge length per pixel of motion.
    """
    width, height = fragments.image_size
    hard = fragments.mask.to(verts_screen.dtype).reshape(-1)
    radius = 3.0 * sigma_px
    edges = _silhouette_edges(verts_screen.detach(), triangles, fragments)  # (E, 2) vertex ids
    nearest = _nearest_edge(verts_screen.detach()[:, :2], edges, radius, width, height)  # (H*W,)
    pixels = torch.nonzero(nearest >= 0).squeeze(1)
    if len(pixels) == 0:
        return hard.reshape(height, width)
    ends = edges.index_select(0, nearest.index_select(0, pixels))  # (P, 2)
    centres = torch.stack([pixels % width, torch.div(pixels, width, rounding_mode="floor")], 1)
    distance = _segment_distance(centres.to(verts_screen.dtype), verts_screen[ends[:, 0], :2],
                                 verts_screen[ends[:, 1], :2])
    signed = torch.where(hard.index_select(0, pixels) > 0, distance, -distance)
    low = torch.sigmoid(torch.tensor(-radius / sigma_px, dtype=verts_screen.dtype))
    soft = ((torch.sigmoid(signed / sigma_px) - low) / (1 - 2 * low)).clamp(0, 1)
    return hard.index_copy(0, pixels, soft).reshape(height, width)


def _silhouette_edges(verts_screen: torch.Tensor, triangles: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """(E, 2) vertex ids of the silhouette edges that lie on the outline of the hard mask.

    Silhouette edges border one triangle only or join triangles of opposite screen winding. One lies on
    the outline when, one pixel from its midpoint along its normal, one side is covered and the other
    not; this drops contours hidden inside the covered region (e.g. behind the nose or a jaw fold).
    """
    # Every triangle edge (opposite corner k: corners k+1, k+2), keyed by its sorted vertex pair.
    first, second = triangles.roll(-1, 1), triangles.roll(-2, 1)  # (F, 3)
    low, high = torch.minimum(first, second), torch.maximum(first, second)
    corners = verts_screen[triangles][..., :2]  # (F, 3, 2)
    side_a, side_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    facing = torch.sign(side_a[:, 0] * side_b[:, 1] - side_a[:, 1] * side_b[:, 0])  # (F,) screen winding
    unique_keys, edge_of, count = torch.unique((low * len(verts_screen) + high).reshape(-1), return_inverse=True,
                                               return_counts=True)
    facing_per_edge = facing[:, None].expand(-1, 3).reshape(-1)
    lowest = facing.new_full((len(unique_keys),), 2.0).scatter_reduce(0, edge_of, facing_per_edge, reduce="amin")
    highest = facing.new_full((len(unique_keys),), -2.0).scatter_reduce(0, edge_of, facing_per_edge, reduce="amax")
    silhouette = (count == 1) | (lowest != highest)
    ends = torch.stack([unique_keys // len(verts_screen), unique_keys % len(verts_screen)], 1)[silhouette]
    ends = ends[(verts_screen[ends[:, 0], 2] > 0) & (verts_screen[ends[:, 1], 2] > 0)]
    start, end = verts_screen[ends[:, 0], :2], verts_screen[ends[:, 1], :2]
    normal = torch.stack([start[:, 1] - end[:, 1], end[:, 0] - start[:, 0]], 1)
    normal = normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-12)
    middle = (start + end) / 2
    on_outline = _covered_at(fragments, middle + normal) != _covered_at(fragments, middle - normal)
    return ends[on_outline]


def _covered_at(fragments: Fragments, points: torch.Tensor) -> torch.Tensor:
    """(N,) bool: is the pixel nearest to each point (N, 2) covered? Points off the image are not."""
    width, height = fragments.image_size
    pixel = torch.round(points).to(torch.int64)
    in_view = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
    index = (pixel[:, 1].clamp(0, height - 1) * width + pixel[:, 0].clamp(0, width - 1))
    return in_view & fragments.mask.reshape(-1)[index]


def _nearest_edge(points: torch.Tensor, edges: torch.Tensor, radius: float, width: int, height: int) -> torch.Tensor:
    """(H*W,) id of the nearest edge within `radius` px of each pixel centre, -1 where none is (no gradients).

    Each edge is expanded to the pixels of its bounding box grown by the radius; the nearest wins per pixel
    through scatter_reduce("amin") over (float32 distance bits << 32 | edge id), as in the z-buffer.
    """
    start, end = points[edges[:, 0]], points[edges[:, 1]]  # (E, 2)
    lo = (torch.minimum(start, end) - radius).ceil().clamp_min(0)
    hi = torch.minimum((torch.maximum(start, end) + radius).floor(), points.new_tensor([width - 1, height - 1]))
    size = (hi - lo + 1).clamp_min(0).to(torch.int64)  # (E, 2)
    counts = size[:, 0] * size[:, 1]
    edge = torch.repeat_interleave(torch.arange(len(edges), device=points.device), counts)
    rank = torch.arange(len(edge), device=points.device) - (torch.cumsum(counts, 0) - counts)[edge]
    x = lo[edge, 0].to(torch.int64) + rank % size[edge, 0]
    y = lo[edge, 1].to(torch.int64) + torch.div(rank, size[edge, 0], rounding_mode="floor")
    distance = _segment_distance(torch.stack([x, y], 1).to(points.dtype), start[edge], end[edge])
    near = distance <= radius
    keys = (distance[near].to(torch.float32).view(torch.int32).to(torch.int64) << 32) | edge[near]
    no_hit = torch.iinfo(torch.int64).max
    best = torch.full((width * height,), no_hit, dtype=torch.int64, device=points.device)
    best.scatter_reduce_(0, y[near] * width + x[near], keys, reduce="amin")
    return torch.where(best == no_hit, -1, best & 0xFFFFFFFF)


def _segment_distance(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """(N,) Euclidean distance from points (N, 2) to segments start-end (N, 2), smooth where it is 0."""
    direction = end - start
    along = ((points - start) * direction).sum(1) / (direction * direction).sum(1).clamp_min(1e-12)
    closest = start + along.clamp(0, 1)[:, None] * direction
    return torch.sqrt(((points - closest) ** 2).sum(1) + 1e-12)
