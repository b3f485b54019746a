"""The differentiable rendering ops: the reference backend against analytic answers, and against nvdiffrast on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from worker.recon import ops, raster
from worker.recon.rig import PERSPECTIVE, Camera, cube6_rig, look_at

SIZE = 8


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ctx() -> ops.RenderContext:
    return ops.RenderContext("cpu")


def front(size: int = SIZE) -> Camera:
    """cube6's front camera: pixel (u, v) sees world x = (u - size/2) / (size/2), y = (size/2 - v) / (size/2)."""
    return cube6_rig(size).cameras[0]


def world(u: float, v: float, z: float = 0.0, size: int = SIZE) -> list[float]:
    half = size / 2
    return [(u - half) / half, (half - v) / half, z]


def pixel_centres(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    return u, v


def test_triangle_covers_exactly_the_pixel_centres_inside_it(ctx):
    # Corners in pixel coordinates (u, v): the hypotenuse runs along v - u = 0.6, between pixel centres.
    vertices = torch.tensor([world(0.2, 7.8), world(7.2, 7.8), world(0.2, 0.8)], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    rast = ops.rasterize(ctx, front(), vertices, faces)
    u, v = pixel_centres()
    expected = v - u >= 0.6
    assert np.array_equal((rast.tri_id >= 0).numpy(), expected)
    assert (rast.tri_id[rast.tri_id >= 0] == 0).all()


def test_barycentrics_and_depth_match_the_pixel_centres_on_an_orthographic_camera(ctx):
    vertices = torch.tensor([world(0.3, 7.7, 0.1), world(7.7, 7.2, -0.2), world(1.1, 0.2, 0.3)], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    rast = ops.rasterize(ctx, front(), vertices, faces)
    covered = rast.tri_id >= 0
    assert covered.sum() > 20
    points = ops.interpolate(vertices, rast, faces)[covered]
    u, v = pixel_centres()
    expected = torch.tensor([world(a, b) for a, b in zip(u[covered.numpy()], v[covered.numpy()])], dtype=torch.float64)
    assert torch.allclose(points[:, :2], expected[:, :2], atol=1e-9)
    # Barycentrics sum to one and reproduce depth = 2 - z (the camera sits at z = 2).
    assert torch.allclose(rast.bary[covered].sum(dim=-1), torch.ones(int(covered.sum()), dtype=torch.float64))
    assert torch.allclose(rast.depth[covered], 2.0 - points[:, 2], atol=1e-9)
    assert (rast.depth[~covered] == 0).all() and (rast.bary[~covered] == 0).all()


def test_barycentrics_are_perspective_correct():
    camera = Camera(PERSPECTIVE, look_at((0.3, 0.2, 3.0), (-0.1, -0.05, -1.0), (0, 1, 0)), 16, 12, 14.0, 15.0, 8.3, 5.9)
    vertices = torch.tensor([[-0.8, -0.7, 0.4], [0.9, -0.5, -0.6], [0.1, 0.8, 0.2]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    rast = ops.rasterize(ops.RenderContext("cpu"), camera, vertices, faces)
    covered = rast.tri_id >= 0
    assert covered.sum() > 20
    points = ops.interpolate(vertices, rast, faces)[covered]
    uvd = camera.project(points)
    rows, cols = torch.nonzero(covered, as_tuple=True)
    assert torch.allclose(uvd[:, 0], cols.double() + 0.5, atol=1e-9)
    assert torch.allclose(uvd[:, 1], rows.double() + 0.5, atol=1e-9)
    assert torch.allclose(uvd[:, 2], rast.depth[covered], atol=1e-9)


def test_nearest_triangle_wins(ctx):
    near = [world(0.2, 7.8, 0.5), world(7.8, 7.8, 0.5), world(4.0, 0.2, 0.5)]
    far = [world(0.2, 7.8, -0.5), world(7.8, 7.8, -0.5), world(4.0, 0.2, -0.5)]
    vertices = torch.tensor(far + near, dtype=torch.float64)
    rast = ops.rasterize(ctx, front(), vertices, torch.tensor([[0, 1, 2], [3, 4, 5]]))
    covered = rast.tri_id >= 0
    assert (rast.tri_id[covered] == 1).all()
    assert torch.allclose(rast.depth[covered], torch.full_like(rast.depth[covered], 1.5))


def test_visibility_in_chunks_keeps_the_nearest_triangle(ctx, monkeypatch):
    monkeypatch.setattr(raster, "DEFAULT_MAX_PAIRS", 1)
    near = [world(0.2, 7.8, 0.5), world(7.8, 7.8, 0.5), world(4.0, 0.2, 0.5)]
    far = [world(0.2, 7.8, -0.5), world(7.8, 7.8, -0.5), world(4.0, 0.2, -0.5)]
    chunks = []
    for order in ((far, near), (near, far)):
        vertices = torch.tensor(order[0] + order[1], dtype=torch.float64)
        rast = ops.rasterize(ctx, front(), vertices, torch.tensor([[0, 1, 2], [3, 4, 5]]),
                             on_chunk=lambda: chunks.append(1))
        covered = rast.tri_id >= 0
        assert (rast.tri_id[covered] == (1 if order[0] is far else 0)).all()
    assert len(chunks) == 4


def rectangle(left: float, right: float, top: float, bottom: float) -> tuple[torch.Tensor, torch.Tensor]:
    vertices = torch.tensor([world(left, bottom), world(right, bottom), world(right, top), world(left, top)],
                            dtype=torch.float64)
    return vertices, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_antialiased_coverage_of_a_rectangle_is_its_exact_width_per_row(ctx):
    vertices, faces = rectangle(2.3, 5.7, 1.0, 7.0)  # vertical edges between pixel centres
    rast = ops.rasterize(ctx, front(), vertices, faces)
    coverage = ops.interpolate(torch.ones(4, 1, dtype=torch.float64), rast, faces)
    aa = ops.antialias(ctx, coverage, rast, faces, ctx.topology(faces))[..., 0]
    assert torch.allclose(coverage[..., 0].sum(dim=1)[1:7], torch.full((6,), 4.0, dtype=torch.float64))
    assert torch.allclose(aa.sum(dim=1)[1:7], torch.full((6,), 3.4, dtype=torch.float64), atol=1e-9)
    # The left edge at u = 2.3 leaves pixel 2 (centre 2.5) 0.7 covered; the right one at 5.7 gives pixel 5 0.7.
    assert torch.allclose(aa[3, 2], torch.tensor(0.7, dtype=torch.float64))
    assert torch.allclose(aa[3, 5], torch.tensor(0.7, dtype=torch.float64))
    assert torch.equal(aa[0], torch.zeros(SIZE, dtype=torch.float64))  # the top edge sits on a pixel border


def test_shared_edges_are_not_silhouettes(ctx):
    vertices, faces = rectangle(0.2, 7.8, 0.2, 7.8)  # covers every pixel centre; the diagonal is interior
    rast = ops.rasterize(ctx, front(), vertices, faces)
    colour = ops.interpolate(torch.rand(4, 3, dtype=torch.float64), rast, faces)
    aa = ops.antialias(ctx, colour, rast, faces, ctx.topology(faces))
    assert torch.equal(aa, colour)


def test_opposite_vertices_of_two_triangles():
    opposite = ops.opposite_vertices(torch.tensor([[0, 1, 2], [0, 2, 3]]))
    # Edge k of a triangle is opposite its corner k: triangle 0's edge (2, 0) borders triangle 1, whose far corner is 3.
    assert opposite.tolist() == [[-1, 3, -1], [-1, -1, 1]]


def test_twin_half_edges_pair_every_edge_of_a_closed_mesh():
    box = trimesh.creation.box()
    twins = ops.twin_half_edges(torch.as_tensor(box.faces))
    flat = twins.reshape(-1)
    assert (flat >= 0).all()
    assert torch.equal(flat[flat], torch.arange(flat.numel()))  # the twin's twin is the half-edge itself
    assert ops.twin_half_edges(torch.tensor([[0, 1, 2], [0, 2, 3]])).tolist() == [[-1, 5, -1], [-1, -1, 1]]


def test_interpolation_gradient_reaches_vertex_positions(ctx):
    vertices = torch.tensor([world(0.3, 7.7, 0.1), world(7.7, 7.2, -0.2), world(1.1, 0.2, 0.3)], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    attributes = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, 1.0]], dtype=torch.float64)

    def render(positions: torch.Tensor) -> torch.Tensor:
        rast = ops.rasterize(ctx, front(), positions, faces)
        return torch.cat((ops.interpolate(attributes, rast, faces), rast.depth[..., None]), dim=-1)

    assert torch.autograd.gradcheck(render, (vertices.clone().requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_antialias_gradient_moves_silhouette_edges(ctx):
    vertices, faces = rectangle(2.3, 5.6, 1.2, 6.7)
    topology = ctx.topology(faces)
    colours = torch.tensor([[1.0, 0.2], [0.4, 1.0], [0.8, 0.3], [0.1, 0.6]], dtype=torch.float64)

    def render(positions: torch.Tensor) -> torch.Tensor:
        rast = ops.rasterize(ctx, front(), positions, faces)
        return ops.antialias(ctx, ops.interpolate(colours, rast, faces), rast, faces, topology)

    positions = vertices.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(render, (positions,), eps=1e-6, atol=1e-6)
    # Coverage alone has no gradient without antialias; with it, widening the rectangle adds coverage.
    rast = ops.rasterize(ctx, front(), positions, faces)
    coverage = ops.interpolate(torch.ones(4, 1, dtype=torch.float64), rast, faces)
    ops.antialias(ctx, coverage, rast, faces, topology).sum().backward()
    right = positions.grad[[1, 2], 0]  # vertices on the right edge, d(coverage)/d(world x)
    left = positions.grad[[0, 3], 0]
    assert (right > 0).all() and (left < 0).all()


def test_texture_lookup_is_bilinear_with_clamped_edges(ctx):
    texture = torch.arange(12, dtype=torch.float64).reshape(3, 4, 1)  # value = 4 * row + column
    uv = torch.tensor([[[0.125, 1 / 6], [0.375, 0.5], [0.25, 1 / 6], [0.0, 0.0], [1.0, 1.0], [0.5, 1 / 3]]],
                      dtype=torch.float64)
    sampled = ops.texture(ctx, texture, uv)[0, :, 0]
    # Texel (row i, column j) has its centre at ((j + 0.5) / 4, (i + 0.5) / 3).
    expected = torch.tensor([0.0, 5.0, 0.5, 0.0, 11.0, 3.5], dtype=torch.float64)
    assert torch.allclose(sampled, expected, atol=1e-9)


def test_texture_gradient_reaches_texels_and_uv(ctx):
    texture = torch.rand(5, 6, 2, dtype=torch.float64, requires_grad=True)
    uv = torch.tensor([[[0.31, 0.42], [0.77, 0.18]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, c: ops.texture(ctx, t, c), (texture, uv), eps=1e-6, atol=1e-6)


def test_scaled_camera_keeps_the_view():
    camera = front(8)
    half = ops.scaled_camera(camera, 4, 4)
    point = torch.tensor([[0.3, -0.2, 0.1]])
    assert torch.allclose(camera.project(point)[:, :2] / 2, half.project(point)[:, :2])
    assert ops.pixel_world(half, point) == pytest.approx(2 * ops.pixel_world(camera, point))


def test_reference_backend_is_used_without_cuda():
    context = ops.RenderContext("cpu")
    assert context.backend == ops.REFERENCE and context.fallback_reason is None
    with pytest.raises(ops.BackendUnavailable):
        ops.RenderContext("cpu", backend=ops.NVDIFFRAST)


# ---- the two backends against each other, where CUDA exists -------------------------------------


def nvdiffrast_context() -> ops.RenderContext:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    try:
        return ops.RenderContext("cuda", backend=ops.NVDIFFRAST)
    except ops.BackendUnavailable as exc:
        pytest.skip(str(exc))


def sphere_scene(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.7)
    mesh.apply_translation((0.05, -0.03, 0.02))
    return (torch.as_tensor(mesh.vertices, dtype=torch.float32, device=device),
            torch.as_tensor(mesh.faces, dtype=torch.int64, device=device))


def cameras(size: int) -> list[Camera]:
    perspective = Camera(PERSPECTIVE, look_at((0.4, 0.6, 3.2), (-0.1, -0.2, -1.0), (0, 1, 0)), size, size,
                         1.1 * size, 1.1 * size, size / 2 + 0.3, size / 2 - 0.2)
    return [cube6_rig(size).cameras[0], cube6_rig(size).cameras[4], perspective]


@pytest.mark.gpu
@pytest.mark.parametrize("view", [0, 1, 2])
def test_backends_agree_on_rasterize_interpolate_and_antialias(view):
    gpu = nvdiffrast_context()
    reference = ops.RenderContext("cuda", backend=ops.REFERENCE)
    vertices, faces = sphere_scene("cuda")
    camera = cameras(128)[view]
    colours = torch.rand(vertices.shape[0], 3, device="cuda")
    outputs = {}
    for name, context in (("nvdiffrast", gpu), ("reference", reference)):
        positions = vertices.clone().requires_grad_(True)
        rast = ops.rasterize(context, camera, positions, faces)
        shaded = ops.interpolate(torch.cat((colours, torch.ones_like(colours[:, :1])), 1), rast, faces)
        aa = ops.antialias(context, shaded, rast, faces, context.topology(faces))
        aa[..., 3].sum().backward()
        outputs[name] = (rast, shaded.detach(), aa.detach(), positions.grad)
    rast_a, shaded_a, aa_a, grad_a = outputs["nvdiffrast"]
    rast_b, shaded_b, aa_b, grad_b = outputs["reference"]
    same = rast_a.tri_id == rast_b.tri_id
    assert same.float().mean() > 0.995
    assert torch.allclose(rast_a.bary[same], rast_b.bary[same].float(), atol=1e-3)
    assert torch.allclose(rast_a.depth[same], rast_b.depth[same].float(), atol=1e-3)
    assert torch.allclose(shaded_a[same], shaded_b[same], atol=1e-3)
    assert (aa_a - aa_b).abs().mean() < 2e-3
    cosine = torch.nn.functional.cosine_similarity(grad_a.reshape(1, -1), grad_b.reshape(1, -1)).item()
    assert cosine > 0.9


@pytest.mark.gpu
def test_backends_agree_on_texture():
    gpu = nvdiffrast_context()
    reference = ops.RenderContext("cuda", backend=ops.REFERENCE)
    texture = torch.rand(37, 53, 3, device="cuda")
    uv = torch.rand(16, 16, 2, device="cuda") * 1.2 - 0.1
    assert torch.allclose(ops.texture(gpu, texture, uv), ops.texture(reference, texture, uv), atol=1e-5)
