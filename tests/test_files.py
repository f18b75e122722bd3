"""Writing user-visible files: complete or not at all, never over a file without being asked."""

from __future__ import annotations

import pytest

from speech.utils.files import replaced_atomically, write_text_atomically


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("the user's model")
    with pytest.raises(RuntimeError), replaced_atomically(target, overwrite=True) as tmp:
        tmp.write_text("half a model")
        raise RuntimeError("export failed")
    assert target.read_text() == "the user's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_an_existing_file_is_refused_unless_overwrite(tmp_path):
    target = tmp_path / "sub" / "out.ckpt"
    with replaced_atomically(target) as tmp:
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(FileExistsError, match="refusing to overwrite"), replaced_atomically(target) as tmp:
        tmp.write_text("second")
    with replaced_atomically(target, overwrite=True) as tmp:
        tmp.write_text("second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.ckpt"]


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path):
    target = tmp_path / "report.json"
    with pytest.raises(FileExistsError), replaced_atomically(target) as tmp:
        tmp.write_text("ours")
        target.write_text("someone else's")
    assert target.read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_written_files_get_the_ordinary_permissions_of_new_files(tmp_path):
    """The temporary file is private (mkstemp) while it is written; the finished file has the mode any new file
    gets under the user's umask, so a model exported for another user (a service account) can be read by it."""
    import os

    old = os.umask(0o022)
    try:
        path = write_text_atomically(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
