"""The README's main job, end to end at a tiny size: synth -> train -> evaluate -> export -> stream-test."""

from __future__ import annotations

import json

import pytest
from conftest import SC_V2_TEST

from speech.cli import main as speech_main


@pytest.mark.slow
def test_quickstart_runs_end_to_end_at_tiny_size(tmp_path, capsys):
    out = tmp_path / "qs"
    code = speech_main(["quickstart", "--out", str(out), "--per-word", "6", "--epochs", "1",
                        "--stream-minutes", "0.5", "--real-data", str(SC_V2_TEST)])
    assert code == 0
    printed = capsys.readouterr().out
    run_dir = out / "runs" / "quickstart" / "version_0"
    reports = run_dir / "reports"
    synthetic = json.loads((reports / "synthetic-test.json").read_text())
    real = json.loads((reports / "real-test.json").read_text())
    stream = json.loads((reports / "stream-test.json").read_text())
    assert 0.0 <= synthetic["accuracy"] <= 1.0 and 0.0 <= real["accuracy"] <= 1.0
    assert {"matched", "correct", "wrong", "false_positive", "false_alarms_per_hour", "median_delay_ms"} <= set(stream)
    assert (run_dir / "model.onnx").is_file()
    assert f"{synthetic['accuracy']:.1%}" in printed and "speech live" in printed
    # a second run reuses the synthetic set and trains into a new version folder
    assert speech_main(["quickstart", "--out", str(out), "--per-word", "6", "--epochs", "1",
                        "--stream-minutes", "0.5", "--real-data", str(tmp_path / "none")]) == 0
    assert (out / "runs" / "quickstart" / "version_1" / "model.onnx").is_file()
