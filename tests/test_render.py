"""The renderer against analytic images: a plane, a sphere under SH light, z-buffer order, gradients, UV coverage."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from inference_core.render import sh
from inference_core.render.interpolate import barycentrics, interpolate, soft_silhouette
from inference_core.render.rasterize import Fragments, rasterize
from inference_core.render.uv import rasterize_uv, texel_attributes


def screen(points_camera: torch.Tensor, focal: float, centre: tuple[float, float]) -> torch.Tensor:
    """(V, 3) camera-space points -> (V, 3) [pixel x, pixel y, camera z]."""
    z = points_camera[:, 2:]
    xy = points_camera[:, :2] / z * focal + points_camera.new_tensor(centre)
    return torch.cat([xy, z], dim=1)


def pixel_rays(width: int, height: int, focal: float, centre: tuple[float, float]) -> torch.Tensor:
    """(H, W, 3) camera-space ray directions through the pixel centres, z = 1."""
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    return torch.stack([(x - centre[0]) / focal, (y - centre[1]) / focal, torch.ones_like(x)], dim=-1)


def uv_sphere(n_lat: int, n_lon: int, radius: float, centre: tuple[float, float, float]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """A latitude-longitude sphere: (V, 3) float64 vertices and (F, 3) int64 triangles."""
    theta = torch.linspace(0, math.pi, n_lat + 1, dtype=torch.float64)
    phi = torch.linspace(0, 2 * math.pi, n_lon + 1, dtype=torch.float64)[:-1]
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    unit = torch.stack([torch.sin(t) * torch.cos(p), torch.cos(t), torch.sin(t) * torch.sin(p)], -1).reshape(-1, 3)
    i, j = torch.meshgrid(torch.arange(n_lat), torch.arange(n_lon), indexing="ij")
    a = i * n_lon + j
    b = i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    triangles = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return unit * radius + torch.tensor(centre, dtype=torch.float64), triangles


@pytest.fixture(scope="module")
def sphere_scene():
    """A finely tessellated unit sphere 4 units in front of a 96 x 96 camera."""
    size, focal, distance = 96, 120.0, 4.0
    centre = ((size - 1) / 2, (size - 1) / 2)
    verts, triangles = uv_sphere(96, 192, 1.0, (0.0, 0.0, distance))
    verts_screen = screen(verts, focal, centre)
    fragments = rasterize(verts_screen, triangles, (size, size))
    rays = pixel_rays(size, size, focal, centre)
    # Analytic: the nearest ray-sphere intersection t * ray with |t * ray - c| = 1.
    c = torch.tensor([0.0, 0.0, distance], dtype=torch.float64)
    along = (rays @ c) / (rays * rays).sum(-1)
    closest = along[..., None] * rays - c
    half_chord2 = (1 - (closest * closest).sum(-1)) / (rays * rays).sum(-1)
    hit = half_chord2 > 0
    t = along - torch.sqrt(half_chord2.clamp_min(0))
    normals = t[..., None] * rays - c
    disc_radius = focal / math.sqrt(distance ** 2 - 1)
    return dict(size=size, verts=verts, triangles=triangles, verts_screen=verts_screen, fragments=fragments,
                hit=hit, normals=normals, depth=t, disc_radius=disc_radius, centre=centre)


def test_sphere_silhouette_is_the_analytic_disc(sphere_scene):
    s = sphere_scene
    mask, hit = s["fragments"].mask, s["hit"]
    y, x = np.mgrid[: s["size"], : s["size"]]
    radial = np.hypot(x - s["centre"][0], y - s["centre"][1])
    disagree = (mask != hit).numpy()
    assert disagree.sum() <= 0.01 * hit.sum().item()
    assert np.all(np.abs(radial[disagree] - s["disc_radius"]) < 1.0), "mismatches only on the outline"
    # Soft coverage: its sum is the disc area, and growing the disc by a factor (1 + e) grows it by 2 e area.
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    image_centre = torch.tensor([*s["centre"], 0.0], dtype=torch.float64)
    scaled = image_centre + (s["verts_screen"] - image_centre) * torch.stack([scale, scale, scale ** 0])
    soft = soft_silhouette(scaled, s["triangles"], s["fragments"], sigma_px=1.0)
    area = math.pi * s["disc_radius"] ** 2
    assert float(soft.detach().min()) >= 0 and float(soft.detach().max()) <= 1
    assert int(((soft > 0) & (soft < 1)).sum()) > 4 * 2 * math.pi * s["disc_radius"]  # a band around the outline
    assert float(soft.detach().sum()) == pytest.approx(area, rel=0.002)
    soft.sum().backward()
    assert float(scale.grad) == pytest.approx(2 * area, rel=0.02)


def test_sphere_under_sh_light_matches_analytic_shading(sphere_scene):
    s = sphere_scene
    fragments, triangles = s["fragments"], s["triangles"]
    lighting = torch.tensor([[2.0, 1.8, 1.5], [0.4, 0.3, 0.2], [-0.8, -0.7, -0.6], [0.3, 0.2, 0.1],
                             [0.1, 0.0, 0.1], [-0.1, 0.1, 0.0], [0.2, 0.1, 0.1], [0.0, -0.1, 0.1],
                             [0.1, 0.1, -0.1]], dtype=torch.float64)
    unit_normals = torch.nn.functional.normalize(s["verts"] - s["verts"].mean(0), dim=-1)
    bary = barycentrics(s["verts_screen"], triangles, fragments)
    rendered_normals = torch.nn.functional.normalize(interpolate(unit_normals, triangles, fragments, bary), dim=-1)
    rendered = sh.shading(rendered_normals, lighting)
    expected = sh.shading(s["normals"], lighting)
    both = fragments.mask & s["hit"]
    error = (rendered - expected)[both]
    psnr = 10 * math.log10(float(expected[both].max()) ** 2 / float((error ** 2).mean()))
    assert psnr > 45, psnr
    assert float(error.abs().max()) < 0.02 * float(expected[both].max())
    facing = both & (s["normals"][..., 2] < -0.5)  # away from grazing rays, which magnify the facet sag
    depth_error = (fragments.depth - s["depth"])[facing].abs().max()
    assert float(depth_error) < 1e-3  # the facets lie inside the sphere by at most 1 - cos(pi / 96) / 2


def test_tilted_plane_depth_and_perspective_correct_interpolation():
    size, focal, centre = 48, 60.0, (23.5, 23.5)
    # Plane z = 3 + 0.5 x (camera space), a quad much larger than the view.
    corners = torch.tensor([[-2.0, -2.0], [2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]], dtype=torch.float64)
    points = torch.cat([corners, 3 + 0.5 * corners[:, :1]], dim=1)
    triangles = torch.tensor([[0, 1, 2], [0, 2, 3]])
    verts_screen = screen(points, focal, centre)
    fragments = rasterize(verts_screen, triangles, (size, size))
    rays = pixel_rays(size, size, focal, centre)
    t = 3 / (1 - 0.5 * rays[..., 0])  # z of the ray-plane intersection
    assert bool(fragments.mask.all())
    torch.testing.assert_close(fragments.depth, t, rtol=1e-6, atol=0)  # float32 z-buffer precision
    position = interpolate(points, triangles, fragments, barycentrics(verts_screen, triangles, fragments))
    torch.testing.assert_close(position, t[..., None] * rays, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fragments.bary.sum(-1), torch.ones(size, size, dtype=torch.float64))


def test_zbuffer_keeps_the_nearest_surface_in_any_order():
    size = 32
    near = torch.tensor([[2.0, 2.0, 2.0], [29.0, 4.0, 2.0], [4.0, 29.0, 2.0]])
    far = torch.tensor([[1.0, 30.0, 5.0], [30.0, 30.0, 5.0], [30.0, 1.0, 5.0]])
    verts = torch.cat([near, far])
    for triangles in (torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([[3, 4, 5], [0, 1, 2]])):
        fragments = rasterize(verts, triangles, (size, size))
        near_id = int((triangles[:, 0] == 0).nonzero())
        seen = fragments.triangle_id
        both = (seen >= 0) & (fragments.depth < 3)
        assert bool((seen[both] == near_id).all()) and int(both.sum()) > 100
        assert bool((fragments.depth[seen == 1 - near_id] == 5).all()) and int((seen == 1 - near_id).sum()) > 100


def test_interpenetrating_triangles_resolve_per_pixel():
    # Two triangles crossing at x = 16: the left part of A is nearer, the right part of B.
    verts = torch.tensor([[0.0, 0.0, 1.0], [31.0, 0.0, 3.0], [0.0, 31.0, 1.0],
                          [0.0, 0.0, 3.0], [31.0, 0.0, 1.0], [31.0, 31.0, 1.0]], dtype=torch.float64)
    fragments = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), (32, 32))
    ids = fragments.triangle_id
    assert bool((ids[1:10, 2:12] == 0).all()) and bool((ids[1:10, 20:30] == 1).all())


def test_backface_culling_drops_triangles_facing_away():
    verts = torch.tensor([[2.0, 2.0, 1.0], [12.0, 2.0, 1.0], [2.0, 12.0, 1.0]])
    counter_clockwise_on_screen = torch.tensor([[0, 1, 2]])  # y down: this winding faces away
    clockwise_on_screen = torch.tensor([[0, 2, 1]])
    assert rasterize(verts, counter_clockwise_on_screen, (16, 16)).mask.any()
    assert not rasterize(verts, counter_clockwise_on_screen, (16, 16), cull_backfaces=True).mask.any()
    assert rasterize(verts, clockwise_on_screen, (16, 16), cull_backfaces=True).mask.any()


def test_degenerate_and_behind_camera_triangles_are_skipped():
    verts = torch.tensor([[2.0, 2.0, 1.0], [12.0, 2.0, 1.0], [2.0, 12.0, -1.0], [7.0, 7.0, 1.0]])
    triangles = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 3, 3]])  # behind camera, sliver, collapsed
    fragments = rasterize(verts, triangles, (16, 16))
    assert set(fragments.triangle_id.unique().tolist()) <= {-1, 1}


def test_shared_edges_leave_no_cracks():
    # A fan of triangles around an irrational centre: every pixel inside the hull is covered once.
    angles = torch.linspace(0, 2 * math.pi, 37, dtype=torch.float32)[:-1]
    ring = torch.stack([20 + 15.3 * torch.cos(angles), 20 + 15.3 * torch.sin(angles), torch.ones_like(angles)], 1)
    centre = torch.tensor([[20.123, 19.877, 1.0]])
    verts = torch.cat([centre, ring])
    k = torch.arange(36)
    triangles = torch.stack([torch.zeros_like(k), 1 + k, 1 + (k + 1) % 36], 1)
    fragments = rasterize(verts, triangles, (40, 40))
    y, x = np.mgrid[:40, :40]
    well_inside = np.hypot(x - 20, y - 20) < 14.5
    assert bool(fragments.mask.numpy()[well_inside].all())


def tiny_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    """A 3 x 3 vertex grid, slightly bumped, in front of a 12 x 12 camera (float64)."""
    gx, gy = torch.meshgrid(torch.tensor([1.3, 5.7, 10.2]), torch.tensor([1.1, 6.3, 10.6]), indexing="xy")
    z = torch.tensor([2.0, 2.5, 3.0, 2.2, 1.8, 2.7, 3.1, 2.4, 2.0])
    verts = torch.stack([gx.reshape(-1), gy.reshape(-1), z], 1).to(torch.float64)
    triangles = torch.tensor([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [3, 4, 7], [3, 7, 6], [4, 5, 8], [4, 8, 7]])
    return verts, triangles


def test_barycentrics_and_interpolation_gradients_match_finite_differences():
    verts, triangles = tiny_mesh()
    fragments = rasterize(verts, triangles, (12, 12))
    attributes = torch.rand(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def render(v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return interpolate(a, triangles, fragments, barycentrics(v, triangles, fragments))

    assert torch.autograd.gradcheck(render, (verts.requires_grad_(True), attributes.requires_grad_(True)))
    packed = barycentrics(verts, triangles, fragments, packed=True)
    torch.testing.assert_close(fragments.unpack(packed), barycentrics(verts, triangles, fragments))
    torch.testing.assert_close(fragments.bary, barycentrics(verts, triangles, fragments).detach())


def test_soft_silhouette_gradients_match_finite_differences():
    verts, triangles = tiny_mesh()
    verts = verts.clone()
    verts[:, :2] = (verts[:, :2] - 6) * 0.8 + 6  # keep a background border around the mesh
    fragments = rasterize(verts, triangles, (12, 12))
    assert torch.autograd.gradcheck(
        lambda v: soft_silhouette(v, triangles, fragments, sigma_px=0.7), (verts.requires_grad_(True),))


def test_soft_silhouette_area_gradient_is_the_edge_motion():
    # d(sum of coverage)/d(corner x) should be the analytic d(area)/dx, with the mask re-rasterised.
    verts = torch.tensor([[6.3, 5.2, 2.0], [40.7, 9.9, 2.0], [14.1, 41.6, 2.0]], dtype=torch.float64)
    triangles = torch.tensor([[0, 1, 2]])
    verts.requires_grad_(True)
    fragments = rasterize(verts, triangles, (48, 48))
    soft_silhouette(verts, triangles, fragments, sigma_px=1.0).sum().backward()
    x, y = verts.detach()[:, 0], verts.detach()[:, 1]
    # area = 0.5 * |(x1 - x0)(y2 - y0) - (x2 - x0)(y1 - y0)|; d/dx0 = 0.5 * |...|' = 0.5 * (y1 - y2) * sign
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
    d_area_dx = 0.5 * torch.sign(area2) * torch.stack([y[1] - y[2], y[2] - y[0], y[0] - y[1]])
    torch.testing.assert_close(verts.grad[:, 0], d_area_dx, rtol=0.05, atol=0.3)


@pytest.mark.parametrize("resolution", [256, 1024])
def test_uv_rasterisation_covers_every_face_tile_texel(face_model, resolution):
    skimage_draw = pytest.importorskip("skimage.draw")
    face = face_model.part_triangles("face")
    triangle_uvs = face_model.triangle_uvs[face]
    fragments = rasterize_uv(torch.from_numpy(face_model.uvs), torch.from_numpy(triangle_uvs), 1001, resolution)
    # Reference: scikit-image's point-in-polygon fill of every triangle (texel centres at integers).
    texel = np.stack([face_model.uvs[:, 0] * resolution - 0.5, (1 - face_model.uvs[:, 1]) * resolution - 0.5], 1)
    reference = np.zeros((resolution, resolution), dtype=bool)
    for corners in texel[triangle_uvs]:
        rows, cols = skimage_draw.polygon(corners[:, 1], corners[:, 0], shape=reference.shape)
        reference[rows, cols] = True
    covered = fragments.mask.numpy()
    assert reference.sum() > 0.5 * resolution ** 2
    missing = reference & ~covered
    extra = covered & ~reference
    assert missing.sum() == 0, f"{missing.sum()} texels covered by the UV triangles were not rasterised"
    assert extra.sum() <= 1e-4 * reference.sum()
    positions = texel_attributes(torch.from_numpy(face_model.neutral_cm), torch.from_numpy(face_model.triangles[face]),
                                 fragments)
    inside = positions[fragments.mask]
    lo, hi = face_model.neutral_cm[:9409].min(0), face_model.neutral_cm[:9409].max(0)
    assert bool((inside >= torch.from_numpy(lo) - 1e-3).all() and (inside <= torch.from_numpy(hi) + 1e-3).all())


def test_fragments_pack_and_unpack_round_trip():
    verts, triangles = tiny_mesh()
    fragments = rasterize(verts, triangles, (12, 12))
    image = torch.rand(12, 12, 3, dtype=torch.float64)
    restored = fragments.unpack(fragments.pack(image))
    torch.testing.assert_close(restored[fragments.mask], image[fragments.mask])
    assert bool((restored[~fragments.mask] == 0).all())
    assert isinstance(fragments, Fragments)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(sphere_scene):
    s = sphere_scene
    cpu = s["fragments"]
    cuda = rasterize(s["verts_screen"].cuda(), s["triangles"].cuda(), (s["size"], s["size"]))
    assert float((cuda.triangle_id.cpu() != cpu.triangle_id).float().mean()) < 1e-3
    torch.testing.assert_close(cuda.depth.cpu(), cpu.depth)
    soft_cpu = soft_silhouette(s["verts_screen"], s["triangles"], cpu)
    soft_cuda = soft_silhouette(s["verts_screen"].cuda(), s["triangles"].cuda(), cuda)
    torch.testing.assert_close(soft_cuda.cpu(), soft_cpu)


def test_pytorch3d_backend_matches(sphere_scene):
    pytest.importorskip("pytorch3d")
    s = sphere_scene
    ours = s["fragments"]
    theirs = rasterize(s["verts_screen"].float(), s["triangles"], (s["size"], s["size"]), backend="pytorch3d")
    same = (theirs.triangle_id == ours.triangle_id).float().mean()
    assert float(same) > 0.995
    both = ours.mask & theirs.mask
    torch.testing.assert_close(theirs.depth[both].double(), ours.depth[both], rtol=1e-4, atol=1e-4)


def brute_force_triangle_ids(verts: torch.Tensor, triangles: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(H, W) nearest triangle per pixel centre by testing every triangle at every pixel (float64)."""
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    best_depth = torch.full((height, width), math.inf, dtype=torch.float64)
    best = torch.full((height, width), -1)
    for index, corners in enumerate(verts.to(torch.float64)[triangles]):
        (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = corners.tolist()
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        l0 = ((x1 - x) * (y2 - y) - (y1 - y) * (x2 - x)) / area
        l1 = ((x2 - x) * (y0 - y) - (y2 - y) * (x0 - x)) / area
        l2 = 1 - l0 - l1
        depth = 1 / (l0 / z0 + l1 / z1 + l2 / z2)
        on_or_inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)  # edges count as inside
        nearer = on_or_inside & (depth < best_depth)
        best_depth = torch.where(nearer, depth, best_depth)
        best = torch.where(nearer, index, best)
    return best


