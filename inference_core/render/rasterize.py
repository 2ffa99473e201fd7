"""Screen-space z-buffer rasterisation in PyTorch (CPU and CUDA), vectorised over (triangle, pixel) pairs.

Triangles are grouped in buckets by the size of their pixel bounding box; in a bucket, every triangle
is tested against the pixel centres (integer coordinates) of a box of the bucket's size at once, as
planes evaluated over a dense (triangles, box pixels) grid. The nearest surface per pixel wins through
`scatter_reduce("amin")` over a packed int64 key: minus the float32 bit pattern of the inverse camera
depth (monotonic for positive floats) in the high 32 bits, the triangle id in the low 32 bits.
Rasterisation carries no gradients; `interpolate.barycentrics` recomputes differentiable barycentrics.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import torch

NEAR_Z = 1e-4
"""Triangles with a corner closer to the camera plane than this (camera z, same units) are not drawn."""
MAX_PAIRS_PER_CHUNK = 1 << 22
"""Candidate (triangle, pixel) pairs tested at once; bounds memory for huge triangles or images."""
MAX_MARGIN = 64
"""Spare columns and rows of the z-buffer; boxes up to this size need no clamping to the image."""
_NO_HIT = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Fragments:
    """What a rasteriser hands to the shaders: the visible triangle per pixel and where on it.

    triangle_id: (H, W) int64, index into the rasterised triangle list, -1 = background.
    depth: (H, W) camera z of the visible surface (float32 precision), +inf on background.
    bary: (H, W, 3) perspective-correct barycentrics of the pixel centres, detached, 0 on background;
    computed on first use from the rasterised vertices (shaders that need gradients call
    interpolate.barycentrics instead and never pay for it).
    "Packed" values are (N, C) rows for the covered pixels only, in `covered_pixels` order: shading and
    losses on packed rows skip the background (see `pack` and `unpack`).
    """

    triangle_id: torch.Tensor
    depth: torch.Tensor
    verts_screen: torch.Tensor  # (V, 3) detached [pixel x, pixel y, camera z] that were rasterised
    triangles: torch.Tensor  # (F, 3) int64, the rasterised triangle list

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
        """(N,) int64 flat indices (y * W + x) of the covered pixels, ascending."""
        return torch.nonzero(self.triangle_id.reshape(-1) >= 0).squeeze(1)

    @functools.cached_property
    def covered_triangles(self) -> torch.Tensor:
        """(N,) int64 triangle id seen at each covered pixel."""
        return self.triangle_id.reshape(-1).index_select(0, self.covered_pixels)

    @functools.cached_property
    def covered_corners(self) -> torch.Tensor:
        """(3, N) int64 vertex ids of the corners of the triangle seen at each covered pixel (corner-major)."""
        return self.triangles.t().contiguous().index_select(1, self.covered_triangles)

    @functools.cached_property
    def packed_bary(self) -> torch.Tensor:
        """(N, 3) detached perspective-correct barycentrics of the covered pixels."""
        from inference_core.render.interpolate import barycentrics

        return barycentrics(self.verts_screen, self.triangles, self, packed=True)

    @functools.cached_property
    def bary(self) -> torch.Tensor:
        """(H, W, 3) detached perspective-correct barycentrics, 0 on background."""
        return self.unpack(self.packed_bary)

    def pack(self, image: torch.Tensor) -> torch.Tensor:
        """(H, W, C) or (H, W) image -> (N, C) or (N,) values at the covered pixels."""
        height, width = self.triangle_id.shape
        return image.reshape(height * width, *image.shape[2:]).index_select(0, self.covered_pixels)

    def unpack(self, values: torch.Tensor, background: float = 0.0) -> torch.Tensor:
        """(N, C) or (N,) packed values -> (H, W, C) or (H, W) image, `background` elsewhere (differentiable)."""
        height, width = self.triangle_id.shape
        out = values.new_full((height * width, *values.shape[1:]), background)
        return out.index_copy(0, self.covered_pixels, values).reshape(height, width, *values.shape[1:])


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
    """(H, W) int64 packed keys (see _TriangleSetup.hits) of the nearest hit per pixel, _NO_HIT elsewhere."""
    setup = _TriangleSetup.build(verts, triangles, width, height, cull_backfaces)
    largest_side = max([max(w, h) for _, w, h in setup.buckets()], default=1)
    layout = _BufferLayout(width, height, margin=min(largest_side, MAX_MARGIN))
    nearest = torch.full((layout.size,), _NO_HIT, dtype=torch.int64, device=verts.device)
    first_pixel = setup.origin[1] * layout.stride + setup.origin[0]  # (T,) flat id of each box corner
    for rows, box_w, box_h in setup.buckets():
        per_chunk = max(1, MAX_PAIRS_PER_CHUNK // (box_w * box_h))
        for start in range(rows.start, rows.stop, per_chunk):
            chunk = slice(start, min(rows.stop, start + per_chunk))
            keys, inside = setup.hits(chunk, box_w, box_h)
            pixels = layout.candidate_pixels(setup.origin[:, chunk], first_pixel[chunk], box_w, box_h)
            nearest.scatter_reduce_(0, torch.where(inside, pixels, layout.dump).reshape(-1), keys.reshape(-1),
                                    reduce="amin")
    return layout.image(nearest)


@dataclass(frozen=True)
class _BufferLayout:
    """The flat z-buffer: the image, `margin` spare columns and rows, and one dump slot at the end.

    A candidate pixel past the right or bottom image edge lands in the spare columns or rows (box
    corners lie inside the image, so one margin beyond suffices for boxes up to `margin` pixels), and
    one outside its triangle lands in the dump slot: the inner loop needs no bound checks.
    """

    width: int
    height: int
    margin: int

    @property
    def stride(self) -> int:
        return self.width + self.margin

    @property
    def dump(self) -> int:
        return (self.height + self.margin) * self.stride

    @property
    def size(self) -> int:
        return self.dump + 1

    def candidate_pixels(self, origin: torch.Tensor, first_pixel: torch.Tensor, box_w: int, box_h: int
                         ) -> torch.Tensor:
        """(R, box_h * box_w) flat ids of a bucket chunk's candidates, row by row within each box."""
        lx, ly = _box_offsets(box_w, box_h, origin.device)
        if box_w <= self.margin and box_h <= self.margin:
            return first_pixel[:, None] + (ly * self.stride + lx)
        x = (origin[0, :, None] + lx).clamp_max(self.width)
        y = (origin[1, :, None] + ly).clamp_max(self.height)
        return y * self.stride + x

    def image(self, buffer: torch.Tensor) -> torch.Tensor:
        """The (H, W) image part of the flat buffer."""
        return buffer[: self.dump].reshape(self.height + self.margin, self.stride)[: self.height, : self.width]


