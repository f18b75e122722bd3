"""``speech stream-test`` end to end on the shared test-set clips with the tiny checkpoint (torch and ONNX):
the keyword-spotting figures, TF's figures, the held-out split and its refusal of training speakers, the sweep."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import SC_V1_SAMPLE, SC_V2_TEST
from streaming_helpers import held_out_speakers, recorded_checkpoint

import speech
from speech.audio.io import load_audio
from speech.cli import main
from speech.evaluation.streams.matching import (
    LabelledTime,
    keyword_accuracy,
    read_labels_file,
    read_words_file,
    streaming_accuracy,
    window_start_ms,
)
from speech.evaluation.streams.source import negative_clips
from speech.runtime.scorers import load_scorer
from speech.streaming.detection import DetectorConfig, smooth_scores

KWS = {"keyword_recall", "keyword_wrong", "keyword_missed", "median_delay_ms", "false_accepts_per_hour",
       "false_accepts_per_word", "false_alarms_per_hour"}
TF = {"tf_matched", "tf_correct", "tf_wrong", "tf_false_positive"}


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    from speech.runtime.export import export_onnx

    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def recorded(tiny_checkpoint, tmp_path_factory):
    """The tiny model with a record: 10 % of the speakers validation, 10 % test, the rest "trained on"."""
    return recorded_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("rec") / "recorded.ckpt")


def stream_test(model, out, json_file, *extra, minutes="1"):
    return main(["stream-test", str(model), "--data", str(SC_V2_TEST), "--minutes", minutes, "--unknown-minutes", "0.5",
                 "--noise-minutes", "0.5", "--stream-seed", "3", "--out", str(out), "--json", str(json_file), *extra])


def test_stream_test_writes_streams_and_figures(tiny_checkpoint, tiny_onnx, tmp_path, capsys):
    out, json_file = tmp_path / "run", tmp_path / "metrics.json"
    assert stream_test(tiny_checkpoint, out, json_file) == 0
    printed = capsys.readouterr().out
    for text in ("recall (correct)", "of the keyword words", "false accepts", "per hour", "false alarms",
                 "end of the word -> event", "TensorFlow's StreamingAccuracyStats", "161 speakers",
                 "per keyword (caught / words):"):
        assert text in printed, text
    m = json.loads(json_file.read_text())
    assert KWS | TF <= set(m)
    s = m["streams"]
    assert s["words"] == 20 and s["keyword_stream_seconds"] == 60.0 and s["noise_seconds"] == 30.0
    assert s["non_keyword_stream_seconds"] == 30.0 and m["non_keyword_words"] == 10
    # the denominator: the stream's keyword words, its non-keyword (_unknown_) words left out
    with open(out / "streaming_test_words.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == s["words"] and 0 < m["keyword_words"] == sum(r["label"] != "_unknown_" for r in rows) < 20
    assert m["keyword_recall"] + m["keyword_wrong"] + m["keyword_missed"] == pytest.approx(100.0, abs=0.01)
    assert m["keyword_recall"] >= 30.0  # the tiny model is weak, but it does find words in the stream
    assert m["false_accepts_per_hour"] == m["false_accepts"] * 120 and m["false_alarms_per_hour"] == m["false_alarms"] * 120
    assert m["false_accepts_per_word"] == pytest.approx(m["false_accepts"] / 10)
    # the delay, by hand: each keyword word's first detection of its own label between its clip start and its
    # speech end + late_ms, minus its speech end; the median over the words caught
    made_rows = [line.split(",") for line in (out / "streaming_test_detections.txt").read_text().splitlines() if line]
    made_by_hand = [(label.strip(), float(ms)) for label, ms in made_rows]
    delays, used = [], set()
    for r in rows:
        start, end = float(r["start_ms"]), float(r["end_ms"])
        hits = [i for i, (label, ms) in enumerate(made_by_hand)
                if label == r["label"] != "_unknown_" and start <= ms <= end + m["late_ms"] and i not in used]
        if hits:
            used.add(hits[0])
            delays.append(made_by_hand[hits[0]][1] - end)
    assert len(delays) == m["keywords_correct"] and m["median_delay_ms"] == pytest.approx(statistics.median(delays), abs=1e-3)
    # the data: the model has no record, so the default is the whole test split of this test-set folder
    assert m["split"]["partition"] == "test" and m["split"]["speakers"] == 161 and not m["split"]["training_record"]
    assert m["threshold_source"].startswith("default 0.7") and set(m["thresholds"].values()) == {0.7}

    # the files: TF's labels, the words with their speech spans, the detections; re-scoring them gives the figures
    truth = read_labels_file(out / "streaming_test_labels.txt")
    words = read_words_file(out / "streaming_test_words.csv")
    assert len(truth) == len(words) == 20 and [w.start_ms for w in words] == [t.time_ms for t in truth]
    assert all(w.start_ms <= w.onset_ms < w.end_ms <= w.start_ms + 1000 for w in words)
    # each clip named as it is in the data folder, not by the absolute path of this machine (issue #21 row 14)
    assert all(not Path(w.clip).is_absolute() and (SC_V2_TEST / w.clip).is_file() for w in words)
    assert (out / "streaming_test.wav").stat().st_size > 60 * 16000 * 2
    made = read_labels_file(out / "streaming_test_detections.txt")  # time of each detection (window end)
    stats = keyword_accuracy(words, made)
    assert round(stats.recall, 3) == m["keyword_recall"] and stats.correct == m["keywords_correct"]
    # per keyword: its words in the stream, and the words caught among them add up to the stream's
    per = m["per_keyword"]
    assert set(per) == {w.label for w in words if w.label != "_unknown_"}
    assert sum(r["words"] for r in per.values()) == m["keyword_words"]
    assert sum(r["recall"] * r["words"] / 100 for r in per.values()) == pytest.approx(m["keywords_correct"], abs=0.01)
    found = [LabelledTime(d.label, window_start_ms(d.time_ms / 1000.0)) for d in made]
    summary = streaming_accuracy(truth, found, 750.0).summary()
    assert {f"tf_{k}": round(v, 3) for k, v in summary.items()} == {k: m[k] for k in TF}
    assert len(read_words_file(out / "non_keyword_words.csv")) == 10
    assert len(read_labels_file(out / "non_keyword_detections.txt")) == m["false_accepts"]

    # the ONNX export: the same streams, every hop scored as PyTorch scores it (1e-4), so the same recall; only an
    # averaged score within 1e-4 of a decision level (threshold 0.7, release 0.35) could flip, by one word
    onnx_json = tmp_path / "onnx.json"
    assert stream_test(tiny_onnx, tmp_path / "onnx", onnx_json) == 0
    onnx_m = json.loads(onnx_json.read_text())
    assert onnx_m["backend"] == "onnx"
    assert (tmp_path / "onnx" / "streaming_test_words.csv").read_text() == (out / "streaming_test_words.csv").read_text()
    wave = load_audio(out / "streaming_test.wav", 16000, None)  # the whole stream, not one clip
    (times, torch_scores), (_, onnx_scores) = (hop_scores(model, wave) for model in (tiny_checkpoint, tiny_onnx))
    assert torch_scores.shape == onnx_scores.shape and np.abs(torch_scores - onnx_scores).max() < 1e-4
    smoothed = smooth_scores(times, torch_scores, DetectorConfig(), list(speech.load(tiny_checkpoint).labels))
    margin = np.abs(smoothed.top_score[smoothed.valid][:, None] - np.array([0.7, 0.35])).min()
    one_word = 100.0 / m["keyword_words"]
    assert onnx_m["keyword_recall"] == m["keyword_recall"] or (
        margin < 1e-4 and abs(onnx_m["keyword_recall"] - m["keyword_recall"]) <= one_word + 1e-3), margin


def hop_scores(model: Path, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every hop's window-end time and scores of ``model`` on ``wave`` (the live engine, fed 0.1 s at a time)."""
    hops = []
    engine = speech.load(model).streamer()
    engine.on_hop = hops.append
    for start in range(0, len(wave), 1600):
        engine.feed(wave[start : start + 1600])
    return np.array([h.time for h in hops]), np.stack([h.scores for h in hops])


