"""Progress of long library calls: reported through a callback or logging, never printed by the library."""

from __future__ import annotations

import logging

from conftest import SC_V2_TEST

from speech.cli.progress import ProgressBars
from speech.data import SplitSettings, build_index, cached_waveforms
from speech.utils.progress import Step, reporter


def test_cache_build_reports_steps_to_a_callback_and_prints_nothing(tmp_path, capsys):
    examples = build_index(SC_V2_TEST, "12", split=SplitSettings("speaker")).splits["validation"][:300]
    steps: list[Step] = []
    cached_waveforms(examples, tmp_path / "cache", progress=steps.append, num_workers=2)
    assert len({s.what for s in steps}) == 1 and steps[0].done == 0 and steps[-1].finished
    assert [s.done for s in steps] == sorted(s.done for s in steps) and steps[-1].done == len(examples) == steps[-1].total
    assert all(s.unit == "clips" for s in steps)
    # True: the same steps go to logging, a line per tenth at most; the library itself prints nothing
    with_log = tmp_path / "cache2"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("speech.utils.progress").addHandler(handler)
    logging.getLogger("speech.utils.progress").setLevel(logging.INFO)
    try:
        cached_waveforms(examples, with_log, progress=True, num_workers=2)
    finally:
        logging.getLogger("speech.utils.progress").removeHandler(handler)
    assert 2 <= len(records) <= 11 and records[-1].getMessage().endswith(f"{len(examples)}/{len(examples)} clips")
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_bars_stop_by_themselves_when_every_task_is_done(capsys, monkeypatch):
    monkeypatch.setattr("speech.cli.progress.on_terminal", lambda: True)  # bars, as on a terminal
    bars = ProgressBars()
    for done in range(0, 101, 25):
        bars(Step("decoding", done, 100, "clips"))
    assert bars.showing == set()  # stopped: no live display left to clash with Lightning's progress bar
    with ProgressBars() as bars:
        bars(Step("download", 10, 1000, "bytes"))
        assert bars.showing == {"bytes"}
    assert bars.showing == set()  # stopped on leaving the block, unfinished
    assert reporter(None)(Step("x", 1, 2)) is None and reporter(False) is reporter(None)