def test_huge_triangles_and_small_chunks_give_the_same_image(monkeypatch):
    # Triangles much larger than the image (clamped boxes) and a candidate budget that forces chunking.
    verts = torch.tensor([[-300.0, -200.0, 4.0], [500.0, -150.0, 6.0], [40.0, 700.0, 5.0],
                          [10.0, 10.0, 3.0], [90.0, 20.0, 3.0], [50.0, 95.0, 9.0]])
    triangles = torch.tensor([[0, 1, 2], [3, 4, 5]])
    reference = rasterize(verts, triangles, (100, 80))
    assert bool(reference.mask.all()) and int((reference.triangle_id == 1).sum()) > 1000
    assert torch.equal(reference.triangle_id, brute_force_triangle_ids(verts, triangles, 100, 80))
    monkeypatch.setattr(sys.modules["inference_core.render.rasterize"], "MAX_PAIRS_PER_CHUNK", 999)
    chunked = rasterize(verts, triangles, (100, 80))
    assert torch.equal(chunked.triangle_id, reference.triangle_id)
    assert torch.equal(chunked.depth, reference.depth)


def test_random_triangle_soup_matches_brute_force():
    generator = torch.Generator().manual_seed(3)
    centres = torch.rand(300, 1, 2, generator=generator) * 80 - 8
    corners = centres + torch.randn(300, 3, 2, generator=generator) * torch.rand(300, 1, 1, generator=generator) * 12
    depth = 1 + 9 * torch.rand(300, 3, 1, generator=generator)
    verts = torch.cat([corners, depth], -1).reshape(-1, 3)
    triangles = torch.arange(900).reshape(300, 3)
    ours = rasterize(verts, triangles, (64, 48)).triangle_id
    reference = brute_force_triangle_ids(verts, triangles, 64, 48)
    assert int((reference >= 0).sum()) > 0.8 * 64 * 48
    assert int((ours != reference).sum()) <= 2  # only float32 depth ties may differ
