"""Differentiable rendering ops (rasterize, interpolate, texture, antialias) in the spirit of nvdiffrast.torch.

The ops are camera-based rather than clip-space based: `rasterize` takes a
`rig.Camera` (ORTHO or PERSPECTIVE, any image size), so callers never build
projection matrices and every backend agrees with rig.py's pixel conventions
(pixel (row i, column j) has its centre at (j + 0.5, i + 0.5); images are
row-major from the top; depth is z-depth). Outputs are single images (H, W, C).

Two backends, chosen once per `RenderContext`:
- `nvdiffrast` (CUDA): nvdiffrast.torch with a RasterizeCudaContext; the camera
  becomes clip-space positions whose NDC y grows downwards, so nvdiffrast's
  bottom-up rows are our top-down rows.
- `reference` (anywhere, pure PyTorch): visibility from raster.py's exact
  z-buffer, then barycentrics recomputed from the projected vertices so they are
  differentiable w.r.t. vertex positions; bilinear texture lookups through
  grid_sample; and nvdiffrast's analytic antialias re-implemented (pixel pairs
  straddling a silhouette edge blend by where the edge crosses them), which is
  what gives silhouettes gradients w.r.t. vertex positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import raster
from .rig import Camera

NVDIFFRAST = "nvdiffrast"
REFERENCE = "reference"
AA_EPS = 0.0625  # nvdiffrast's tolerance (pixels) for an edge crossing just outside the pixel pair


class BackendUnavailable(RuntimeError):
    """The requested rendering backend cannot run here (no CUDA, or nvdiffrast's plugin did not build)."""


@dataclass(frozen=True)
class Topology:
    """Per-mesh data for `antialias`: each triangle's opposite vertex across edge k (opposite corner k), or -1."""

    opposite: torch.Tensor  # (F, 3) int64
    native: Any = None  # nvdiffrast's topology hash


@dataclass(frozen=True)
class Rasterized:
    """One camera's rasterization: the visible triangle and its barycentrics per pixel.

    `bary` and `depth` are differentiable w.r.t. the vertex positions (perspective-correct barycentrics of
    the triangle's corners 0, 1, 2); background pixels have tri_id -1, bary 0 and depth 0.
    """

    camera: Camera
    tri_id: torch.Tensor  # (H, W) int64
    bary: torch.Tensor  # (H, W, 3)
    depth: torch.Tensor  # (H, W) z-depth
    screen: torch.Tensor  # (V, 2) continuous pixel coordinates of the vertices (reference antialias)
    native: tuple[torch.Tensor, torch.Tensor] | None = None  # nvdiffrast: (rast (1, H, W, 4), clip positions)


class RenderContext:
    """Which backend renders, decided once: "auto" takes nvdiffrast on CUDA when it loads, else the reference.

    `fallback_reason` says why "auto" fell back to the reference backend on a CUDA device (None otherwise).
    """

    def __init__(self, device: str | torch.device = "cpu", backend: str = "auto") -> None:
        self.device = torch.device(device)
        self.fallback_reason: str | None = None
        self._glctx = None
        if backend not in ("auto", NVDIFFRAST, REFERENCE):
            raise ValueError(f"unknown rendering backend {backend!r}; use auto, {NVDIFFRAST} or {REFERENCE}")
        if backend == REFERENCE or (backend == "auto" and self.device.type != "cuda"):
            self.backend = REFERENCE
            return
        try:
            self._glctx = _nvdiffrast_context(self.device)
            self.backend = NVDIFFRAST
        except BackendUnavailable as exc:
            if backend == NVDIFFRAST:
                raise
            self.backend, self.fallback_reason = REFERENCE, str(exc)

    def topology(self, faces: torch.Tensor) -> Topology:
        """Edge adjacency of a mesh, built once and reused by every `antialias` call on it."""
        native = None
        if self.backend == NVDIFFRAST:
            import nvdiffrast.torch as dr

            native = dr.antialias_construct_topology_hash(faces.int().contiguous())
        return Topology(opposite_vertices(faces), native)


def _nvdiffrast_context(device: torch.device) -> Any:
    if device.type != "cuda" or not torch.cuda.is_available():
        raise BackendUnavailable("nvdiffrast needs a CUDA device")
    try:
        import nvdiffrast.torch as dr

        return dr.RasterizeCudaContext(device=device)
    except ImportError as exc:
        raise BackendUnavailable(f"nvdiffrast is not installed ({exc})") from None
    except (RuntimeError, OSError) as exc:  # its CUDA plugin is compiled on first use
        raise BackendUnavailable(f"nvdiffrast's CUDA plugin could not be built or loaded ({exc})") from None


def twin_half_edges(faces: torch.Tensor) -> torch.Tensor:
    """(F, 3): for edge k of each triangle (corners k+1, k+2), the index face * 3 + j of the same edge in the
    triangle across it (held in the opposite direction, as in nvdiffrast's hash), or -1 on a boundary."""
    faces = faces.long()
    if faces.shape[0] == 0:
        return torch.empty(0, 3, dtype=torch.int64, device=faces.device)
    start, end = faces[:, [1, 2, 0]].reshape(-1), faces[:, [2, 0, 1]].reshape(-1)
    size = int(faces.max().item()) + 1
    keys = start * size + end
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    reverse = end * size + start
    twin = torch.searchsorted(sorted_keys, reverse).clamp_max(keys.numel() - 1)
    return torch.where(sorted_keys[twin] == reverse, order[twin], torch.full_like(twin, -1)).view(-1, 3)


def opposite_vertices(faces: torch.Tensor) -> torch.Tensor:
    """(F, 3): for edge k of each triangle (corners k+1, k+2), the far corner of the triangle across it, or -1."""
    twins = twin_half_edges(faces)
    far = faces.long().reshape(-1)[twins.clamp_min(0)].view_as(twins)  # half-edge j of a triangle faces corner j
    return torch.where(twins >= 0, far, -1)


def scaled_camera(camera: Camera, width: int, height: int) -> Camera:
    """The same camera rendering a width x height image (intrinsics scaled with the image)."""
    sx, sy = width / camera.width, height / camera.height
    return Camera(camera.model, camera.cam_to_world, width, height,
                  camera.fx * sx, camera.fy * sy, camera.cx * sx, camera.cy * sy)


def pixel_world(camera: Camera, points: torch.Tensor) -> float:
    """World units one pixel of `camera` spans at the median depth of `points` (N, 3)."""
    if camera.is_ortho:
        return 1.0 / camera.fx
    depth = camera.project(points.float())[:, 2].median().item()
    return max(depth, 1e-6) / camera.fx


def _depth_range(depth: torch.Tensor, ortho: bool) -> tuple[float, float]:
    """Near/far planes that keep every vertex (perspective: every vertex in front of the camera) unclipped."""
    lo, hi = depth.min().item(), depth.max().item()
    margin = 0.05 * max(hi - lo, 1e-3)
    if ortho:
        return lo - margin, hi + margin
    hi = max(hi, 1e-3)
    return max(lo - margin, 1e-3 * hi), hi + margin


def _clip_positions(camera: Camera, vertices: torch.Tensor) -> torch.Tensor:
    """(V, 4) clip-space positions for nvdiffrast: NDC x right, NDC y down the image, z in [-1, 1] over the mesh."""
    w2c = torch.as_tensor(camera.world_to_cam, dtype=vertices.dtype, device=vertices.device)
    cam = vertices @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -cam[:, 2]
    near, far = _depth_range(depth.detach(), camera.is_ortho)
    sx, ox = 2.0 * camera.fx / camera.width, 2.0 * camera.cx / camera.width - 1.0
    sy, oy = 2.0 * camera.fy / camera.height, 2.0 * camera.cy / camera.height - 1.0
    if camera.is_ortho:
        x, y = sx * cam[:, 0] + ox, oy - sy * cam[:, 1]
        z, w = 2.0 * (depth - near) / (far - near) - 1.0, torch.ones_like(depth)
    else:
        x, y = sx * cam[:, 0] + ox * depth, oy * depth - sy * cam[:, 1]
        z, w = ((far + near) * depth - 2.0 * far * near) / (far - near), depth
    return torch.stack((x, y, z, w), dim=-1)


def rasterize(ctx: RenderContext, camera: Camera, vertices: torch.Tensor, faces: torch.Tensor,
              visibility: torch.Tensor | None = None, on_chunk: Callable[[], None] = lambda: None) -> Rasterized:
    """Render which triangle is nearest at every pixel centre of `camera` (no culling), differentiably.

    `visibility` (reference backend only) is a tri_id map from an earlier call for the same camera: the
    exact z-buffer pass is skipped and only the barycentrics are recomputed for the current vertex
    positions (extrapolated where a vertex has moved a pixel centre out of its triangle). Optimisers use it
    to refresh visibility every few steps instead of every step on a CPU. `on_chunk` is called during the
    reference z-buffer pass (progress reporting; it may raise to abandon the work).
    """
    projected = camera.project(vertices)
    screen, vertex_depth = projected[:, :2], projected[:, 2]
    if ctx.backend == NVDIFFRAST:
        return _rasterize_nvdiffrast(ctx, camera, vertices, faces, screen, vertex_depth)
    if visibility is None:
        with torch.no_grad():
            visibility = raster.rasterize(camera, vertices.detach(), faces, on_chunk=on_chunk).tri_id
    height, width = visibility.shape
    pixels = torch.nonzero(visibility.reshape(-1) >= 0).squeeze(1)
    corners = faces.long()[visibility.reshape(-1)[pixels]]  # (N, 3)
    centre = torch.stack(((pixels % width).to(screen.dtype) + 0.5, (pixels // width).to(screen.dtype) + 0.5), -1)
    rel = screen[corners] - centre[:, None, :]  # (N, 3, 2): corners relative to the pixel centre
    x, y = rel[..., 0], rel[..., 1]
    # Twice the signed area of the sub-triangle opposite each corner, over twice the triangle's area.
    sub = torch.stack([x[:, i] * y[:, j] - x[:, j] * y[:, i] for i, j in ((1, 2), (2, 0), (0, 1))], dim=-1)
    area = sub.sum(dim=-1, keepdim=True)
    area = torch.where(area.abs() > 1e-12, area, torch.full_like(area, 1e-12))
    screen_bary = sub / area
    if camera.is_ortho:
        bary = screen_bary
    else:
        weighted = screen_bary / vertex_depth[corners]
        bary = weighted / weighted.sum(dim=-1, keepdim=True)
    depth = (bary * vertex_depth[corners]).sum(dim=-1)
    dense_bary = torch.zeros(height * width, 3, dtype=bary.dtype, device=bary.device).index_put((pixels,), bary)
    dense_depth = torch.zeros(height * width, dtype=depth.dtype, device=depth.device).index_put((pixels,), depth)
    return Rasterized(camera, visibility, dense_bary.view(height, width, 3), dense_depth.view(height, width), screen)


def _rasterize_nvdiffrast(ctx: RenderContext, camera: Camera, vertices: torch.Tensor, faces: torch.Tensor,
                          screen: torch.Tensor, vertex_depth: torch.Tensor) -> Rasterized:
    import nvdiffrast.torch as dr

    clip = _clip_positions(camera, vertices.float()).contiguous()
    tri = faces.int().contiguous()
    rast, _ = dr.rasterize(ctx._glctx, clip[None], tri, (camera.height, camera.width), grad_db=False)
    u, v = rast[0, ..., 0], rast[0, ..., 1]
    tri_id = rast[0, ..., 3].long() - 1
    covered = (tri_id >= 0)[..., None]
    bary = torch.where(covered, torch.stack((u, v, 1.0 - u - v), dim=-1), torch.zeros_like(rast[0, ..., :3]))
    depth = dr.interpolate(vertex_depth.float()[None, :, None].contiguous(), rast, tri)[0][0, ..., 0]
    return Rasterized(camera, tri_id, bary, depth, screen, (rast, clip))


def interpolate(attr: torch.Tensor, rast: Rasterized, faces: torch.Tensor) -> torch.Tensor:
    """Per-vertex attributes (V, C) -> (H, W, C) at every pixel, 0 on background.

    `faces` may differ from the rasterized ones (e.g. UV faces of an atlas) but must match them one to one.
    """
    if rast.native is not None:
        import nvdiffrast.torch as dr

        out, _ = dr.interpolate(attr.float()[None].contiguous(), rast.native[0], faces.int().contiguous())
        return out[0]
    hit = rast.tri_id >= 0
    corner = attr[faces.long()[rast.tri_id.clamp_min(0)]]  # (H, W, 3, C)
    values = (rast.bary[..., None].to(corner.dtype) * corner).sum(dim=-2)
    return torch.where(hit[..., None], values, torch.zeros_like(values))


def texture(ctx: RenderContext, tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of an (Ht, Wt, C) texture at uv (H, W, 2), edges clamped.

    uv follows glTF: (0, 0) is the top-left corner of the image's first row, u along the row; texel (i, j)
    has its centre at ((j + 0.5) / Wt, (i + 0.5) / Ht).
    """
    if ctx.backend == NVDIFFRAST:
        import nvdiffrast.torch as dr

        return dr.texture(tex.float()[None].contiguous(), uv.float()[None].contiguous(),
                          filter_mode="linear", boundary_mode="clamp")[0]
    grid = (uv * 2.0 - 1.0)[None].to(tex.dtype)
    sampled = F.grid_sample(tex.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
    return sampled[0].permute(1, 2, 0)


def antialias(ctx: RenderContext, colour: torch.Tensor, rast: Rasterized, faces: torch.Tensor,
              topology: Topology) -> torch.Tensor:
    """Blend (H, W, C) colours across silhouette edges by analytic coverage (nvdiffrast's method).

    For each horizontally or vertically adjacent pixel pair showing different triangles, the nearer one's
    silhouette edge that crosses the segment between the pixel centres moves part of one pixel's colour
    into the other, in proportion to where it crosses; the gradient of that crossing reaches the edge's
    vertices (through the positions `rast` was made from, which it carries).
    """
    if rast.native is not None:
        import nvdiffrast.torch as dr

        rast_out, clip = rast.native
        return dr.antialias(colour.float()[None].contiguous(), rast_out, clip[None], faces.int().contiguous(),
                            topology_hash=topology.native)[0]
    height, width = rast.tri_id.shape
    faces = faces.long()
    silhouette = _silhouette_edges(rast.screen.detach(), faces, topology.opposite)
    flat_colour = colour.reshape(height * width, -1)
    out = flat_colour
    for down in (False, True):
        pair = _silhouette_pairs(rast, faces, silhouette, down)
        if pair is None:
            continue
        pixel0, pixel1, alpha = pair
        target = torch.where(alpha > 0, pixel0, pixel1)
        out = out.index_add(0, target, alpha[:, None] * (flat_colour[pixel1] - flat_colour[pixel0]))
    return out.view_as(colour)


def _silhouette_edges(screen: torch.Tensor, faces: torch.Tensor, opposite: torch.Tensor) -> torch.Tensor:
    """(F, 3) bool: edge k of the triangle is a silhouette in this view.

    As in nvdiffrast, the "wing" (the edge plus the far vertex of the triangle across it) winds the same way as
    the triangle itself when the surface folds away at that edge; an edge without a neighbour always counts.
    """
    far = torch.where(opposite >= 0, opposite, faces)
    x, y = screen[faces].unbind(-1)
    ox, oy = screen[far].unbind(-1)
    nxt, prv = [1, 2, 0], [2, 0, 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    wing = (x[:, nxt] - ox) * (y[:, prv] - oy) - (x[:, prv] - ox) * (y[:, nxt] - oy)
    return (wing >= 0) == (area[:, None] >= 0)


def _silhouette_pairs(rast: Rasterized, faces: torch.Tensor, silhouette: torch.Tensor, down: bool
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Pixel pairs (to the right, or below) that a silhouette edge crosses: flat indices and blend alpha."""
    width = rast.tri_id.shape[1]
    tri_map, depth_map = rast.tri_id, rast.depth.detach()
    if down:
        row0, col0 = (tri_map[:-1] != tri_map[1:]).nonzero().unbind(1)
        row1, col1 = row0 + 1, col0
    else:
        row0, col0 = (tri_map[:, :-1] != tri_map[:, 1:]).nonzero().unbind(1)
        row1, col1 = row0, col0 + 1
    pixel0, pixel1 = row0 * width + col0, row1 * width + col1
    tri0, tri1 = tri_map.reshape(-1)[pixel0], tri_map.reshape(-1)[pixel1]
    z0, z1 = depth_map.reshape(-1)[pixel0], depth_map.reshape(-1)[pixel1]
    use_first = (tri1 < 0) | ((tri0 >= 0) & (z0 < z1))
    tri = torch.where(use_first, tri0, tri1)
    candidate = silhouette[tri].any(dim=1).nonzero().squeeze(1)
    if candidate.numel() == 0:
        return None
    pixel0, pixel1, tri, use_first = pixel0[candidate], pixel1[candidate], tri[candidate], use_first[candidate]
    direction = torch.where(use_first, 1.0, -1.0).to(rast.screen.dtype)
    centre_pixel = torch.where(use_first, pixel0, pixel1)
    centre = torch.stack((centre_pixel % width, centre_pixel // width), -1).to(rast.screen.dtype) + 0.5

    points = rast.screen[faces[tri]] - centre[:, None]  # (N, 3, 2), relative to the chosen pixel's centre
    if down:  # vertical pairs: swap x and y so the pair runs along +x
        points = points.flip(-1)
    x, y = points[..., 0], points[..., 1]
    nxt, prv = [1, 2, 0], [2, 0, 1]
    x1, y1, x2, y2 = x[:, nxt], y[:, nxt], x[:, prv], y[:, prv]  # edge k runs from corner k+1 to k+2
    dx, dy = x2 - x1, y2 - y1
    straddles = (y1 >= 0) != (y2 >= 0)
    safe_dy = torch.where(straddles, dy, torch.ones_like(dy))
    crossing = direction[:, None] * (x1 * dy - y1 * dx) / safe_dy  # where the edge meets the pair's axis
    crossing = torch.where(straddles, crossing, torch.full_like(crossing, -torch.inf))
    edge = crossing.detach().argmax(dim=-1, keepdim=True)
    dc = crossing.gather(1, edge).squeeze(1)
    steep = dy.abs().gather(1, edge).squeeze(1) >= dx.abs().gather(1, edge).squeeze(1)
    keep = silhouette[tri].gather(1, edge).squeeze(1) & steep & (dc > -AA_EPS) & (dc < 1.0 + AA_EPS)
    alpha = direction[keep] * (0.5 - dc[keep].clamp(0.0, 1.0))
    return pixel0[keep], pixel1[keep], alpha
