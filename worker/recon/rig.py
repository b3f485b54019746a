"""The camera rig: the one place that knows how a pixel and its depth map to a world point.

Upload validation, fusion, colouring, evaluation and the input renderer all go
through this module, so the conventions of docs/INPUT_FORMAT.md live here
once: OpenGL camera-to-world matrices (camera looks along -Z, +Y up), pixel
centres at half-integers (nerfstudio), and depth = distance in front of the
image plane along the optical axis (z-depth) for both camera models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from ..errors import FileValidationError

SLOT_NAMES = ("front", "right", "back", "left", "top", "bottom")
ORTHO = "ORTHO"
PERSPECTIVE = "PERSPECTIVE"
CUBE6_NEAR = 0.5
CUBE6_FAR = 3.5
CUBE6_DISTANCE = 2.0
RIGID_TOLERANCE = 1e-3

# slot -> (looks toward, image up); image right = toward x up, as in the table of INPUT_FORMAT.md.
_CUBE6_AXES = (
    ((0, 0, -1), (0, 1, 0)),
    ((-1, 0, 0), (0, 1, 0)),
    ((0, 0, 1), (0, 1, 0)),
    ((1, 0, 0), (0, 1, 0)),
    ((0, -1, 0), (0, 0, -1)),
    ((0, 1, 0), (0, 0, 1)),
)


def _as_tensor(matrix: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(matrix, dtype=like.dtype, device=like.device)


@dataclass(frozen=True, eq=False)
class Camera:
    """One camera. Intrinsics are in pixels for both models: an ORTHO camera's fx is pixels per world unit.

    Pixel (row i, column j) has its centre at continuous pixel coordinates (j + 0.5, i + 0.5);
    camera-space x = (u - cx) / fx, y = -(v - cy) / fy, scaled by depth for PERSPECTIVE.
    """

    model: str
    cam_to_world: np.ndarray
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Camera):
            return NotImplemented
        return (
            (self.model, self.width, self.height, self.fx, self.fy, self.cx, self.cy)
            == (other.model, other.width, other.height, other.fx, other.fy, other.cx, other.cy)
            and np.array_equal(self.cam_to_world, other.cam_to_world)
        )

    @property
    def is_ortho(self) -> bool:
        return self.model == ORTHO

    @property
    def position(self) -> np.ndarray:
        return self.cam_to_world[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        """Unit optical axis in world space (the camera's local -Z)."""
        axis = -self.cam_to_world[:3, 2]
        return axis / np.linalg.norm(axis)

    @property
    def world_to_cam(self) -> np.ndarray:
        return np.linalg.inv(self.cam_to_world)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """World points (..., 3) -> (..., 3) of (u, v, depth): continuous pixel coordinates and z-depth."""
        w2c = _as_tensor(self.world_to_cam, points)
        cam = points @ w2c[:3, :3].T + w2c[:3, 3]
        depth = -cam[..., 2]
        if self.is_ortho:
            x, y = cam[..., 0], cam[..., 1]
        else:
            safe = torch.where(depth.abs() > 1e-12, depth, torch.full_like(depth, 1e-12))
            x, y = cam[..., 0] / safe, cam[..., 1] / safe
        return torch.stack((x * self.fx + self.cx, self.cy - y * self.fy, depth), dim=-1)

    def unproject(self, u: torch.Tensor, v: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Continuous pixel coordinates and z-depth -> world points (..., 3); the inverse of `project`."""
        x = (u - self.cx) / self.fx
        y = (self.cy - v) / self.fy
        if not self.is_ortho:
            x, y = x * depth, y * depth
        cam = torch.stack((x, y, -depth), dim=-1)
        c2w = _as_tensor(self.cam_to_world, depth)
        return cam @ c2w[:3, :3].T + c2w[:3, 3]

    def unproject_depth_map(self, depth: torch.Tensor, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """A (H, W) z-depth map -> (H, W, 3) world points at the pixel centres (background pixels included).

        The map may be a window of the image whose first texel is (row, column) `origin`."""
        rows = torch.arange(depth.shape[0], dtype=depth.dtype, device=depth.device) + origin[0] + 0.5
        cols = torch.arange(depth.shape[1], dtype=depth.dtype, device=depth.device) + origin[1] + 0.5
        v, u = torch.meshgrid(rows, cols, indexing="ij")
        return self.unproject(u, v, depth)

    @property
    def packed(self) -> np.ndarray:
        """The camera as one float64 row (CAMERA_ROW) for the compiled per-point functions below."""
        return np.concatenate(([float(self.is_ortho), self.fx, self.fy, self.cx, self.cy],
                               self.world_to_cam[:3].ravel(), self.cam_to_world[:3].ravel(), self.forward,
                               self.position))

    def view_dirs(self, points: torch.Tensor) -> torch.Tensor:
        """Unit directions (..., 3) along which this camera looks at each world point."""
        forward = _as_tensor(self.forward, points)
        if self.is_ortho:
            return forward.expand_as(points)
        offset = points - _as_tensor(self.position, points)
        return offset / offset.norm(dim=-1, keepdim=True).clamp_min(1e-12)


CAMERA_ROW = 35  # Camera.packed: is_ortho, fx, fy, cx, cy, world_to_cam[:3], cam_to_world[:3] (12 each), forward,
# position


def packed_cameras(cameras: tuple[Camera, ...]) -> np.ndarray:
    """(K, CAMERA_ROW) float64: what compiled loops over points and views take for `cameras`."""
    return np.stack([camera.packed for camera in cameras])


# Compiled code that visits each point once, for every view, takes a camera as a packed row and works on one
# point at a time (floats, not tensors): these are Camera's project, unproject and view_dirs for it.

@njit(cache=True, nogil=True)
def project_point(camera: np.ndarray, x: float, y: float, z: float) -> tuple[float, float, float]:
    """A world point -> (u, v, depth), as Camera.project."""
    cam_x = camera[5] * x + camera[6] * y + camera[7] * z + camera[8]
    cam_y = camera[9] * x + camera[10] * y + camera[11] * z + camera[12]
    depth = -(camera[13] * x + camera[14] * y + camera[15] * z + camera[16])
    if camera[0] < 0.5:
        safe = depth if abs(depth) > 1e-12 else 1e-12
        cam_x, cam_y = cam_x / safe, cam_y / safe
    return cam_x * camera[1] + camera[3], camera[4] - cam_y * camera[2], depth


@njit(cache=True, nogil=True)
def unproject_point(camera: np.ndarray, u: float, v: float, depth: float) -> tuple[float, float, float]:
    """Continuous pixel coordinates and z-depth -> a world point, as Camera.unproject."""
    x = (u - camera[3]) / camera[1]
    y = (camera[4] - v) / camera[2]
    if camera[0] < 0.5:
        x, y = x * depth, y * depth
    return (camera[17] * x + camera[18] * y - camera[19] * depth + camera[20],
            camera[21] * x + camera[22] * y - camera[23] * depth + camera[24],
            camera[25] * x + camera[26] * y - camera[27] * depth + camera[28])


@njit(cache=True, nogil=True)
def view_direction(camera: np.ndarray, x: float, y: float, z: float) -> tuple[float, float, float]:
    """The unit direction along which the camera looks at a world point, as Camera.view_dirs."""
    if camera[0] > 0.5:
        return camera[29], camera[30], camera[31]
    dx, dy, dz = x - camera[32], y - camera[33], z - camera[34]
    norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
    return dx / norm, dy / norm, dz / norm


@dataclass(frozen=True)
class DepthEncoding:
    """How a depth PNG value maps to world units: linear onto [near, far], or value * unit_scale."""

    near: float | None = None
    far: float | None = None
    unit_scale: float | None = None

    def decode(self, values: np.ndarray, bits: int) -> np.ndarray:
        """PNG values -> float32 depth in world units; 0 (background) stays 0."""
        values = np.asarray(values).astype(np.float64)
        if self.unit_scale is not None:
            depth = values * self.unit_scale
        else:
            depth = self.near + values / (2**bits - 1) * (self.far - self.near)
        return np.where(values > 0, depth, 0.0).astype(np.float32)

    def encode(self, depth: np.ndarray, bits: int) -> np.ndarray:
        """World depth -> PNG values: 0 where depth <= 0 (background), else clamped into [1, vmax]."""
        depth = np.asarray(depth, dtype=np.float64)
        vmax = 2**bits - 1
        if self.unit_scale is not None:
            values = np.round(depth / self.unit_scale)
        else:
            values = np.round((np.clip(depth, self.near, self.far) - self.near) / (self.far - self.near) * vmax)
        values = np.clip(values, 1, vmax)
        return np.where(depth > 0, values, 0).astype(np.uint16 if bits == 16 else np.uint8)

    def step(self, bits: int) -> float:
        """World units per PNG value step: the depth quantisation of a `bits`-bit depth render."""
        if self.unit_scale is not None:
            return self.unit_scale
        return (self.far - self.near) / (2**bits - 1)


@dataclass(frozen=True)
class Rig:
    """Six cameras in slot order plus the depth encoding shared by the six depth renders."""

    cameras: tuple[Camera, ...]
    depth: DepthEncoding

    @property
    def width(self) -> int:
        return self.cameras[0].width

    @property
    def height(self) -> int:
        return self.cameras[0].height


def look_at(position: tuple[float, ...], toward: tuple[float, ...], up: tuple[float, ...]) -> np.ndarray:
    """Camera-to-world matrix (OpenGL) for a camera at `position` looking along `toward` with image up `up`."""
    back = -np.asarray(toward, dtype=np.float64)
    back /= np.linalg.norm(back)
    up = np.asarray(up, dtype=np.float64)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, true_up, back, position
    return matrix


def cube6_rig(size: int) -> Rig:
    """The default rig: six orthographic cameras at distance 2 on the axes, each image spanning [-1, 1]."""
    cameras = tuple(
        Camera(ORTHO, look_at(tuple(-CUBE6_DISTANCE * c for c in toward), toward, up), size, size,
               size / 2.0, size / 2.0, size / 2.0, size / 2.0)
        for toward, up in _CUBE6_AXES
    )
    return Rig(cameras, DepthEncoding(near=CUBE6_NEAR, far=CUBE6_FAR))


def rig_to_cameras_json(rig: Rig) -> dict:
    """The cameras.json that `parse_cameras_json` reads back into this same rig."""

    def intrinsics(camera: Camera) -> dict:
        keys: dict = {"camera_model": camera.model, "w": camera.width, "h": camera.height}
        if camera.is_ortho:
            keys["ortho_scale"] = camera.width / (2.0 * camera.fx)
            keys.update(cx=camera.cx, cy=camera.cy)
        else:
            keys.update(fl_x=camera.fx, fl_y=camera.fy, cx=camera.cx, cy=camera.cy)
        return keys

    shared = intrinsics(rig.cameras[0])
    data = dict(shared)
    if rig.depth.unit_scale is not None:
        data["depth_unit_scale_factor"] = rig.depth.unit_scale
    else:
        data.update(depth_near=rig.depth.near, depth_far=rig.depth.far)
    frames = []
    for camera in rig.cameras:
        frame = {k: v for k, v in intrinsics(camera).items() if shared.get(k) != v}
        frame["transform_matrix"] = camera.cam_to_world.tolist()
        frames.append(frame)
    data["frames"] = frames
    return data


# ---- cameras.json validation -------------------------------------------------------------------

_MISSING = object()


def _number(value: object, field: str, *, positive: bool = False, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FileValidationError(field, f"must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:
        raise FileValidationError(field, "is too large a number") from None
    if not math.isfinite(value):
        raise FileValidationError(field, f"must be a finite number, got {value}")
    if positive and value <= 0:
        raise FileValidationError(field, f"must be greater than 0, got {value}")
    if minimum is not None and value < minimum:
        raise FileValidationError(field, f"must be at least {minimum}, got {value}")
    return value


def _lookup(frame: dict, top: dict, key: str, index: int) -> tuple[object, str]:
    """A frame's own value wins over the top-level one; the field names where the value came from."""
    if key in frame:
        return frame[key], f"cameras.frames[{index}].{key}"
    return top.get(key, _MISSING), f"cameras.{key}"


def _require(frame: dict, top: dict, key: str, index: int, why: str) -> tuple[object, str]:
    value, field = _lookup(frame, top, key, index)
    if value is _MISSING:
        raise FileValidationError(field, f"is missing; {why}")
    return value, field


def _transform(value: object, field: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != 4 or not all(isinstance(r, list) and len(r) == 4 for r in value):
        raise FileValidationError(field, "must be a 4x4 list of numbers (camera-to-world, OpenGL convention)")
    for row in value:
        for item in row:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise FileValidationError(field, f"must contain only numbers, got {type(item).__name__}")
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise FileValidationError(field, "contains a number too large to use") from None
    if not np.isfinite(matrix).all() or np.abs(matrix).max() > 1e12:
        raise FileValidationError(field, "contains a non-finite or absurdly large number")
    if np.abs(matrix[3] - (0, 0, 0, 1)).max() > RIGID_TOLERANCE:
        raise FileValidationError(field, f"must have [0, 0, 0, 1] as its last row, got {matrix[3].tolist()}")
    rotation = matrix[:3, :3]
    if np.abs(rotation.T @ rotation - np.eye(3)).max() > RIGID_TOLERANCE or np.linalg.det(rotation) < 0:
        raise FileValidationError(
            field, "is not a rigid transform: its 3x3 rotation must be orthonormal with determinant +1 (no scale or mirror)"
        )
    return matrix


def _camera(frame: dict, top: dict, index: int, width: int, height: int) -> Camera:
    model, field = _require(frame, top, "camera_model", index, 'give "PERSPECTIVE" or "ORTHO"')
    if model not in (PERSPECTIVE, ORTHO):
        raise FileValidationError(field, f'must be "PERSPECTIVE" or "ORTHO", got {model!r}')
    for key, expected in (("w", width), ("h", height)):
        value, field = _require(frame, top, key, index, f"it must be the image {'width' if key == 'w' else 'height'}")
        if _number(value, field) != expected:
            raise FileValidationError(field, f"is {value} but the images are {width}x{height}")
    for key in ("k1", "k2", "k3", "k4", "p1", "p2"):
        value, field = _lookup(frame, top, key, index)
        if value is not _MISSING and _number(value, field) != 0:
            raise FileValidationError(field, "lens distortion is not supported; undistort the images and set it to 0")
    if model == ORTHO:
        scale = _number(*_require(frame, top, "ortho_scale", index, "ORTHO needs half the view width in world units"),
                        positive=True)
        fx = fy = width / (2.0 * scale)
        cx_value, cx_field = _lookup(frame, top, "cx", index)
        cy_value, cy_field = _lookup(frame, top, "cy", index)
        cx = width / 2.0 if cx_value is _MISSING else _number(cx_value, cx_field)
        cy = height / 2.0 if cy_value is _MISSING else _number(cy_value, cy_field)
    else:
        why = "PERSPECTIVE needs the focal lengths and principal point in pixels"
        fx = _number(*_require(frame, top, "fl_x", index, why), positive=True)
        fy = _number(*_require(frame, top, "fl_y", index, why), positive=True)
        cx = _number(*_require(frame, top, "cx", index, why))
        cy = _number(*_require(frame, top, "cy", index, why))
    field = f"cameras.frames[{index}].transform_matrix"
    if "transform_matrix" not in frame:
        raise FileValidationError(field, "is missing; each frame needs its camera-to-world matrix")
    matrix = _transform(frame["transform_matrix"], field)
    return Camera(str(model), matrix, width, height, fx, fy, cx, cy)


def _depth_encoding(data: dict) -> DepthEncoding:
    has_range = "depth_near" in data or "depth_far" in data
    if "depth_unit_scale_factor" in data:
        if has_range:
            raise FileValidationError(
                "cameras.depth_unit_scale_factor", "give either depth_near/depth_far or depth_unit_scale_factor, not both"
            )
        return DepthEncoding(unit_scale=_number(data["depth_unit_scale_factor"], "cameras.depth_unit_scale_factor",
                                                positive=True))
    for key in ("depth_near", "depth_far"):
        if key not in data:
            raise FileValidationError(
                f"cameras.{key}", "is missing; give depth_near and depth_far (or depth_unit_scale_factor)"
            )
    near = _number(data["depth_near"], "cameras.depth_near", minimum=0.0)
    far = _number(data["depth_far"], "cameras.depth_far")
    if far <= near:
        raise FileValidationError("cameras.depth_far", f"must be greater than depth_near ({near}), got {far}")
    return DepthEncoding(near=near, far=far)


def parse_cameras_json(data: object, width: int, height: int) -> Rig:
    """Validate a cameras.json (already JSON-decoded) against images of width x height, key by key."""
    if not isinstance(data, dict):
        raise FileValidationError("cameras", f"must be a JSON object, got {type(data).__name__}")
    frames = data.get("frames", _MISSING)
    if frames is _MISSING:
        raise FileValidationError("cameras.frames", "is missing; give 6 frames in slot order (" + ", ".join(SLOT_NAMES) + ")")
    if not isinstance(frames, list):
        raise FileValidationError("cameras.frames", f"must be a list of 6 frames, got {type(frames).__name__}")
    if len(frames) != len(SLOT_NAMES):
        raise FileValidationError(
            "cameras.frames", f"must have exactly 6 frames ({', '.join(SLOT_NAMES)}), got {len(frames)}"
        )
    encoding = _depth_encoding(data)
    cameras = []
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise FileValidationError(f"cameras.frames[{index}]", f"must be a JSON object, got {type(frame).__name__}")
        cameras.append(_camera(frame, data, index, width, height))
    return Rig(tuple(cameras), encoding)
