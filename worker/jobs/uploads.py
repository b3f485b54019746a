"""Upload validation and storage: a job's files are checked in full before anything is written.

The checks follow the input format in README.md. Every failure raises
FileValidationError naming the field (`views[2]`, `depth_renders[3]`,
`cameras.frames[1].transform_matrix`) with a sentence the user can act on.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Sequence, Union

import numpy as np
from PIL import Image

from ..errors import FileValidationError
from ..recon.inputs import eight_bit_depth_warning
from ..recon.rig import SLOT_NAMES, parse_cameras_json
from .files import CAMERAS_NAME, DEPTH_NAMES, VIEW_NAMES

UploadSource = Union[bytes, str, Path, BinaryIO]

VIEW_COUNT = 6
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
READ_CHUNK = 1 << 20
GREY, RGB, PALETTE, GREY_ALPHA, RGBA = 0, 2, 3, 4, 6
COLOUR_TYPE_NAMES = {GREY: "greyscale", RGB: "RGB", PALETTE: "palette", GREY_ALPHA: "greyscale+alpha", RGBA: "RGBA"}
MAX_JSON_NESTING = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET_STEP = np.zeros(256, np.int8)
_BRACKET_STEP[list(b"[{")], _BRACKET_STEP[list(b"]}")] = 1, -1


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    colour_type: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass
class ValidatedUpload:
    views: list[bytes]
    depth_renders: list[bytes]
    cameras: dict | None
    width: int
    height: int
    depth_bits: int
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes the stored inputs take (cameras.json aside: at most a file's limit, usually a few KB)."""
        return sum(map(len, self.views + self.depth_renders))


def read_limited(source: UploadSource, max_bytes: int, field_name: str) -> bytes:
    """Read at most `max_bytes`, refusing a larger file as soon as it is seen to be larger."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, Path)):
        with open(source, "rb") as stream:
            return read_limited(stream, max_bytes, field_name)
    else:
        buffer = io.BytesIO()
        while chunk := source.read(READ_CHUNK):
            buffer.write(chunk)
            if buffer.tell() > max_bytes:
                break
        data = buffer.getvalue()
    if len(data) > max_bytes:
        raise FileValidationError(field_name, f"is larger than the {max_bytes // (1024 * 1024)} MB limit")
    if not data:
        raise FileValidationError(field_name, "is empty")
    return data


def read_png_header(data: bytes, field_name: str) -> PngHeader:
    if not data.startswith(PNG_SIGNATURE):
        raise FileValidationError(field_name, "is not a PNG file")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise FileValidationError(field_name, "is a damaged PNG: its IHDR header is missing")
    ihdr = data[16:29]
    if zlib.crc32(data[12:29]) != struct.unpack(">I", data[29:33])[0]:
        raise FileValidationError(field_name, "is a damaged PNG: its IHDR header fails its checksum")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", ihdr[:10])
    if width == 0 or height == 0:
        raise FileValidationError(field_name, "has zero width or height")
    return PngHeader(width, height, bit_depth, colour_type)


def decode_png(data: bytes, header: PngHeader, field_name: str, max_pixels: int) -> np.ndarray:
    """Decode fully (checking every chunk's CRC) after the pixel count was checked from the header."""
    if header.width * header.height > max_pixels:
        raise FileValidationError(
            field_name, f"is {header.size}, more than the limit of {max_pixels} pixels"
        )
    if not data.endswith(PNG_END):
        raise FileValidationError(field_name, "is a truncated PNG: it does not end with the IEND chunk")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image)
    except FileValidationError:
        raise
    except Exception as exc:
        raise FileValidationError(field_name, f"is a truncated or corrupt PNG ({exc})") from None


def _check_view(index: int, data: bytes, max_pixels: int) -> tuple[PngHeader, np.ndarray]:
    field_name = f"views[{index}]"
    header = read_png_header(data, field_name)
    if header.colour_type not in (RGB, RGBA) or header.bit_depth != 8:
        raise FileValidationError(
            field_name,
            f"view {index} ({SLOT_NAMES[index]}) is a {header.bit_depth}-bit "
            f"{COLOUR_TYPE_NAMES.get(header.colour_type, 'unknown')} PNG; views must be 8-bit RGB or RGBA",
        )
    return header, decode_png(data, header, field_name, max_pixels)


