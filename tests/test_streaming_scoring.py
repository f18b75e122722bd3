"""Stream-test scoring on a hand-made labels file and hand-made detections (pure functions, no audio)."""

from __future__ import annotations

import numpy as np
import pytest

from speech.evaluation.streams.matching import (
    LabelledTime,
    Word,
    false_accepts,
    false_alarms_per_hour,
    keyword_accuracy,
    median_delay_ms,
    per_hour,
    read_labels_file,
    read_words_file,
    streaming_accuracy,
    window_start_ms,
    write_labels_file,
    write_words_file,
)

# TF's generate_streaming_test_wav writes "label, time_ms" with %f
HAND_MADE = """yes, 1000.000000
no, 4000.000000
_unknown_, 7000.000000

up, 10000.000000
left, 13000.000000
"""


@pytest.fixture
def truth(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text(HAND_MADE)
    return read_labels_file(path)


def test_read_labels_file(truth):
    assert truth == [
        LabelledTime("yes", 1000.0),
        LabelledTime("no", 4000.0),
        LabelledTime("_unknown_", 7000.0),
        LabelledTime("up", 10000.0),
        LabelledTime("left", 13000.0),
    ]


def test_hand_made_case(truth):
    found = [
        LabelledTime("yes", 1200.0),  # yes@1000: correct
        LabelledTime("yes", 1600.0),  # first word in reach is yes@1000, already matched: wrong
        LabelledTime("up", 4300.0),  # no@4000 is there: wrong label
        LabelledTime("left", 7100.0),  # a keyword fired on an _unknown_ word: wrong
        LabelledTime("left", 12300.0),  # left@13000, 700 ms away: correct
        LabelledTime("down", 20000.0),  # nothing within 750 ms: false positive
    ]  # up@10000 is missed
    stats = streaming_accuracy(truth, found, tolerance_ms=750)
    assert (stats.words, stats.correct, stats.wrong, stats.false_positive, stats.matched) == (5, 2, 3, 1, 4)
    assert stats.summary() == {"matched": 80.0, "correct": 40.0, "wrong": 60.0, "false_positive": 20.0}
    assert stats.pairs == [(0, 0, True), (1, 0, False), (2, 1, False), (3, 2, False), (4, 4, True)]


def test_tolerance_boundary_and_order(truth):
    edge = streaming_accuracy(truth, [LabelledTime("left", 13750.0)], 750)
    assert (edge.correct, edge.false_positive) == (1, 0)  # exactly 750 ms away still matches
    past = streaming_accuracy(truth, [LabelledTime("left", 13750.5)], 750)
    assert (past.correct, past.false_positive) == (0, 1)
    # detections are taken in time order whatever order they are given in
    shuffled = streaming_accuracy(truth, [LabelledTime("yes", 1600.0), LabelledTime("yes", 1200.0)], 750)
    assert (shuffled.correct, shuffled.wrong) == (1, 1)
    assert shuffled.pairs == [(1, 0, True), (0, 0, False)]


def test_no_detections_and_no_words(truth):
    stats = streaming_accuracy(truth, [], 750)
    assert stats.summary() == {"matched": 0.0, "correct": 0.0, "wrong": 0.0, "false_positive": 0.0}
    empty = streaming_accuracy([], [LabelledTime("yes", 0.0)], 750)
    assert empty.false_positive == 1 and empty.summary()["false_positive"] == 0.0


def tf_calculate_accuracy_stats(gt, found_words, tolerance):
    """TensorFlow's StreamingAccuracyStats.calculate_accuracy_stats (up_to_time_ms=-1), restated as an oracle."""
    gt = sorted(gt, key=lambda item: item[1])
    fp = c = w = 0
    has_gt_matched = []
    for label, t in found_words:
        matched = False
        for gt_label, gt_time in gt:
            if gt_time > t + tolerance:
                break
            if gt_time < t - tolerance:
                continue
            if gt_label == label and has_gt_matched.count(gt_time) == 0:
                c += 1
            else:
                w += 1
            has_gt_matched.append(gt_time)
            matched = True
            break
        if not matched:
            fp += 1
    return c, w, fp, len(set(has_gt_matched))


@pytest.mark.parametrize("seed", range(4))
def test_matches_tensorflow_on_random_streams(seed):
    rng = np.random.default_rng(seed)
    labels = ["yes", "no", "up", "_unknown_"]
    gt = [(labels[rng.integers(4)], float(i * 3000 + rng.integers(2000))) for i in range(60)]
    found = sorted(((labels[rng.integers(3)], float(rng.uniform(0, 180_000))) for _ in range(50)), key=lambda f: f[1])
    found += [(label, t + rng.normal(0, 400)) for label, t in gt if rng.random() < 0.6]
    found.sort(key=lambda f: f[1])
    stats = streaming_accuracy([LabelledTime(*g) for g in gt], [LabelledTime(*f) for f in found], 750)
    assert (stats.correct, stats.wrong, stats.false_positive, stats.matched) == tf_calculate_accuracy_stats(gt, found, 750)
    assert stats.correct > 0 and stats.wrong > 0 and stats.false_positive > 0


def test_write_then_read_round_trip_and_refuses_overwrite(tmp_path, truth):
    path = tmp_path / "out.txt"
    write_labels_file(path, truth)
    assert path.read_text().splitlines()[0] == "yes, 1000.000000"
    assert read_labels_file(path) == truth
    with pytest.raises(FileExistsError):
        write_labels_file(path, truth)


def test_malformed_labels_file_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("yes, 1000\nno 2000\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: expected 'label, time_ms'"):
        read_labels_file(path)


def test_delay_window_start_and_false_alarms(truth):
    assert window_start_ms(2.5, 1.0) == 1500.0
    found = [LabelledTime("yes", 1200.0), LabelledTime("no", 4100.0), LabelledTime("up", 10200.0)]
    stats = streaming_accuracy(truth, found, 750)
    detection_ms = [2200.0, 5300.0, 11000.0]  # when each detection was made
    onsets = [1300.0, 4400.0, 7200.0, 10300.0, 13250.0]
    assert median_delay_ms(stats, detection_ms, onsets) == 900.0  # delays 900, 900, 700
    assert median_delay_ms(streaming_accuracy(truth, [], 750), [], onsets) is None
    assert false_alarms_per_hour(3, 600.0) == 18.0
    with pytest.raises(ValueError):
        false_alarms_per_hour(1, 0.0)


# --- keyword-spotting figures on a hand-made words file -------------------------------------------------------

# label, clip start, speech onset, speech end (ms), clip: a word every 3 s, two of them non-keywords
HAND_MADE_WORDS = """label,start_ms,onset_ms,end_ms,clip
yes,1000,1300,1800,yes/a.wav
no,4000,4250,4700,no/b.wav
_unknown_,7000,7300,7900,_unknown_/bed_c.wav
up,10000,10200,10600,up/d.wav
left,13000,13400,13900,left/e.wav
_unknown_,16000,16200,16800,_unknown_/tree_f.wav
stop,19000,19300,19800,stop/g.wav
"""


@pytest.fixture
def words(tmp_path):
    path = tmp_path / "words.csv"
    path.write_text(HAND_MADE_WORDS)
    return read_words_file(path)


def test_words_file_round_trip_and_errors(tmp_path, words):
    assert words[0] == Word("yes", 1000.0, 1300.0, 1800.0, "yes/a.wav") and len(words) == 7
    copy = tmp_path / "copy.csv"
    write_words_file(copy, words)
    assert read_words_file(copy) == words
    with pytest.raises(FileExistsError):
        write_words_file(copy, words)
    bad = tmp_path / "bad.csv"
    bad.write_text("label,start_ms,onset_ms,end_ms\nyes,1000,900,1800\n")  # onset before the clip starts
    with pytest.raises(ValueError, match=r"bad\.csv:2"):
        read_words_file(bad)
    (tmp_path / "cols.csv").write_text("label,time_ms\nyes,1000\n")
    with pytest.raises(ValueError, match="missing"):
        read_words_file(tmp_path / "cols.csv")


def test_keyword_recall_wrong_and_delay_count_keyword_words_only(words):
    found = [
        LabelledTime("yes", 2000.0),  # yes: correct, 200 ms after its end
        LabelledTime("yes", 2300.0),  # yes again: an extra detection of a word already detected
        LabelledTime("up", 4900.0),  # no -> up: wrong
        LabelledTime("left", 8100.0),  # on a non-keyword word: a false accept
        # up@10000 is missed
        LabelledTime("left", 14250.0),  # left: correct, 350 ms after its end
        LabelledTime("stop", 19700.0),  # stop: correct, 100 ms before its speech ends (the model was early)
        LabelledTime("go", 25000.0),  # near no word: a false alarm
    ]
    stats = keyword_accuracy(words, found, late_ms=1000.0)
    assert (stats.keyword_words, stats.correct, stats.wrong, stats.missed) == (5, 3, 1, 1)
    assert (stats.unknown_words, stats.unknown_accepted, stats.false_accepts) == (2, 1, 1)
    assert (stats.false_alarms, stats.extra) == (1, 1)
    assert stats.recall == 60.0 and stats.wrong_percent == 20.0 and stats.missed_percent == 20.0
    assert stats.delays_ms == [200.0, 350.0, -100.0] and stats.median_delay_ms == 200.0
    assert stats.outcomes == ["correct", "wrong", "accepted", "missed", "correct", "rejected", "correct"]
    assert stats.assigned == [0, 0, 1, 2, 4, 6, None]
    # TF's percentages of the same detections count all 7 words, non-keywords included
    tf = streaming_accuracy([LabelledTime(w.label, w.start_ms) for w in words],
                            [LabelledTime(d.label, window_start_ms(d.time_ms / 1000.0)) for d in found], 750)
    assert tf.summary()["correct"] == pytest.approx(100 * 3 / 7)


def test_late_limit_and_overlapping_spans(words):
    # 1000 ms after the end of "yes" still belongs to it; 1 ms later it is a false alarm
    assert keyword_accuracy(words, [LabelledTime("yes", 2800.0)]).correct == 1
    late = keyword_accuracy(words, [LabelledTime("yes", 2801.0)])
    assert (late.correct, late.false_alarms) == (0, 1)
    assert keyword_accuracy(words, [LabelledTime("yes", 2801.0)], late_ms=1500.0).correct == 1
    # a detection inside two spans goes to a word of its own label not yet detected, else to the later word
    close = [Word("yes", 0.0, 200.0, 700.0), Word("no", 1000.0, 1100.0, 1500.0)]
    assert keyword_accuracy(close, [LabelledTime("yes", 1200.0)]).outcomes == ["correct", "missed"]
    both = keyword_accuracy(close, [LabelledTime("yes", 900.0), LabelledTime("yes", 1200.0)])
    assert both.outcomes == ["correct", "wrong"] and both.extra == 0
    # detections are taken in time order whatever order they come in
    assert keyword_accuracy(close, [LabelledTime("no", 1600.0), LabelledTime("yes", 800.0)]).correct == 2


def test_no_words_no_detections_and_false_accepts_per_hour_and_word(words):
    empty = keyword_accuracy(words, [])
    assert (empty.correct, empty.missed, empty.recall, empty.median_delay_ms) == (0, 5, 0.0, None)
    nothing = keyword_accuracy([], [LabelledTime("yes", 100.0)])
    assert (nothing.keyword_words, nothing.recall, nothing.false_alarms) == (0, 0.0, 1)
    fa = false_accepts(3, 200, 600.0)  # 3 detections on 200 non-keyword words in 10 minutes
    assert fa.per_hour == 18.0 and fa.per_word == 0.015
    assert false_accepts(0, 0, 60.0).per_word == 0.0
    assert per_hour(1, 1800.0) == 2.0
    with pytest.raises(ValueError):
        per_hour(1, 0.0)
