"""The README's main job, end to end at a tiny size: synth -> train -> evaluate -> export -> stream-test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SC_V2_TEST

import speech
from speech.cli import main as speech_main


def test_quickstart_runs_end_to_end_at_tiny_size(tmp_path, capsys):
    out = tmp_path / "qs"
    # small, but big enough to learn: 60 clips a word of about 55 voices, 10 epochs (about 30 s on one thread)
    code = speech_main(["quickstart", "--out", str(out), "--per-word", "60", "--epochs", "10",
                        "--stream-minutes", "0.5", "--real-data", str(SC_V2_TEST)])
    assert code == 0
    printed = capsys.readouterr().out
    run_dir = out / "runs" / "quickstart" / "version_0"
    reports = run_dir / "reports"
    synthetic = json.loads((reports / "synthetic-test.json").read_text())
    real = json.loads((reports / "real-test.json").read_text())
    stream = json.loads((reports / "stream-test.json").read_text())
    for report in (synthetic, real):  # the accuracy is the confusion matrix's diagonal share
        matrix = report["confusion"]["matrix"]
        assert report["accuracy"] == pytest.approx(sum(row[i] for i, row in enumerate(matrix)) / sum(map(sum, matrix)))
    assert {"keyword_recall", "keyword_wrong", "false_accepts_per_hour", "false_alarms_per_hour",
            "median_delay_ms"} <= set(stream)  # fmt: skip
    assert stream["split"]["source"] == "model record" and stream["split"]["clips_of_training_speakers"] == 0
    assert f"{stream['keyword_recall']:.1f}% of keywords recognised" in printed
    # it learnt: held-out synthetic voices well above chance (1/12; measured 75-79 % over two seeds), real
    # speakers above it too (36-44 %)
    assert synthetic["accuracy"] >= 0.5 and real["accuracy"] >= 2 / 12, (synthetic["accuracy"], real["accuracy"])
    # the exported model predicts as the checkpoint does, on every synthetic clip
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    clips = sorted((out / "synth-12").rglob("*.wav"))
    assert len(clips) >= 12 * 60
    torch_p, onnx_p = (speech.load(m).predict_batch(clips) for m in (best, run_dir / "model.onnx"))
    assert np.abs(torch_p - onnx_p).max() < 1e-4 and (torch_p.argmax(1) == onnx_p.argmax(1)).all()
    assert f"{synthetic['accuracy']:.1%}" in printed and "speech live" in printed
    # held-out figures only: the checkpoint's record chose the synthetic test split, none of it trained on
    assert synthetic["data"]["split_settings"]["source"] == "model record"
    assert synthetic["data"]["clips_of_training_speakers"] == 0
    assert f"on held-out synthetic voices ({synthetic['data']['clips']} clips" in printed
    assert f"{real['accuracy']:.1%} on real speakers ({real['data']['clips']} clips" in printed
    # the packaged model beside it, on the same real clips: its own test part, which neither model trained on
    packaged = json.loads((reports / "packaged-real-test.json").read_text())
    assert packaged["data"]["clip_set"] == real["data"]["clip_set"] and packaged["data"]["split"] == "test"
    assert packaged["data"]["split_settings"]["source"] == "model record"
    assert packaged["data"]["clips_of_training_speakers"] == real["data"]["clips_of_training_speakers"] == 0
    from speech.models import read_card

    assert packaged["accuracy"] == read_card()["figures"]["clip_accuracy"]["sc-v2-test-fit"]["accuracy"]
    assert (f"  packaged model  {packaged['accuracy']:.1%} on the same real clips (its test part of {SC_V2_TEST}: "
            f"speakers neither model trained on), against {real['accuracy']:.1%}") in printed
    first_next = printed.split("Next:\n", 1)[1].splitlines()[0]
    assert first_next.split("#")[0].split()[1:] == ["live"]
    # a second run reuses the synthetic set and trains into a new version folder
    assert speech_main(["quickstart", "--out", str(out), "--per-word", "60", "--epochs", "1",
                        "--stream-minutes", "0.5", "--real-data", str(tmp_path / "none")]) == 0
    assert (out / "runs" / "quickstart" / "version_1" / "model.onnx").is_file()


def test_quickstart_prints_held_out_figures_and_refuses_trained_speakers(tmp_path):
    """The summary names the held-out clips it scored; a report that scored training speakers is an error."""
    from speech.quickstart import HeldOut, QuickstartResult, held_out, next_steps

    report = {
        "accuracy": 0.9812,
        "data": {"clips": 160, "speakers": 14, "split": "test", "root": "q/synth-12",
                 "split_settings": {"source": "model record"}, "clips_of_training_speakers": 0},
    }  # fmt: skip
    synthetic = held_out(report, "synthetic")
    stream = {"keyword_recall": 61.0, "keyword_wrong": 2.0, "false_accepts_per_hour": 12.0,
              "false_alarms_per_hour": 0.0, "median_delay_ms": 640.0}  # fmt: skip
    result = QuickstartResult(tmp_path, tmp_path / "best.ckpt", tmp_path / "m.onnx", synthetic, None, stream, 60.0)
    text = next_steps(result)
    assert "98.1% on held-out synthetic voices (160 clips of 14 voices, the test split, none trained on)" in text
    assert "61.0% of keywords recognised" in text and "median delay 640 ms" in text
    assert "  packaged model  " not in text  # no real clips scored: no comparison
    # with the packaged model scored on the same real clips: its line, its card's streaming figures, and
    # 'speech live' (no model: the packaged one) as the first Next: line
    from speech.models import read_card

    real = HeldOut(0.43, 659, 38, "test", "../shared/data/sc-v2-test-fit", "model record")
    packaged = HeldOut(0.917, 659, 38, "test", "../shared/data/sc-v2-test-fit", "model record")
    card = read_card()
    result = QuickstartResult(tmp_path, tmp_path / "best.ckpt", tmp_path / "m.onnx", synthetic, real, stream, 60.0,
                              packaged, card)
    lines = next_steps(result, ".venv/bin/speech").splitlines()
    assert ("  packaged model  91.7% on the same real clips (its test part of ../shared/data/sc-v2-test-fit: speakers "
            "neither model trained on), against 43.0%") in lines
    recall = card["figures"]["streams"]["sc-v2-test-fit"]["recall"]
    assert any(line.strip().startswith(f"its card: {recall:.1f}% of keywords recognised") for line in lines)
    after = lines[lines.index("Next:") + 1]
    assert after.split("#")[0].split() == [".venv/bin/speech", "live"] and "packaged model" in after
    leaked = {**report, "data": {**report["data"], "clips_of_training_speakers": 3}}
    with pytest.raises(RuntimeError, match="scored 3 clips of training speakers"):
        held_out(leaked, "synthetic")


def test_quickstart_output_is_ignored_by_git():
    import shutil
    import subprocess

    from conftest import REPO

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("quickstart/synth-12/yes/a_nohash_0.wav", "quickstart/runs/quickstart/version_0/metrics.csv",
                 "quickstart/cache/waves-0.json"):  # fmt: skip
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path
    assert subprocess.run(["git", "check-ignore", "-q", "speech/quickstart.py"], cwd=REPO).returncode == 1