def _check_depth(index: int, data: bytes, max_pixels: int) -> tuple[PngHeader, np.ndarray]:
    field_name = f"depth_renders[{index}]"
    header = read_png_header(data, field_name)
    allowed = (header.colour_type == GREY and header.bit_depth in (8, 16)) or (
        header.colour_type in (RGB, RGBA) and header.bit_depth == 8
    )
    if not allowed:
        raise FileValidationError(
            field_name,
            f"depth render {index} ({SLOT_NAMES[index]}) is a {header.bit_depth}-bit "
            f"{COLOUR_TYPE_NAMES.get(header.colour_type, 'unknown')} PNG; depth renders must be "
            "one-channel (greyscale) 8-bit or 16-bit PNGs",
        )
    pixels = decode_png(data, header, field_name, max_pixels)
    if header.colour_type in (RGB, RGBA) and not (
        np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
    ):
        raise FileValidationError(
            field_name,
            f"depth render {index} ({SLOT_NAMES[index]}) is a colour image; a depth render must be "
            "greyscale (or RGB with three equal channels)",
        )
    return header, pixels


def _check_count(items: Sequence[object], field_name: str, what: str) -> None:
    if len(items) != VIEW_COUNT:
        raise FileValidationError(
            field_name,
            f"expected exactly {VIEW_COUNT} {what} (front, right, back, left, top, bottom), got {len(items)}",
        )


def nesting_depth(text: bytes | str) -> int:
    """How deep brackets nest in a JSON text, counted before parsing (deep nesting exhausts the parser).

    Strings are cut out first, so brackets inside them do not count; the rest is one cumulative sum: a
    regular-expression pass and a numpy sum instead of a Python loop over every character (the guard in front
    of Gradio runs this on the event loop for every event)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    steps = _BRACKET_STEP[np.frombuffer(_JSON_STRING.sub(b"", data), np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def load_json(text: bytes | str, field: str, what: str) -> object:
    """JSON from a client: at most MAX_JSON_NESTING deep, finite numbers only; else an error naming `field`."""
    if nesting_depth(text) > MAX_JSON_NESTING:
        raise FileValidationError(field, f"{what} nests deeper than {MAX_JSON_NESTING} levels")
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileValidationError(field, f"{what} is not valid JSON ({exc})") from None


def _parse_cameras(source: UploadSource, max_bytes: int, width: int, height: int) -> dict:
    data = load_json(read_limited(source, max_bytes, "cameras"), "cameras", "cameras.json")
    parse_cameras_json(data, width, height)
    return data


def validate_upload_files(
    views: Sequence[UploadSource],
    depth_renders: Sequence[UploadSource],
    cameras: UploadSource | None = None,
    *,
    max_file_bytes: int,
    max_pixels: int,
) -> ValidatedUpload:
    _check_count(views, "views", "views")
    _check_count(depth_renders, "depth_renders", "depth renders")
    view_bytes = [read_limited(src, max_file_bytes, f"views[{i}]") for i, src in enumerate(views)]
    depth_bytes = [read_limited(src, max_file_bytes, f"depth_renders[{i}]") for i, src in enumerate(depth_renders)]

    view_headers = [_check_view(i, data, max_pixels)[0] for i, data in enumerate(view_bytes)]
    first = view_headers[0]
    for i, header in enumerate(view_headers[1:], start=1):
        if (header.width, header.height) != (first.width, first.height):
            raise FileValidationError(
                f"views[{i}]", f"view {i} is {header.size} but view 0 is {first.size}; all views must be the same size"
            )

    depth_bits = set()
    for i, data in enumerate(depth_bytes):
        header, _ = _check_depth(i, data, max_pixels)
        if (header.width, header.height) != (first.width, first.height):
            raise FileValidationError(
                f"depth_renders[{i}]", f"depth render {i} is {header.size} but the views are {first.size}"
            )
        depth_bits.add(header.bit_depth)
    if len(depth_bits) > 1:
        raise FileValidationError("depth_renders", "depth renders mix 8-bit and 16-bit PNGs; use one bit depth for all six")

    if cameras is None:
        if first.width != first.height:
            raise FileValidationError(
                "views",
                f"the views are {first.size}, but the default cube6 rig needs square images; "
                "make them square or upload a cameras.json",
            )
        camera_data = None
    else:
        camera_data = _parse_cameras(cameras, max_file_bytes, first.width, first.height)

    bits = depth_bits.pop()
    warnings = []
    if bits == 8:
        warnings.append(eight_bit_depth_warning())
    return ValidatedUpload(view_bytes, depth_bytes, camera_data, first.width, first.height, bits, warnings)


def store_inputs(upload: ValidatedUpload, inputs_dir: Path) -> None:
    """Write under server-chosen names into a temporary folder, then move it into place in one step."""
    inputs_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=inputs_dir.parent))
    try:
        for name, data in zip(VIEW_NAMES + DEPTH_NAMES, upload.views + upload.depth_renders):
            (staging / name).write_bytes(data)
        if upload.cameras is not None:
            (staging / CAMERAS_NAME).write_text(json.dumps(upload.cameras))
        os.replace(staging, inputs_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