def test_negatives_from_other_folders_split_by_speaker_half():
    from speech.data.splits import hash_percentage

    labels = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    everything = negative_clips([SC_V1_SAMPLE], labels, "all")
    a, b = (negative_clips([SC_V1_SAMPLE], labels, half) for half in ("a", "b"))
    assert len(everything.paths) == 197 and not any(f"/{w}/" in p for p in everything.paths for w in labels)
    assert sorted(a.paths + b.paths) == sorted(everything.paths) and not a.speakers & b.speakers
    assert all(hash_percentage(s) < 50 for s in a.speakers) and all(hash_percentage(s) >= 50 for s in b.speakers)
    some = set(sorted(a.speakers)[:3])
    fewer = negative_clips([SC_V1_SAMPLE], labels, "a", training_speakers=some)
    assert not fewer.speakers & some and len(fewer.paths) + fewer.left_out_trained == len(a.paths)
    with pytest.raises(ValueError, match="no non-keyword clips"):  # all of them trained on
        negative_clips([SC_V1_SAMPLE], labels, "a", training_speakers=a.speakers)


def test_default_split_is_held_out_and_training_speakers_are_refused(recorded, tmp_path, capsys):
    json_file = tmp_path / "held.json"
    assert stream_test(recorded, tmp_path / "held", json_file, "--negatives", str(SC_V1_SAMPLE), minutes="0.5") == 0
    m = json.loads(json_file.read_text())
    negatives = m["split"]["negatives"]  # half b of sc-v1-sample's speakers, training speakers left out
    assert negatives["half"] == "b" and negatives["clips"] > 50 and m["streams"]["negative_clips"] == negatives["clips"]
    assert not set(m["split"]["negative_speaker_ids"]) & set(load_scorer(recorded).metadata["data"]["training_speakers"])
    # the record holds a test split, so that is the default; the split is rebuilt from the record
    assert m["split"]["partition"] == "test" and m["split"]["source"] == "model record"
    assert m["split"]["speakers"] == len(held_out_speakers("test")) and m["split"]["clips_of_training_speakers"] == 0
    assert "none of them trained on" in capsys.readouterr().out
    # the training partition is refused with one line and exit 2, and nothing is written
    assert stream_test(recorded, tmp_path / "train", tmp_path / "train.json", "--split", "train", minutes="0.5") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("speech stream-test: error:") and "--allow-trained-speakers" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "train.json").exists() and not (tmp_path / "train").exists()
    # ... unless allowed, and then the output says so
    assert stream_test(recorded, tmp_path / "train", tmp_path / "train.json", "--split", "train",
                       "--allow-trained-speakers", "--unknown-minutes", "0", minutes="0.25") == 0
    assert "WARNING" in capsys.readouterr().out
    m = json.loads((tmp_path / "train.json").read_text())
    assert m["split"]["clips_of_training_speakers"] > 0 and m["false_accepts_per_hour"] is None


