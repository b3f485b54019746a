"""The one rule for a client-sent file path, and the walk that finds every path in an event's data."""

import os

import pytest

from webui.upload_guard import UploadPaths, file_paths
from worker.errors import FileValidationError


@pytest.fixture
def folder(tmp_path):
    uploads = tmp_path / "gradio"
    (uploads / "3f1c").mkdir(parents=True)
    (uploads / "3f1c" / "view.png").write_bytes(b"\x89PNG" + b"0" * 100)
    return uploads


def test_a_regular_file_in_the_upload_folder_is_an_upload(folder):
    assert UploadPaths(folder, 1000).is_upload(str(folder / "3f1c" / "view.png"))


@pytest.mark.parametrize("path", [
    "/dev/zero", "/etc/passwd", "/etc/shadow", "/nonexistent/file.png", "http://127.0.0.1/models",
    "relative/view.png", "", "\x00", None, 42, ["/etc/passwd"],
])
def test_anything_outside_it_is_not(folder, path):
    assert not UploadPaths(folder, 1000).is_upload(path)


def test_dot_dot_links_devices_folders_and_large_files_are_not_uploads(folder, tmp_path):
    paths = UploadPaths(folder, 50)
    (folder / "link.png").symlink_to("/etc/passwd")
    (folder / "inner.png").symlink_to(folder / "3f1c" / "view.png")
    assert not paths.is_upload(str(folder / "3f1c" / ".." / ".." / "secret"))
    assert not paths.is_upload(str(folder / "link.png"))
    assert not paths.is_upload(str(folder / "inner.png")), "no links at all, even to an upload"
    assert not paths.is_upload(str(folder / "3f1c"))
    assert not paths.is_upload(str(folder / "3f1c" / "view.png")), "larger than the file limit"
    if os.path.exists("/dev/null"):
        os.symlink("/dev/null", folder / "null.png")
        assert not paths.is_upload(str(folder / "null.png"))


def test_a_refusal_names_the_field_and_reads_the_same_whether_or_not_the_path_exists(folder):
    paths = UploadPaths(folder, 1000)
    messages = set()
    for path in ("/etc/passwd", "/no/such/file"):
        with pytest.raises(FileValidationError) as refused:
            paths.check(path, "views[2]")
        assert refused.value.field == "views[2]" and path not in refused.value.message
        messages.add(refused.value.message)
    assert len(messages) == 1


def test_every_path_in_an_events_data_is_found_however_deep():
    data = [[{"image": {"path": "/a", "meta": {"_type": "gradio.FileData"}}, "caption": None}],
            {"path": "/b"}, "fusion", {"x": [[[{"path": "/c"}]]]}, None]
    assert sorted(file_paths(data)) == ["/a", "/b", "/c"]