def _box_offsets(box_w: int, box_h: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(K,) int64 column and row offsets of the box_w x box_h candidates, row by row."""
    lx = torch.arange(box_w, device=device).repeat(box_h)
    ly = torch.arange(box_h, device=device).repeat_interleave(box_w)
    return lx, ly


def _bucket_sides(longest: int, device: torch.device) -> torch.Tensor:
    """(longest + 1,) lookup table: box extent in pixels -> bucket side 1, 2, 3, 4, 6, 8, 12, 16, 24, ...

    Rounding extents up to these sizes keeps the buckets few and the wasted candidates under a third.
    """
    octaves = longest.bit_length() + 1
    sides = torch.tensor(sorted({1 << k for k in range(octaves)} | {3 << k for k in range(octaves)}))
    return sides[torch.searchsorted(sides, torch.arange(longest + 1))].to(device)


@dataclass(frozen=True)
class _TriangleSetup:
    """Per-triangle planes of the drawable triangles, sorted so that each size bucket is one slice.

    A bucket holds the triangles whose pixel bounding box, rounded up by `_bucket_sides`, has the same
    (width, height); its (triangle, pixel) candidates form one dense (triangles, width * height) grid.
    Over the local pixel offsets (lx, ly) from the box corner, each edge function and the inverse camera
    depth are planes a * lx + b * ly + c. Edge functions are oriented so that inside means all three are
    >= 0; centres on an edge count as inside, so two triangles sharing an edge leave no crack (exactly so
    when the arithmetic is exact, as for pixel-aligned input). Arrays keep the triangle axis last: 1D rows
    vectorise best.
    """

    triangle_id: torch.Tensor  # (T,) index into the caller's triangle list
    origin: torch.Tensor  # (2, T) int64 box corner (x0, y0), pixels
    planes: torch.Tensor  # (3 [a, b, c], 4 [edge 0, edge 1, edge 2, inverse depth], T)
    bucket_codes: list[int]  # rounded (width << 20 | height) of each bucket, ascending
    bucket_counts: list[int]  # triangles per bucket

    @staticmethod
    def build(verts: torch.Tensor, triangles: torch.Tensor, width: int, height: int,
              cull_backfaces: bool) -> "_TriangleSetup":
        corner_major = triangles.t()  # (3, F)
        x, y, z = (verts[:, k].index_select(0, corner_major.reshape(-1)).reshape(3, -1) for k in range(3))
        doubled_area = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
        drawable = (z.amin(0) >= NEAR_Z) & torch.isfinite(doubled_area) & (doubled_area != 0)
        if cull_backfaces:
            drawable &= doubled_area < 0  # clockwise on a y-down screen = counter-clockwise from outside
        lo = torch.stack([x.amin(0), y.amin(0)]).ceil_().clamp_min_(0)  # (2, F) box corner
        hi = torch.minimum(torch.stack([x.amax(0), y.amax(0)]).floor_(), lo.new_tensor([[width - 1], [height - 1]]))
        box_size = (hi - lo + 1).clamp_min(0).to(torch.int64)
        drawable &= (box_size > 0).all(0)
        # Edge function k = cross(v[k+2] - v[k+1], p - v[k+1]) = twice the area of (p, v[k+1], v[k+2]); it is
        # oriented by the triangle's winding so that inside means >= 0, and divided by |2A| a barycentric.
        x1, x2, y1, y2 = x.roll(-1, 0), x.roll(-2, 0), y.roll(-1, 0), y.roll(-2, 0)
        winding = torch.sign(doubled_area)
        dx, dy = (x2 - x1) * winding, (y2 - y1) * winding
        # Over the offsets (lx, ly) from the box corner: e = -dy * lx + dx * ly + c.
        c = dx * (lo[1] - y1) - dy * (lo[0] - x1)
        edges = torch.stack([-dy, dx, c])  # (3 [a, b, c], 3 edges, F)
        inverse_depth = (edges / (doubled_area.abs() * z)).sum(1, keepdim=True)  # sum of barycentric / z
        planes = torch.cat([edges, inverse_depth], dim=1)  # (3, 4, F)
        # Keep the drawable triangles, sorted by bucket.
        keep = torch.nonzero(drawable).squeeze(1)
        sides = _bucket_sides(max(width, height), verts.device)[box_size[:, keep]]
        code, order = torch.sort((sides[0] << 20) | sides[1])
        codes, counts = torch.unique_consecutive(code, return_counts=True)
        keep = keep[order]
        return _TriangleSetup(
            triangle_id=keep, origin=lo.index_select(1, keep).to(torch.int64), planes=planes.index_select(2, keep),
            bucket_codes=codes.tolist(), bucket_counts=counts.tolist(),
        )

    def buckets(self) -> list[tuple[slice, int, int]]:
        """[(rows, bucket box width, bucket box height)], rows being a slice of the sorted triangles."""
        ends = itertools.accumulate(self.bucket_counts)
        return [(slice(end - count, end), code >> 20, code & 0xFFFFF)
                for code, count, end in zip(self.bucket_codes, self.bucket_counts, ends)]

    def hits(self, rows: slice, box_w: int, box_h: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed z-buffer keys and inside flags of a bucket chunk's candidates, both (R, box_h * box_w).

        A key is triangle id - (float32 bits of 1 / z) * 2^32: smaller is nearer, ties go to the lower id.
        """
        a, b, c = self.planes[:, :, rows, None]  # each (4, R, 1)
        lx, ly = _box_offsets(box_w, box_h, a.device)
        values = torch.addcmul(torch.addcmul(c, a, lx.to(a.dtype)), b, ly.to(a.dtype))  # (4, R, K)
        inside = values[:3].amin(0) >= 0
        inverse_depth_bits = values[3].to(torch.float32).view(torch.int32).to(torch.int64)
        return torch.add(self.triangle_id[rows, None], inverse_depth_bits, alpha=-(1 << 32)), inside


def _fragments_from_zbuffer(verts: torch.Tensor, triangles: torch.Tensor, nearest: torch.Tensor,
                            width: int, height: int) -> Fragments:
    """Unpack the (H, W) z-buffer keys into triangle ids and depths."""
    covered = nearest != _NO_HIT
    triangle_id = torch.where(covered, nearest & _LOW32, -1)
    inverse_depth = (-(nearest >> 32)).to(torch.int32).view(torch.float32)
    depth = torch.where(covered, 1.0 / inverse_depth.to(verts.dtype), torch.inf)
    return Fragments(triangle_id=triangle_id, depth=depth, verts_screen=verts, triangles=triangles)