def test_sweep_writes_curve_and_csv(tiny_checkpoint, tmp_path, capsys):
    json_file = tmp_path / "sweep.json"
    assert stream_test(tiny_checkpoint, tmp_path / "sweep", json_file, "--sweep", minutes="0.5") == 0
    m = json.loads(json_file.read_text())
    assert len(m["sweep"]) == 70 and m["sweep"][0]["threshold"] == 0.3 and m["sweep"][-1]["threshold"] == 0.99
    # each point of the sweep is what a run at that threshold reports: the run's own 0.7, and a run at a threshold
    # whose row differs from both neighbours' (so a sweep off by one step could not pass)
    rows = m["sweep"]

    def figures(row: dict) -> dict:
        return {k: v for k, v in row.items() if k != "threshold"}

    apart = [rows[i]["threshold"] for i in range(1, len(rows) - 1)
             if figures(rows[i - 1]) != figures(rows[i]) != figures(rows[i + 1]) and rows[i]["threshold"] != 0.7]
    assert apart, "a sweep whose figures never change from one threshold to the next"
    for threshold, run in ((0.7, m), (apart[0], None)):
        if run is None:
            assert stream_test(tiny_checkpoint, tmp_path / "at", tmp_path / "at.json", "--threshold", str(threshold),
                               minutes="0.5") == 0
            run = json.loads((tmp_path / "at.json").read_text())
            assert set(run["thresholds"].values()) == {threshold}
        row = dict(next(r for r in m["sweep"] if r["threshold"] == threshold))
        assert row.pop("per_keyword_recall") == {k: v["recall"] for k, v in run["per_keyword"].items()}
        assert row == {"threshold": threshold, **{k: run[k] for k in row if k != "threshold"}}, (row, threshold)
    with open(tmp_path / "sweep" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 70 and float(rows[40]["threshold"]) == 0.7
    assert [float(r["keyword_recall"]) for r in rows] == pytest.approx([r["keyword_recall"] for r in m["sweep"]], abs=1e-3)
    png = (tmp_path / "sweep" / "det_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "threshold sweep" in capsys.readouterr().out


def test_stream_test_refuses_to_overwrite_and_reports_bad_data(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "streaming_test.wav").write_bytes(b"earlier result")
    assert stream_test(tiny_checkpoint, out, tmp_path / "m.json") == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "streaming_test.wav").read_bytes() == b"earlier result"
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    assert stream_test(tiny_checkpoint, tmp_path / "new", existing) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and existing.read_text() == "{}"
    empty = tmp_path / "empty-data"
    empty.mkdir()
    code = main(["stream-test", str(tiny_checkpoint), "--data", str(empty), "--minutes", "0.1", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "speech stream-test: error:" in err and str(empty) in err
    assert main(["stream-test", str(tiny_checkpoint), "--data", str(SC_V2_TEST), "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
