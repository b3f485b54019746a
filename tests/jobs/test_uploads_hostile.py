"""Hostile uploads: whatever the bytes, validation answers with a FileValidationError or accepts; nothing else."""

import io
import json
import math

import numpy as np
import png as pypng
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.support.pngs import input_set
from worker.errors import FileValidationError
from worker.jobs.uploads import load_json, nesting_depth, validate_upload_files
from worker.recon.rig import parse_cameras_json

LIMITS = dict(max_file_bytes=1 << 20, max_pixels=1 << 16)
VIEWS, DEPTHS = input_set(16)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(views=VIEWS, depths=DEPTHS, cameras=None) -> str:
    try:
        validate_upload_files(views, depths, cameras, **LIMITS)
    except FileValidationError as error:
        assert error.field and error.message
        return error.field
    return "accepted"


def replaced(items, index, value):
    items = list(items)
    items[index] = value
    return items


@FUZZ
@given(st.binary(max_size=4096), st.integers(0, 5), st.booleans())
def test_random_bytes_in_any_slot(data, slot, as_view):
    if as_view:
        assert outcome(views=replaced(VIEWS, slot, data)) == f"views[{slot}]"
    else:
        assert outcome(depths=replaced(DEPTHS, slot, data)) == f"depth_renders[{slot}]"


@FUZZ
@given(st.data())
def test_truncated_and_corrupted_pngs(data):
    original = bytearray(VIEWS[2])
    cut = data.draw(st.integers(0, len(original) - 1))
    assert outcome(views=replaced(VIEWS, 2, bytes(original[:cut]))) == "views[2]"
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(1, 255)), min_size=1, max_size=4))
    for position, mask in flips:
        original[position] ^= mask
    assert outcome(views=replaced(VIEWS, 2, bytes(original))) in ("views[2]", "accepted")


@FUZZ
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_huge_dimensions_in_the_header_are_refused_before_decoding(width, height):
    import struct
    import zlib

    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    assert outcome(views=replaced(VIEWS, 0, header + b"\0" * 64)) == "views[0]"


def _pypng(rows, **writer_args) -> bytes:
    buffer = io.BytesIO()
    pypng.Writer(**writer_args).write(buffer, rows)
    return buffer.getvalue()


def _palette() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (16, 16)).save(buffer, format="PNG")
    return buffer.getvalue()


def _apng() -> bytes:
    frames = [Image.new("RGBA", (16, 16), (255, 0, 0, 255)), Image.new("RGBA", (16, 16), (0, 255, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make, slot_field, expected",
    [
        (_palette, "views", "views[1]"),
        (lambda: _pypng(np.zeros((16, 48), np.uint16).tolist(), width=16, height=16, bitdepth=16, greyscale=False),
         "views", "views[1]"),
        (lambda: _pypng(np.zeros((16, 48), np.uint16).tolist(), width=16, height=16, bitdepth=16, greyscale=False),
         "depth_renders", "depth_renders[1]"),
        (lambda: _pypng(np.full((16, 64), 200, np.uint8).tolist(), width=16, height=16, alpha=True, interlace=True,
                        greyscale=False), "views", "accepted"),
        (lambda: _pypng(np.zeros((16, 16), np.uint16).tolist(), width=16, height=16, bitdepth=16, greyscale=True,
                        interlace=True), "depth_renders", "accepted"),
        (_apng, "views", "accepted"),
        (lambda: b"", "depth_renders", "depth_renders[1]"),
    ],
    ids=["palette view", "16-bit RGB view", "16-bit RGB depth", "interlaced view", "interlaced depth", "APNG view",
         "zero-byte depth"],
)
def test_unusual_pngs_get_a_clear_answer(make, slot_field, expected):
    if slot_field == "views":
        assert outcome(views=replaced(VIEWS, 1, make())) == expected
    else:
        assert outcome(depths=replaced(DEPTHS, 1, make())) == expected


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)
CAMERA_KEYS = ["camera_model", "w", "h", "fl_x", "fl_y", "cx", "cy", "ortho_scale", "depth_near", "depth_far",
               "depth_unit_scale_factor", "frames"]


def _valid_cameras() -> dict:
    frames = [{"transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3.5], [0, 0, 0, 1]]} for _ in range(6)]
    return {"camera_model": "PERSPECTIVE", "w": 16, "h": 16, "fl_x": 17.0, "fl_y": 17.0, "cx": 8, "cy": 8,
            "depth_near": 0.5, "depth_far": 6.0, "frames": frames}


@FUZZ
@given(JSON)
def test_any_json_document_as_cameras(document):
    try:
        parse_cameras_json(document, 16, 16)
    except FileValidationError as error:
        assert error.field.startswith("cameras")


@FUZZ
@given(st.sampled_from(CAMERA_KEYS), JSON)
def test_any_value_for_any_camera_key(key, value):
    cameras = _valid_cameras()
    cameras[key] = value
    try:
        parse_cameras_json(cameras, 16, 16)
    except FileValidationError as error:
        assert error.field.startswith("cameras")


@FUZZ
@given(st.integers(0, 5), st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5), max_size=5))
def test_wrong_shaped_and_non_finite_matrices_name_the_frame(frame, matrix):
    cameras = _valid_cameras()
    cameras["frames"][frame]["transform_matrix"] = matrix
    finite_4x4 = len(matrix) == 4 and all(len(row) == 4 and all(math.isfinite(v) for v in row) for row in matrix)
    try:
        parse_cameras_json(cameras, 16, 16)
    except FileValidationError as error:
        assert error.field.startswith(f"cameras.frames[{frame}]")
    else:
        assert finite_4x4


def test_cameras_json_through_the_upload_path():
    assert outcome(cameras=json.dumps(_valid_cameras()).encode()) == "accepted"
    assert outcome(cameras=b'{"frames": NaN}').startswith("cameras")


@pytest.mark.parametrize("text, what", [
    ("[" * 100_000 + "]" * 100_000, "nests deeper"),
    ('{"grid_resolution": 1e999}', "too large a number"),
    ('{"grid_resolution": NaN}', "not a number JSON allows"),
    ('{"grid_resolution": ' + "9" * 5000 + "}", "not valid JSON"),
])
def test_json_from_a_client_is_bounded_before_it_is_parsed(text, what):
    with pytest.raises(FileValidationError, match=what) as refused:
        load_json(text, "options", "options")
    assert refused.value.field == "options"


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert nesting_depth('{"a": "[[[[{{{{\\\\\\"]]", "b": [1, [2]]}') == 3
