"""Differentiable shading inputs from Fragments: barycentrics, attribute interpolation, soft silhouettes.

Rasterisation picks which triangle each pixel sees (a discrete choice, no gradient); everything here is
recomputed from the pixel centres and the vertex positions, so gradients reach vertex positions and
attributes. Barycentrics and interpolation have hand-written backward passes (first order only).
"""
from __future__ import annotations

import torch

from inference_core.render.rasterize import Fragments


def barycentrics(verts_screen: torch.Tensor, triangles: torch.Tensor, fragments: Fragments, *,
                 packed: bool = False) -> torch.Tensor:
    """Perspective-correct barycentrics of the pixel centres, differentiable w.r.t. verts_screen.

    verts_screen: (V, 3) [pixel x, pixel y, camera z], the same that were rasterised; triangles: (F, 3).
    Returns (H, W, 3) with 0 on background, or (N, 3) rows for fragments.covered_pixels if `packed`.
    With s_k twice the signed area of (pixel centre, corner k+1, corner k+2), screen-space barycentrics
    are s_k / sum(s) and perspective-correct ones b_k = (s_k / z_k) / sum_j (s_j / z_j).
    """
    bary = _Barycentrics.apply(verts_screen, _corner_ids(triangles, fragments), fragments.covered_pixels,
                               fragments.image_size[0])
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
    values = _Interpolate.apply(attributes, _corner_ids(triangles, fragments), bary)
    return values if packed else fragments.unpack(values)


def _corner_ids(triangles: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """(3, N) vertex ids of the corners of the triangle seen at each covered pixel."""
    if triangles is fragments.triangles:
        return fragments.covered_corners  # computed once per rasterisation
    return triangles.t().contiguous().index_select(1, fragments.covered_triangles)


# The two functions below write their gradients out by hand, with the corner axis first so that every
# operation runs over contiguous (N,) rows: autograd's version of the same few lines costs several times
# more on CPU (broadcast reductions over 3-wide axes). tests/test_render.py checks them with gradcheck.


class _Barycentrics(torch.autograd.Function):
    """b_k = q_k / Q with q_k = s_k / z_k, Q = sum(q); inputs (V, 3) verts, (3, N) corner ids, (N,) pixels."""

    @staticmethod
    def forward(ctx, verts_screen: torch.Tensor, corner_ids: torch.Tensor, pixels: torch.Tensor,
                width: int) -> torch.Tensor:
        flat = corner_ids.reshape(-1)
        px = (pixels % width).to(verts_screen.dtype)
        py = torch.div(pixels, width, rounding_mode="floor").to(verts_screen.dtype)
        dx = verts_screen[:, 0].index_select(0, flat).reshape(3, -1) - px  # (3, N) corner minus pixel centre
        dy = verts_screen[:, 1].index_select(0, flat).reshape(3, -1) - py
        inverse_z = 1.0 / verts_screen[:, 2].index_select(0, flat).reshape(3, -1)
        doubled_areas = dx.roll(-1, 0) * dy.roll(-2, 0) - dy.roll(-1, 0) * dx.roll(-2, 0)  # s_k
        weighted = doubled_areas * inverse_z  # q_k
        inverse_total = 1.0 / (weighted[0] + weighted[1] + weighted[2])  # 1 / Q, (N,)
        bary = weighted * inverse_total  # (3, N)
        ctx.save_for_backward(corner_ids, dx, dy, inverse_z, bary, inverse_total)
        ctx.n_vertices = verts_screen.shape[0]
        return bary.t()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_bary: torch.Tensor):
        corner_ids, dx, dy, inverse_z, bary, inverse_total = ctx.saved_tensors
        grad = grad_bary.t()  # (3, N)
        grad_weighted = (grad - (grad * bary).sum(0)) * inverse_total  # dL/dq
        grad_areas = grad_weighted * inverse_z  # dL/ds
        grad_z = -grad_weighted * bary * inverse_z / inverse_total  # dL/dz = -dL/dq * s / z^2, s / z = b Q
        # s_k = dx_{k+1} dy_{k+2} - dy_{k+1} dx_{k+2}: corner k appears in s_{k+1} and s_{k+2}.
        a_next, a_next2 = grad_areas.roll(-1, 0), grad_areas.roll(-2, 0)
        grad_x = a_next2 * dy.roll(-1, 0) - a_next * dy.roll(-2, 0)
        grad_y = a_next * dx.roll(-2, 0) - a_next2 * dx.roll(-1, 0)
        flat_ids = corner_ids.reshape(-1)
        grad_verts = grad_x.new_zeros(3, ctx.n_vertices)  # coordinate-major: 1D index_add is fastest
        for coordinate, grad in enumerate((grad_x, grad_y, grad_z)):
            grad_verts[coordinate].index_add_(0, flat_ids, grad.reshape(-1))
        return grad_verts.t(), None, None, None


class _Interpolate(torch.autograd.Function):
    """values = sum_k b_k * attributes[corner k]; inputs (V, C) attributes, (3, N) corner ids, (N, 3) bary."""

    @staticmethod
    def forward(ctx, attributes: torch.Tensor, corner_ids: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
        weights = bary.t()  # (3, N)
        corner_values = [attributes.index_select(0, ids) for ids in corner_ids]  # 3 x (N, C)
        values = corner_values[0] * weights[0, :, None]
        for k in (1, 2):
            values = torch.addcmul(values, corner_values[k], weights[k, :, None])
        ctx.save_for_backward(corner_ids, weights, *corner_values)
        ctx.n_vertices = attributes.shape[0]
        return values

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_values: torch.Tensor):
        corner_ids, weights, *corner_values = ctx.saved_tensors
        grad_attributes = grad_bary = None
        if ctx.needs_input_grad[0]:
            grad_attributes = grad_values.new_zeros(ctx.n_vertices, grad_values.shape[1])
            for ids, weight in zip(corner_ids, weights):
                grad_attributes.index_add_(0, ids, grad_values * weight[:, None])
        if ctx.needs_input_grad[2]:
            grad_bary = torch.stack([(values * grad_values).sum(1) for values in corner_values], dim=1)
        return grad_attributes, None, grad_bary


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
