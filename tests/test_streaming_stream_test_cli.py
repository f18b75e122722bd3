"""``speech stream-test`` end to end on the shared test-set clips with the tiny checkpoint (torch and ONNX)."""

from __future__ import annotations

import json

import pytest
from conftest import SC_V2_TEST

from speech.cli import main
from speech.streaming.scoring import read_labels_file, streaming_accuracy, window_start_ms

REQUIRED = {"matched", "correct", "wrong", "false_positive", "false_alarms_per_hour", "median_delay_ms"}


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    from speech.export import export_onnx

    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def stream_test(model, out, json_file, *extra):
    return main(["stream-test", str(model), "--data", str(SC_V2_TEST), "--minutes", "1", "--noise-minutes", "0.5",
                 "--seed", "3", "--out", str(out), "--json", str(json_file), *extra])


def test_stream_test_writes_wav_labels_and_metrics(tiny_checkpoint, tiny_onnx, tmp_path, capsys):
    out, json_file = tmp_path / "run", tmp_path / "metrics.json"
    assert stream_test(tiny_checkpoint, out, json_file) == 0
    printed = capsys.readouterr().out
    assert "matched" in printed and "false alarms" in printed and "median delay" in printed
    metrics = json.loads(json_file.read_text())
    assert REQUIRED <= set(metrics)
    assert metrics["words"] == 20 and metrics["stream_seconds"] == 60.0 and metrics["noise_seconds"] == 30.0
    assert 0 <= metrics["correct"] <= metrics["matched"] <= 100 and metrics["wrong"] >= 0
    assert metrics["correct"] >= 20.0  # the tiny model is weak, but it does find words in the stream
    assert metrics["false_alarms_per_hour"] == metrics["false_alarms"] * 120
    assert metrics["median_delay_ms"] is None or 0 < metrics["median_delay_ms"] < 2000

    # the files are TF's formats, and re-scoring them gives the printed numbers
    truth = read_labels_file(out / "streaming_test_labels.txt")
    assert len(truth) == 20 and (out / "streaming_test.wav").stat().st_size > 60 * 16000 * 2
    made = read_labels_file(out / "streaming_test_detections.txt")  # time of each detection (window end)
    found = [type(d)(d.label, window_start_ms(d.time_ms / 1000.0)) for d in made]
    summary = streaming_accuracy(truth, found, 750.0).summary()
    assert {k: round(v, 2) for k, v in summary.items()} == {k: metrics[k] for k in summary}

    # the ONNX export gives the same recording and (to within a threshold flip) the same result
    onnx_json = tmp_path / "onnx.json"
    assert stream_test(tiny_onnx, tmp_path / "onnx", onnx_json) == 0
    onnx_metrics = json.loads(onnx_json.read_text())
    assert onnx_metrics["backend"] == "onnx"
    assert abs(onnx_metrics["correct"] - metrics["correct"]) <= 10.0
    assert (tmp_path / "onnx" / "streaming_test_labels.txt").read_text() == (out / "streaming_test_labels.txt").read_text()


def test_stream_test_refuses_to_overwrite_and_reports_bad_data(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "streaming_test.wav").write_bytes(b"earlier result")
    assert stream_test(tiny_checkpoint, out, tmp_path / "m.json") == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "streaming_test.wav").read_bytes() == b"earlier result"
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    assert stream_test(tiny_checkpoint, tmp_path / "new", existing) == 1
    assert "refusing to overwrite" in capsys.readouterr().err and existing.read_text() == "{}"
    empty = tmp_path / "empty-data"
    empty.mkdir()
    code = main(["stream-test", str(tiny_checkpoint), "--data", str(empty), "--minutes", "0.1", "--out", str(tmp_path / "x")])
    assert code == 1
    err = capsys.readouterr().err
    assert "speech stream-test: error:" in err and str(empty) in err
