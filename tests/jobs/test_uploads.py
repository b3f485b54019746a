"""Upload validation: every rule of the input contract, one bad file each, and nothing written on failure."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.support.pngs import depth_png, input_set, png, view_png
from worker.errors import FileValidationError
from worker.jobs.files import JobFiles
from worker.jobs.uploads import store_inputs, validate_upload_files

LIMITS = dict(max_file_bytes=1 << 20, max_pixels=1 << 20)


def validate(views, depths, cameras=None, **limits):
    return validate_upload_files(views, depths, cameras, **{**LIMITS, **limits})


def rejected(views, depths, cameras=None, **limits) -> FileValidationError:
    with pytest.raises(FileValidationError) as caught:
        validate(views, depths, cameras, **limits)
    return caught.value


def with_replaced(items, index, value):
    items = list(items)
    items[index] = value
    return items


def test_a_valid_set_passes_with_its_size_and_bit_depth():
    views, depths = input_set(32)
    upload = validate(views, depths)
    assert (upload.width, upload.height, upload.depth_bits, upload.warnings) == (32, 32, 16, [])
    assert upload.views == views and upload.depth_renders == depths


def test_file_objects_paths_and_bytes_are_all_accepted(tmp_path):
    views, depths = input_set(32)
    paths = []
    for i, data in enumerate(depths):
        paths.append(tmp_path / f"d{i}.png")
        paths[-1].write_bytes(data)
    upload = validate([io.BytesIO(v) for v in views], paths)
    assert upload.depth_renders == depths


@pytest.mark.parametrize("count", [0, 5, 7])
def test_exactly_six_views_are_required(count):
    views, depths = input_set(32)
    error = rejected((views * 2)[:count], depths)
    assert error.field == "views" and f"got {count}" in error.message


def test_exactly_six_depth_renders_are_required():
    views, depths = input_set(32)
    error = rejected(views, depths[:4])
    assert error.field == "depth_renders" and "got 4" in error.message


def test_a_file_that_is_not_a_png_is_named():
    views, depths = input_set(32)
    error = rejected(with_replaced(views, 2, b"GIF89a" + b"\0" * 64), depths)
    assert error.field == "views[2]" and "not a PNG" in error.message


def test_an_empty_file_is_named():
    views, depths = input_set(32)
    assert rejected(views, with_replaced(depths, 5, b"")).field == "depth_renders[5]"


def test_a_truncated_png_is_refused():
    views, depths = input_set(32)
    error = rejected(with_replaced(views, 1, views[1][: len(views[1]) // 2]), depths)
    assert error.field == "views[1]" and "truncated" in error.message


def test_a_png_with_a_corrupted_data_chunk_is_refused():
    views, depths = input_set(32)
    broken = bytearray(depths[3])
    idat = broken.index(b"IDAT")
    broken[idat + 8] ^= 0xFF
    assert rejected(views, with_replaced(depths, 3, bytes(broken))).field == "depth_renders[3]"


def test_a_bad_ihdr_checksum_is_refused():
    views, depths = input_set(32)
    broken = bytearray(views[0])
    broken[29] ^= 0xFF
    error = rejected(with_replaced(views, 0, bytes(broken)), depths)
    assert error.field == "views[0]" and "checksum" in error.message


def test_the_size_limit_is_enforced_while_reading():
    class Endless(io.RawIOBase):
        def __init__(self):
            self.served = 0

        def readable(self):
            return True

        def read(self, size=-1):
            self.served += size
            return b"\0" * size

    views, depths = input_set(32)
    endless = Endless()
    error = rejected(with_replaced(views, 4, endless), depths, max_file_bytes=3 << 20)
    assert error.field == "views[4]" and "3 MB limit" in error.message
    assert endless.served <= 4 << 20


def _png_with_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 32


def test_a_decompression_bomb_is_refused_from_its_header():
    views, depths = input_set(32)
    error = rejected(with_replaced(views, 0, _png_with_header(100_000, 100_000)), depths)
    assert error.field == "views[0]" and "pixels" in error.message


def _palette() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (32, 32)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image, what",
    [
        (lambda: png(np.zeros((32, 32), np.uint8)), "8-bit greyscale"),
        (_palette, "palette"),
    ],
)
def test_a_view_must_be_8_bit_rgb_or_rgba(image, what):
    views, depths = input_set(32)
    error = rejected(with_replaced(views, 3, image()), depths)
    assert error.field == "views[3]" and what in error.message


def test_views_must_all_have_the_same_size():
    views, depths = input_set(32)
    error = rejected(with_replaced(views, 4, view_png(48)), depths)
    assert error.field == "views[4]" and "48x48 but view 0 is 32x32" in error.message


def test_depth_renders_must_match_the_views():
    views, depths = input_set(32)
    error = rejected(views, with_replaced(depths, 3, depth_png(24, width=40)))
    assert error.field == "depth_renders[3]"
    assert error.message == "depth render 3 is 40x24 but the views are 32x32"


def test_a_colour_depth_render_is_refused_but_equal_channels_are_read_as_grey():
    views, depths = input_set(32, bits=8)
    grey = np.zeros((32, 32, 3), np.uint8)
    grey[8:24, 8:24] = 99
    assert validate(views, with_replaced(depths, 0, png(grey))).depth_bits == 8
    coloured = grey.copy()
    coloured[10, 10] = (99, 98, 99)
    error = rejected(views, with_replaced(depths, 0, png(coloured)))
    assert error.field == "depth_renders[0]" and "colour image" in error.message


def test_mixed_bit_depths_are_refused():
    views, depths = input_set(32)
    error = rejected(views, with_replaced(depths, 2, depth_png(32, bits=8)))
    assert error.field == "depth_renders"


def test_8_bit_depth_is_accepted_with_a_warning():
    views, depths = input_set(32, bits=8)
    upload = validate(views, depths)
    assert upload.depth_bits == 8 and "8-bit" in upload.warnings[0]


def test_the_cube6_rig_needs_square_images():
    views = [png(np.full((24, 32, 3), 50, np.uint8)) for _ in range(6)]
    depths = [depth_png(24, width=32) for _ in range(6)]
    error = rejected(views, depths)
    assert error.field == "views" and "square" in error.message


def test_a_cameras_json_that_is_not_json_is_named():
    views, depths = input_set(32)
    error = rejected(views, depths, cameras=b"{not json")
    assert error.field == "cameras"


def test_a_cameras_json_error_names_the_key():
    views, depths = input_set(32)
    cameras = {"camera_model": "ORTHO", "w": 32, "h": 32, "ortho_scale": 1.0, "depth_near": 0.5, "depth_far": 3.5,
               "frames": [{"transform_matrix": np.eye(4).tolist()} for _ in range(5)]}
    error = rejected(views, depths, cameras=json.dumps(cameras).encode())
    assert error.field.startswith("cameras.frames")


def test_stored_inputs_use_server_chosen_names(tmp_path):
    views, depths = input_set(32)
    store_inputs(validate(views, depths), tmp_path / "job" / "inputs")
    view_paths, depth_paths, cameras = JobFiles(tmp_path / "job").stored_inputs()
    assert [p.name for p in view_paths] == [f"view_{i}.png" for i in range(6)]
    assert [p.read_bytes() for p in depth_paths] == depths and cameras is None
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["inputs"]
