"""Issue #36 row 4: an output place the kernel will not write into, although its permission bits say it may
(``/proc``, ``/sys``: root may "write" there by ``os.access``, but they take no new files), is bad input for every
command that writes one: exit 2, one line naming the option, before any work (no model loaded, nothing scored)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import SC_V2_TEST

from speech.cli import main

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir() or not Path("/sys/kernel").is_dir(),
                                reason="needs Linux's /proc and /sys")


def refused(capsys, argv: list[str], flag: str, place: str) -> None:
    start = time.monotonic()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing was scored or written before the refusal
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"speech {argv[0]}: error: {place}"), err
    assert f"({flag}" in err and "Errno" not in err and "Traceback" not in err, err
    assert not Path(place).exists()
    assert time.monotonic() - start < 20  # a check, not the command's work (the tiny model's scoring takes longer)


def test_unwritable_output_places_are_refused_before_any_work(tiny_checkpoint, tmp_path, capsys):
    model, data = str(tiny_checkpoint), str(SC_V2_TEST)
    stream = ["--data", data, "--minutes", "0.5", "--noise-minutes", "0.25", "--allow-trained-speakers"]
    cases = [
        (["evaluate", model, "--data", data, "--out", "/proc/speech-report"], "--out", "/proc/speech-report"),
        (["evaluate", model, "--data", data, "--json", "/proc/speech.json"], "--json", "/proc/speech.json"),
        (["export", model, "--onnx", "/proc/speech.onnx"], "--onnx", "/proc/speech.onnx"),
        (["export", model, "--onnx", "/sys/speech.onnx"], "--onnx", "/sys/speech.onnx"),
        (["calibrate", model, *stream, "--out", "/proc/speech.ckpt"], "--out", "/proc/speech.ckpt"),
        (["calibrate", model, *stream, "--report", "/proc/speech-cal"], "--report", "/proc/speech-cal"),
        (["stream-test", model, *stream, "--out", "/proc/speech-st"], "--out", "/proc/speech-st"),
        (["stream-test", model, *stream, "--out", str(tmp_path / "st"), "--json", "/sys/st.json"], "--json",
         "/sys/st.json"),
        (["synth", "--words", "alpha,beta", "--per-word", "2", "--out", "/proc/speech-words"], "--out",
         "/proc/speech-words"),
    ]
    for argv, flag, place in cases:
        refused(capsys, argv, flag, place)
    assert not (tmp_path / "st").exists()


def test_the_write_check_leaves_nothing_behind(tmp_path):
    from speech.errors import OutputPlaceError
    from speech.utils.files import check_can_create

    check_can_create(tmp_path / "new" / "report", "report folder", param="out")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, and no folder was made
    with pytest.raises(OutputPlaceError, match=r"^/proc/x: cannot write the report folder: /proc takes no new files"):
        check_can_create("/proc/x", "report folder", param="out")
