"""Threshold sweeps and per-keyword calibration on hand-made score streams (no model), and calibrated thresholds
stored in and read back from .ckpt and .onnx files (export keeps them)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from speech.evaluation.streams.build import JOIN_GAP_S, ScoredStream, StreamSet, join_stream_sets
from speech.evaluation.streams.figures import StreamFigures, figures, sweep
from speech.evaluation.streams.fitting import (
    KeywordTable,
    calibrate,
    choose_thresholds,
    detection_section,
    pooled_false_accepts,
    store_detection,
    table_rows,
)
from speech.evaluation.streams.matching import Word
from speech.streaming.detection import DetectorConfig, threshold_config
from speech.streaming.engine import StreamingConfig
from speech.streaming.thresholds import (
    NEVER,
    calibrated_keyword_share,
    calibrated_thresholds,
    check_keyword_share,
    detector_from_metadata,
    settings_mismatch,
)

LABELS = ["_silence_", "_unknown_", "yes", "no", "up"]
HOP = 0.1
ONE_SPEED = {"average_window_ms": 500.0, "quick_average_ms": None}  # TensorFlow's averaging: the streams below are made for it


def one_speed(**kw) -> StreamingConfig:
    return StreamingConfig(detector=DetectorConfig(**ONE_SPEED), **kw)


def scored(name: str, seconds: float, bumps: list[tuple[str, float, float]], words: list[Word]) -> ScoredStream:
    """A stored score stream: ``_silence_`` everywhere except ``bumps`` (label, start s, peak): 6 hops of
    ``peak`` on the label (the rest on ``_unknown_``)."""
    times = np.round(np.arange(1.0, seconds + 1e-9, HOP), 3)
    scores = np.zeros((times.size, len(LABELS)), np.float32)
    scores[:, 0] = 1.0
    for label, start, peak in bumps:
        rows = (times >= start - 1e-9) & (times < start + 0.6 - 1e-9)
        scores[rows] = 0.0
        scores[rows, LABELS.index(label)] = peak
        scores[rows, 1] += 1.0 - peak
    return ScoredStream(name, seconds, words, times, scores)


def hand_made_streams() -> StreamSet:
    """Keyword words with known peak scores, non-keyword words that look like keywords, and noise.

    keyword stream: yes x4 (peaks 0.955, 0.905, 0.805, 0.625), no x3 (0.855, 0.755, 0.555), up x2 (0.905,
    0.505), one "no" heard as "up" at 0.805; the non-keyword stream (30 words, 90 s): "yes"-like bumps at 0.705
    and 0.605 and an "up"-like one at 0.855; noise (60 s): an "up" bump at 0.605. A bump's averaged score peaks
    at its peak (6 hops = the 500 ms averaging window).
    """
    plan = [("yes", 0.955), ("no", 0.855), ("up", 0.905), ("yes", 0.905), ("no", 0.755), ("yes", 0.805),
            ("up", 0.505), ("no", 0.555), ("yes", 0.625), ("no", ("up", 0.805))]
    words, bumps = [], []
    for i, (label, peak) in enumerate(plan):
        start = 2.0 + 3.0 * i
        words.append(Word(label, 1000 * start, 1000 * start + 200, 1000 * start + 600))
        heard, p = peak if isinstance(peak, tuple) else (label, peak)
        bumps.append((heard, start + 0.5, p))
    keywords = scored("keywords", 33.0, bumps, words)
    unknown_words = [Word("_unknown_", 3000.0 * i, 3000.0 * i + 200, 3000.0 * i + 600) for i in range(30)]
    others = scored("non_keywords", 90.0, [("yes", 6.5, 0.705), ("yes", 30.5, 0.605), ("up", 60.5, 0.855)],
                    unknown_words)
    noise = scored("noise", 60.0, [("up", 20.0, 0.605)], [])
    return StreamSet(keywords, others, noise)


def test_sweep_is_monotone_and_each_row_is_a_threshold_run():
    streams = hand_made_streams()
    base = DetectorConfig(**ONE_SPEED)
    rows = sweep(streams, LABELS, base)
    assert [r["threshold"] for r in rows] == sorted(r["threshold"] for r in rows) and len(rows) == 70
    recall = [r["keyword_recall"] for r in rows]
    accepts = [r["false_accepts_per_hour"] for r in rows]
    alarms = [r["false_alarms_per_hour"] for r in rows]
    for series in (recall, accepts, alarms):
        assert all(a >= b for a, b in zip(series, series[1:], strict=False)), series  # never rises with the threshold
    # the ends of the curve: at 0.30 everything but the misheard "no" is found, at 0.99 nothing
    assert rows[0]["keyword_recall"] == 90.0 and rows[0]["keyword_wrong"] == 10.0
    assert rows[0]["false_accepts_per_hour"] == 3 * 3600 / 90 and rows[0]["false_alarms_per_hour"] == 60.0
    assert rows[-1]["keyword_recall"] == 0.0 and rows[-1]["false_accepts_per_hour"] == 0.0
    # a row is exactly what --threshold T gives
    for row in rows[::17]:
        f = figures(streams, LABELS, threshold_config(base, row["threshold"]))
        assert f.keyword_recall == row["keyword_recall"] and f.false_accepts_per_hour == row["false_accepts_per_hour"]
    # at 0.7: the words whose peak is above 0.7 are found, and two non-keyword look-alikes
    at_07 = next(r for r in rows if r["threshold"] == 0.7)
    assert at_07["keyword_recall"] == 60.0 and at_07["false_accepts_per_hour"] == 80.0


def test_calibration_picks_per_keyword_thresholds_for_the_target():
    streams = hand_made_streams()
    base = DetectorConfig(**ONE_SPEED)
    # 90 s of non-keyword speech: a target of 1 per hour allows no false accept there, nor on the noise
    result = calibrate(streams, LABELS, base, target_false_accepts_per_hour=1.0, target_false_alarms_per_hour=0.5)
    assert result.budgets == {"false_accepts": 0, "false_alarms": 0}
    t = result.thresholds
    # yes: between its 0.705 look-alike and its 0.805 word (0.71 .. 0.80 find the same 3 words): the middle
    assert t["yes"] == 0.76
    # no: nothing to avoid, so the middle of 0.50 (the lowest allowed) .. 0.55, where all three are found
    assert t["no"] == 0.53
    # up: above its 0.855 look-alike, below its 0.905 word; its 0.505 word would cost that false accept
    assert t["up"] == 0.88
    f = figures(streams, LABELS, replace(base, thresholds=t))
    assert (f.false_accepts, f.false_alarms, f.keyword_wrong) == (0, 0, 0.0)
    assert f.keyword_recall == 70.0  # yes 3 of 4, no 3 of 4 (the one heard as "up" is missed), up 1 of 2
    assert f.per_keyword == {"no": {"words": 4, "recall": 75.0, "wrong": 0.0},
                             "up": {"words": 2, "recall": 50.0, "wrong": 0.0},
                             "yes": {"words": 4, "recall": 75.0, "wrong": 0.0}}
    # a looser target allows one false accept in the 90 s: "yes" spends it on its 0.625 word; "up" cannot go
    # below its 0.605 false alarm on noise, which has no budget
    loose = calibrate(streams, LABELS, base, target_false_accepts_per_hour=40.0)
    assert loose.budgets == {"false_accepts": 1, "false_alarms": 0}
    assert loose.thresholds == {"yes": 0.62, "no": 0.53, "up": 0.88}
    # without the 0.5 floor "no" sinks to the middle of 0.30 .. 0.55
    assert calibrate(streams, LABELS, base, min_threshold=0.3).thresholds["no"] == 0.43
    with pytest.raises(ValueError, match="non-keyword"):
        calibrate(StreamSet(streams.keywords, None, streams.noise), LABELS, base)


def test_joined_streams_replay_each_part_and_calibrate_on_the_words_of_all():
    """Streams of several folders' held-out speakers (``speech calibrate --data A --data B``) are played one after
    the other: each part's detections come back at its offset, the counts add up, and the thresholds rest on all
    the words."""
    first = hand_made_streams()
    words = [Word("yes", 1000 * start, 1000 * start + 200, 1000 * start + 600) for start in (2.0, 5.0)]
    # another folder: two "yes" words at 0.735 (above the first folder's 0.705 look-alike), no non-keyword stream
    second = StreamSet(scored("keywords", 9.0, [("yes", 2.5, 0.735), ("yes", 5.5, 0.735)], words), None,
                       scored("noise", 30.0, [], []))
    joined = join_stream_sets([first, second])
    offset = first.keywords.seconds + JOIN_GAP_S
    assert joined.keywords.seconds == pytest.approx(offset + second.keywords.seconds)
    assert len(joined.keywords.words) == len(first.keywords.words) + 2
    base = DetectorConfig(**ONE_SPEED)
    for t in (0.6, 0.8):
        config = threshold_config(base, t)
        one, two = (part.keywords.detections(LABELS, config) for part in (first, second))
        both = joined.keywords.detections(LABELS, config)
        assert [(d.label, round(d.time, 6)) for d in both] == [(d.label, round(d.time, 6)) for d in one] + [
            (d.label, round(d.time + offset, 6)) for d in two]
        f1, f2, f = (figures(s, LABELS, config) for s in (first, second, joined))
        assert f.keywords_correct == f1.keywords_correct + f2.keywords_correct
        assert f.false_accepts == f1.false_accepts and f.keyword_words == f1.keyword_words + 2
    # the same streams twice: every count doubles and the thresholds stay; the other folder's words move "yes"
    # from the middle of 0.71 .. 0.80 (where the first folder's 3 words are found) to that of 0.71 .. 0.73
    twice = join_stream_sets([first, hand_made_streams()])
    assert calibrate(twice, LABELS, base).thresholds == calibrate(first, LABELS, base).thresholds
    assert calibrate(joined, LABELS, base).thresholds == {**calibrate(first, LABELS, base).thresholds, "yes": 0.72}


def test_a_keyword_the_targets_cannot_fit_gets_its_best_threshold_and_a_warning():
    """Never silently disabled (issue #21, row 1): 'no' has a non-keyword look-alike above every one of its words,
    so no threshold meets a target of 0 false accepts; the greedy step leaves it at NEVER ("never"), and the
    calibration gives it the threshold that finds its words at the fewest false accepts instead, and names it."""
    streams = hand_made_streams()
    loud = scored("non_keywords", 90.0, [("yes", 6.5, 0.705), ("yes", 30.5, 0.605), ("up", 60.5, 0.855),
                                         ("no", 45.5, 0.965)], streams.non_keywords.words)
    streams = StreamSet(streams.keywords, loud, streams.noise)
    base = DetectorConfig(**ONE_SPEED)
    result = calibrate(streams, LABELS, base, target_false_accepts_per_hour=1.0)
    tables = {table.keyword: table for table in result.tables}
    assert choose_thresholds(list(tables.values()), 0, 0)["no"] == NEVER  # what used to be stored
    # one false accept at every threshold below 0.96: all three "no" words at 0.50 .. 0.55, the middle of that
    assert result.thresholds == {"yes": 0.76, "no": 0.53, "up": 0.88} and result.over_target == ["no"]
    f = figures(streams, LABELS, replace(base, thresholds=result.thresholds))
    assert f.false_accepts == 1  # the price, stated rather than hidden
    section = detection_section(result, one_speed(), calibrated_on={}, figures_on_calibration={})
    assert section["over_target"] == ["no"]
    _, what = detector_from_metadata({"detection": section}, base)
    assert "WARNING: no threshold met the targets for no" in what
    assert [row["meets_target"] for row in table_rows(result)] == [True, False, True]


def test_choose_thresholds_greedy_on_hand_made_tables():
    grid = [NEVER, 0.9, 0.8, 0.7, 0.6]
    a = KeywordTable("a", grid, correct=[0, 2, 4, 5, 6], wrong=[0, 0, 0, 0, 2], false_accepts=[0, 0, 0, 1, 1],
                     false_alarms=[0] * 5)
    b = KeywordTable("b", grid, correct=[0, 1, 1, 1, 3], wrong=[0] * 5, false_accepts=[0, 0, 0, 0, 1],
                     false_alarms=[0] * 5)
    c = KeywordTable("c", grid, correct=[0] * 5, wrong=[0, 1, 1, 1, 1], false_accepts=[0] * 5, false_alarms=[0] * 5)
    # no budget: a stops before its first false accept; b sits in the middle of its equal counts; c never fires
    assert choose_thresholds([a, b, c], 0, 0) == {"a": 0.8, "b": 0.8, "c": NEVER}
    # one false accept allowed: b's +2 for it beats a's +1 for it
    assert choose_thresholds([a, b, c], 1, 0) == {"a": 0.8, "b": 0.6, "c": NEVER}
    # wrong detections can outweigh correct ones
    assert choose_thresholds([a], 5, 0, wrong_weight=1.0)["a"] == 0.7
    assert choose_thresholds([a], 5, 0, wrong_weight=0.1)["a"] == 0.6


def test_pooling_keeps_a_keyword_that_caused_no_false_accept_from_sinking():
    """A keyword with no false accept in the calibration speech ("b") would sink to the bottom of the grid; shrunk
    towards the keywords' mean count there, its low thresholds cost what the others pay, and the budget stops it."""
    grid = [NEVER, 0.9, 0.8, 0.7, 0.6]
    a = KeywordTable("a", grid, correct=[0, 2, 3, 4, 5], wrong=[0] * 5, false_accepts=[0, 0, 1, 2, 4],
                     false_alarms=[0] * 5)
    b = KeywordTable("b", grid, correct=[0, 2, 3, 4, 5], wrong=[0] * 5, false_accepts=[0] * 5, false_alarms=[0] * 5)
    pooled = {t.keyword: t.false_accepts for t in pooled_false_accepts([a, b], 1.0)}
    assert pooled == {"a": [0, 0, 0.75, 1.5, 3.0], "b": [0, 0, 0.25, 0.5, 1.0]}  # (own + mean) / 2
    # own counts: b falls to the bottom for free and a spends the budget too; pooled, that costs 0.75 + 1.0
    assert choose_thresholds([a, b], 1, 0) == {"a": 0.8, "b": 0.6}
    # pooled, b's drop to 0.6 costs 1.0, the whole budget: a stays above its first false accept
    assert choose_thresholds(pooled_false_accepts([a, b], 1.0), 1, 0) == {"a": 0.9, "b": 0.6}
    assert pooled_false_accepts([a, b], 0.0)[1].false_accepts == b.false_accepts
    with pytest.raises(ValueError, match="pooling must be >= 0"):
        calibrate(hand_made_streams(), LABELS, DetectorConfig(**ONE_SPEED), pooling=-1.0)


@pytest.fixture(scope="module")
def section() -> dict:
    config = one_speed()
    result = calibrate(hand_made_streams(), LABELS, config.detector, target_false_accepts_per_hour=1.0)
    return detection_section(result, config, calibrated_on={"root": "/data", "partition": "validation",
                                                           "speaker_ids": ["a1", "b2"]},
                             figures_on_calibration={"keyword_recall": 60.0})


def test_section_and_detector_from_metadata(section):
    assert json.loads(json.dumps(section)) == section  # plain data
    assert section["thresholds"] == {"yes": 0.76, "no": 0.53, "up": 0.88}
    assert section["figures_on_calibration_streams"] == {"keyword_recall": 60.0}
    assert calibrated_thresholds({"detection": section}) == section["thresholds"]
    assert calibrated_thresholds({}) is None and calibrated_thresholds({"detection": {"thresholds": "x"}}) is None
    base = DetectorConfig(**ONE_SPEED)
    used, source = detector_from_metadata({"detection": section}, base)
    assert used.thresholds == section["thresholds"] and "calibrated per keyword" in source
    assert used.threshold_for("yes") == 0.76 and used.threshold_for("_unknown_") == 0.7
    forced, source = detector_from_metadata({"detection": section}, base, threshold=0.6)
    assert forced.thresholds is None and forced.threshold == 0.6 and source == "--threshold 0.6"
    plain, source = detector_from_metadata({}, base)
    assert plain is base and source.startswith("default 0.7")
    assert settings_mismatch({"detection": section}, one_speed()) == []
    assert settings_mismatch({"detection": section}, one_speed(hop_ms=50.0)) == ["hop_ms 50.0 (calibrated with 100.0)"]
    # the default detector has two speeds: thresholds fitted on one are flagged, also those stored before the
    # quick settings existed (they were fitted without a quick window)
    # (quick_threshold only applies with a quick window: not named again)
    two = ["average_window_ms 1000.0 (calibrated with 500.0)", "quick_average_ms 300.0 (calibrated with None)"]
    assert sorted(settings_mismatch({"detection": section}, StreamingConfig())) == two
    older = {k: v for k, v in section["settings"].items() if not k.startswith("quick")}
    assert sorted(settings_mismatch({"detection": {**section, "settings": older}}, StreamingConfig())) == two
    # thresholds fitted before the talk rule (or with it off) are flagged once, its span not named again
    before_talk = {k: v for k, v in section["settings"].items() if not k.startswith("talk")}
    assert settings_mismatch({"detection": {**section, "settings": before_talk}}, one_speed()) == [
        "talk_before 0.5 (calibrated with None)"]
    assert settings_mismatch({"detection": section}, StreamingConfig(detector=DetectorConfig(**ONE_SPEED, talk_before=0.7))) == [
        "talk_before 0.7 (calibrated with 0.5)"]
    # a quick window changed but still on: its level still matters, so both are named
    two_speeds = {**section, "settings": {**section["settings"], "quick_average_ms": 300.0, "quick_threshold": 0.9}}
    changed = StreamingConfig(detector=DetectorConfig(average_window_ms=500.0, quick_average_ms=200.0, quick_threshold=0.8))
    assert settings_mismatch({"detection": two_speeds}, changed) == [
        "quick_average_ms 200.0 (calibrated with 300.0)", "quick_threshold 0.8 (calibrated with 0.9)"]


def test_calibrated_thresholds_bring_the_keyword_share_they_were_fitted_with():
    """Thresholds hold for the scores they were fitted on: calibrating with keyword_share 0.6 stores it, and the
    stored thresholds bring it back; thresholds from before the setting bring "off"; a --keyword-share that
    differs from the stored one is refused unless --threshold replaces the thresholds."""
    config = StreamingConfig(detector=DetectorConfig(**ONE_SPEED, keyword_share=0.6))
    result = calibrate(hand_made_streams(), LABELS, config.detector, target_false_accepts_per_hour=1.0)
    section = detection_section(result, config, calibrated_on={}, figures_on_calibration={})
    assert section["settings"]["keyword_share"] == 0.6
    metadata = {"detection": section}
    used, _ = detector_from_metadata(metadata, DetectorConfig(**ONE_SPEED, keyword_share=None))
    assert used.keyword_share == 0.6 and calibrated_keyword_share(metadata) == 0.6
    forced, _ = detector_from_metadata(metadata, DetectorConfig(**ONE_SPEED, keyword_share=None), threshold=0.7)
    assert forced.keyword_share is None  # the user's one threshold, with the user's scores
    old = {"detection": {**section, "settings": {"hop_ms": 100.0}}}
    assert detector_from_metadata(old, DetectorConfig(**ONE_SPEED, keyword_share=0.6))[0].keyword_share is None
    check_keyword_share(metadata, 0.6, None)
    check_keyword_share(metadata, None, 0.7)
    check_keyword_share({}, 0.8, None)  # nothing calibrated: any share
    with pytest.raises(ValueError, match="fitted with keyword share 0.6"):
        check_keyword_share(metadata, 0.8, None)
    with pytest.raises(ValueError, match="fitted with keyword share off"):
        check_keyword_share(old, 0.6, None)


def test_thresholds_stored_in_ckpt_and_onnx_and_kept_by_export(tiny_checkpoint, tmp_path, section):
    from speech.model.model_file import read_checkpoint
    from speech.runtime.export import export_onnx
    from speech.runtime.scorers import load_scorer

    before = tiny_checkpoint.read_bytes()
    out = store_detection(tiny_checkpoint, section, out=tmp_path / "calibrated.ckpt")
    assert tiny_checkpoint.read_bytes() == before  # the user's file is untouched
    assert load_scorer(out).metadata["detection"] == section
    assert read_checkpoint(out)["state_dict"].keys() == read_checkpoint(tiny_checkpoint)["state_dict"].keys()
    # export copies the section into the ONNX metadata
    onnx_path = export_onnx(out, tmp_path / "calibrated.onnx")
    assert load_scorer(onnx_path).metadata["detection"] == section
    # thresholds can be written into an ONNX file too, and replaced in place (atomically, nothing left behind)
    plain_onnx = export_onnx(tiny_checkpoint, tmp_path / "plain.onnx")
    assert "detection" not in load_scorer(plain_onnx).metadata
    newer = {**section, "thresholds": {"yes": 0.5, "no": 0.5, "up": 0.5}}
    store_detection(plain_onnx, newer, in_place=True)
    scorer = load_scorer(plain_onnx)
    assert scorer.metadata["detection"]["thresholds"] == newer["thresholds"] and scorer.labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibrated.ckpt", "calibrated.onnx", "plain.onnx"]
    # refusals: an existing output, both or neither destination, another kind of file
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        store_detection(tiny_checkpoint, section, out=out)
    with pytest.raises(ValueError, match="either"):
        store_detection(tiny_checkpoint, section)
    with pytest.raises(ValueError, match="either"):
        store_detection(tiny_checkpoint, section, out=tmp_path / "x.ckpt", in_place=True)
    with pytest.raises(ValueError, match=r"\.ckpt file"):
        store_detection(tiny_checkpoint, section, out=tmp_path / "x.onnx")
    assert not (tmp_path / "x.ckpt").exists() and not (tmp_path / "x.onnx").exists()


REPORT_KEYS = ["keyword_recall", "keyword_wrong", "keyword_missed", "median_delay_ms", "p90_delay_ms", "keyword_words",
               "keywords_correct", "keywords_wrong", "detections", "extra_detections",
               "false_accepts_in_keyword_stream", "false_alarms_in_keyword_stream", "false_accepts",
               "false_accepts_per_hour", "false_accepts_per_word", "non_keyword_words", "false_accept_distinct_clips",
               "false_accept_clips", "false_alarms", "false_alarms_per_hour", "tf_matched", "tf_correct", "tf_wrong",
               "tf_false_positive", "per_keyword"]  # the stream-test report's figure keys, in their order: a
# user-visible contract (per_keyword was added later, at the end)


def test_stream_figures_to_json_keeps_the_report_keys_and_reads_back():
    streams = hand_made_streams()
    f = figures(streams, LABELS, DetectorConfig(**ONE_SPEED))
    report = f.to_json()
    assert list(report) == REPORT_KEYS
    assert json.loads(json.dumps(report)) == report  # plain data
    assert (report["keyword_recall"], report["false_accepts"], report["false_alarms"]) == (60.0, 2, 0)
    assert report["false_accepts_per_hour"] == 80.0 and report["non_keyword_words"] == 30
    assert report["false_accept_clips"] == [{"clip": "", "as": "yes", "times": 1}, {"clip": "", "as": "up", "times": 1}]
    assert StreamFigures.from_json({**report, "model": "m.onnx"}).to_json() == report  # other report keys ignored
    older = {k: v for k, v in report.items() if k != "per_keyword"}  # a report written before per_keyword
    assert StreamFigures.from_json(older).per_keyword == {}
    assert f.to_json(digits=1)["false_accepts_per_word"] == round(f.false_accepts_per_word, 1)
    # no non-keyword stream: its figures are None / 0 / [] (as the reports have always written them)
    alone = figures(StreamSet(streams.keywords, None, streams.noise), LABELS, DetectorConfig(**ONE_SPEED)).to_json()
    assert [alone[k] for k in ("false_accepts", "false_accepts_per_hour", "non_keyword_words", "false_accept_clips")] \
        == [None, None, 0, []]
