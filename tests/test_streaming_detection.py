"""Detection rules on crafted score sequences (no audio, no model)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

from speech.streaming.detection import (
    CommandDetector,
    Detection,
    DetectorConfig,
    keyword_index,
    pool_keywords,
    replay,
    smooth_scores,
)

LABELS = ["_silence_", "_unknown_", "yes", "no", "up"]
HOP = 0.1  # seconds between results


def one_speed(**kw) -> DetectorConfig:
    """TensorFlow's single 500 ms average (no quick window, no talk rule), with ``kw``: what most rules here are
    written for."""
    return DetectorConfig(**{"average_window_ms": 500.0, "quick_average_ms": None, "talk_before": None, **kw})


def onehot(label: str, p: float = 1.0) -> np.ndarray:
    """Scores with ``p`` on ``label`` and the rest spread over the other labels."""
    scores = np.full(len(LABELS), (1.0 - p) / (len(LABELS) - 1))
    scores[LABELS.index(label)] = p
    return scores


def run(detector: CommandDetector, sequence: list[np.ndarray], start: float = 1.0) -> list[Detection]:
    found = []
    for i, scores in enumerate(sequence):
        d = detector.process(scores, start + i * HOP)
        if d is not None:
            found.append(d)
    return found


def tf_config(**kw) -> DetectorConfig:
    return one_speed(release=None, **kw)


def test_a_word_held_above_threshold_is_reported_once_with_its_time():
    seq = [onehot("_silence_")] * 10 + [onehot("yes", 0.95)] * 8 + [onehot("_silence_")] * 10
    found = run(CommandDetector(LABELS, one_speed()), seq)
    assert [d.label for d in found] == ["yes"]
    # averaging over 500 ms (6 results): the mean of "yes" passes 0.7 once 5 of the last 6 are "yes"
    assert found[0].time == pytest.approx(1.0 + 14 * HOP)
    assert found[0].score > 0.7


def test_scores_below_threshold_or_too_short_are_not_reported():
    quiet = [onehot("_silence_")] * 5 + [onehot("yes", 0.65)] * 10 + [onehot("_silence_")] * 5
    assert run(CommandDetector(LABELS, one_speed()), quiet) == []
    spike = [onehot("_silence_")] * 10 + [onehot("yes", 1.0)] * 2 + [onehot("_silence_")] * 10
    assert run(CommandDetector(LABELS, one_speed()), spike) == []  # the average of a 200 ms spike stays below 0.7


def test_nothing_is_decided_before_minimum_count_and_a_quarter_window():
    detector = CommandDetector(LABELS, one_speed(minimum_count=3))
    assert detector.process(onehot("yes"), 0.0) is None
    assert detector.average is None
    assert detector.process(onehot("yes"), 0.1) is None
    assert detector.average is None  # two results, minimum is three
    assert detector.process(onehot("yes"), 0.2).label == "yes"
    # enough results but spanning less than a quarter of the 500 ms window: undecided
    fast = CommandDetector(LABELS, one_speed(minimum_count=3))
    for t in (0.0, 0.02, 0.04, 0.06, 0.08, 0.10):
        assert fast.process(onehot("yes"), t) is None
    assert fast.process(onehot("yes"), 0.13).label == "yes"


def test_silence_and_unknown_are_never_reported():
    seq = [onehot("_unknown_")] * 10 + [onehot("_silence_")] * 10 + [onehot("_unknown_")] * 10
    detector = CommandDetector(LABELS, one_speed())
    assert run(detector, seq) == []


def test_suppression_blocks_a_second_word_inside_500_ms():
    cfg = one_speed(average_window_ms=0.0, minimum_count=1, suppression_ms=500.0)  # no averaging
    detector = CommandDetector(LABELS, cfg)
    assert detector.process(onehot("yes"), 1.0).label == "yes"
    assert detector.process(onehot("no"), 1.3) is None  # 300 ms after "yes"
    assert detector.process(onehot("no"), 1.5) is None  # exactly 500 ms: not more than the suppression
    assert detector.process(onehot("no"), 1.6).label == "no"


def test_no_suppression_after_silence_wins():
    cfg = one_speed(average_window_ms=0.0, minimum_count=1, suppression_ms=500.0)
    detector = CommandDetector(LABELS, cfg)
    assert detector.process(onehot("yes"), 1.0).label == "yes"
    assert detector.process(onehot("_silence_"), 1.6) is None  # silence wins (not reported)
    assert detector.process(onehot("no"), 1.7).label == "no"  # 100 ms later: no wait after silence
    assert detector.process(onehot("up"), 1.8) is None  # but "no" is a word: 500 ms before the next


def test_repeated_word_tf_rule_and_release():
    yes_twice = [onehot("yes")] * 8 + [onehot("up", 0.5)] * 15 + [onehot("yes")] * 8
    # TensorFlow's rule: the same label never fires twice in a row, even after a long gap
    assert [d.label for d in run(CommandDetector(LABELS, tf_config()), yes_twice)] == ["yes"]
    # with release (default), "yes" is re-armed once its average fell below 0.35
    assert [d.label for d in run(CommandDetector(LABELS, one_speed()), yes_twice)] == ["yes", "yes"]


def test_a_short_pause_re_arms_a_repeat_through_the_newest_window():
    """A long window still holds part of the last word in a short pause: the 500 ms average of "yes" stays above
    the release level, but the newest windows fall under it, so the next "yes" is a second detection; one window
    alone, under the threshold, never fires the stale average again."""
    pause = [onehot("yes", 0.6), onehot("yes", 0.2), onehot("yes", 0.1), onehot("yes", 0.5)]
    sequence = [onehot("yes")] * 8 + pause + [onehot("yes")] * 8
    assert min(np.mean(sequence[i - 4 : i + 1], axis=0)[2] for i in range(8, 12)) > 0.35  # the average never released
    for config in (one_speed(), one_speed(suppression_ms=0.0)):
        assert [d.label for d in run(CommandDetector(LABELS, config), sequence)] == ["yes", "yes"]
    times = np.arange(len(sequence)) * HOP
    assert replay(LABELS, smooth_scores(times, np.stack(sequence), one_speed(), LABELS), one_speed()) == \
        run(CommandDetector(LABELS, one_speed()), sequence, start=0.0)
    dip = [onehot("yes")] * 8 + [onehot("yes", 0.2)] + [onehot("yes", 0.6)] * 6  # a dip, and no second word
    assert [d.label for d in run(CommandDetector(LABELS, one_speed(suppression_ms=0.0)), dip)] == ["yes"]


def test_hysteresis_keeps_a_wobbling_word_to_one_detection():
    wobble = [onehot("yes", p) for p in (0.9, 0.9, 0.9, 0.9, 0.6, 0.6, 0.6, 0.9, 0.9, 0.9, 0.9, 0.6, 0.6, 0.9)]
    found = run(CommandDetector(LABELS, one_speed(suppression_ms=0.0)), wobble * 2)
    assert [d.label for d in found] == ["yes"]


def test_bad_input_is_refused():
    detector = CommandDetector(LABELS, one_speed())
    with pytest.raises(ValueError, match="5 scores"):
        detector.process(np.ones(3), 0.0)
    detector.process(onehot("yes"), 1.0)
    with pytest.raises(ValueError, match="time order"):
        detector.process(onehot("yes"), 0.5)
    with pytest.raises(ValueError):
        one_speed(threshold=1.5)
    with pytest.raises(ValueError):
        one_speed(release=0.9, threshold=0.7)
    with pytest.raises(ValueError, match="talk_before must be a probability"):
        DetectorConfig(talk_before=1.5)
    with pytest.raises(ValueError, match="talk_before_ms must be >= 0"):
        DetectorConfig(talk_before=0.5, talk_before_ms=-1.0)


class TensorFlowRecognizeCommands:
    """TensorFlow's RecognizeCommands.process_latest_result, restated as the oracle (times in ms)."""

    def __init__(self, labels, average_window_duration_ms, detection_threshold, suppression_ms, minimum_count):
        self.labels, self.window, self.threshold = labels, average_window_duration_ms, detection_threshold
        self.suppression, self.minimum = suppression_ms, minimum_count
        self.results = deque()
        self.previous_label, self.previous_time = "_silence_", -np.inf

    def process(self, scores, now):
        self.results.append((now, scores))
        while now - self.window > self.results[0][0]:
            self.results.popleft()
        if len(self.results) < self.minimum or now - self.results[0][0] < self.window / 4:
            return None
        average = sum(s for _, s in self.results) / len(self.results)
        top = int(np.argmax(average))
        label, score = self.labels[top], average[top]
        since = np.inf if self.previous_label == "_silence_" or self.previous_time == -np.inf else now - self.previous_time
        if score > self.threshold and label != self.previous_label and since > self.suppression:
            self.previous_label, self.previous_time = label, now
            return label
        return None


@pytest.mark.parametrize("seed", range(5))
def test_matches_tensorflow_on_random_score_streams(seed):
    """With ``release=None`` the detector reports exactly TF's new commands minus _silence_/_unknown_."""
    rng = np.random.default_rng(seed)
    # piecewise-constant label runs with noisy, peaked scores
    seq = []
    while len(seq) < 1500:
        label = int(rng.integers(len(LABELS)))
        boost = rng.uniform(0, 8)
        for _ in range(int(rng.integers(3, 40))):
            logits = rng.normal(0, 1, len(LABELS))
            logits[label] += boost
            seq.append(np.exp(logits) / np.exp(logits).sum())
    hop_ms = 30
    tf = TensorFlowRecognizeCommands(LABELS, 500, 0.7, 500, 4)
    ours = CommandDetector(LABELS, tf_config(average_window_ms=500, threshold=0.7, suppression_ms=500, minimum_count=4))
    expected, got = [], []
    for i, scores in enumerate(seq):
        label = tf.process(scores, i * hop_ms)
        if label is not None and label not in ("_silence_", "_unknown_"):
            expected.append((label, i * hop_ms))
        d = ours.process(scores, i * hop_ms / 1000)
        if d is not None:
            got.append((d.label, round(d.time * 1000)))
    assert got == expected
    assert len(expected) >= 3  # the streams do contain detections
    assert not math.isnan(ours.average.sum())


def test_two_speeds_a_sure_word_fires_at_once_an_unsure_one_waits_for_the_long_average():
    """The default detector averages over 1000 ms, and over 300 ms for words it is sure of (module doc)."""
    config = DetectorConfig()
    assert (config.average_window_ms, config.quick_average_ms, config.quick_threshold) == (1000.0, 300.0, 0.9)
    silence = [onehot("_silence_")] * 12
    sure = silence + [onehot("yes", 0.95)] * 12 + silence
    found = run(CommandDetector(LABELS, config), sure)
    # the 300 ms average (4 results) of "yes" is 0.95 > 0.9 at the 4th "yes" window; the long one (11) needs 9 of them
    assert [d.label for d in found] == ["yes"] and found[0].time == pytest.approx(1.0 + 15 * HOP)
    assert run(CommandDetector(LABELS, one_speed(average_window_ms=1000.0)), sure)[0].time == pytest.approx(1.0 + 20 * HOP)
    # an unsure word (0.85 < 0.9) waits for the long average: 0.85 x 10 / 11 results > 0.7 at the 10th "yes" window
    unsure = silence + [onehot("yes", 0.85)] * 12 + silence
    found = run(CommandDetector(LABELS, config), unsure)
    assert [d.label for d in found] == ["yes"] and found[0].time == pytest.approx(1.0 + 21 * HOP)
    # a quick level is never below the keyword's own threshold: with "yes" at 0.97 the sure word waits too
    strict = DetectorConfig(thresholds={"yes": 0.97})
    assert run(CommandDetector(LABELS, strict), sure) == []
    # a sure 200 ms spike: the quick average (4 results) stays at 0.5, the long one lower: nothing
    spike = silence + [onehot("yes", 1.0)] * 2 + silence
    assert run(CommandDetector(LABELS, config), spike) == []
    # the live detector and the replay of stored scores agree on all three
    for seq in (sure, unsure, spike):
        times = 1.0 + np.arange(len(seq)) * HOP
        assert replay(LABELS, smooth_scores(times, np.stack(seq), config, LABELS), config) == run(CommandDetector(LABELS, config), seq)
    with pytest.raises(ValueError, match="quick_average_ms"):
        DetectorConfig(average_window_ms=300.0)  # the quick window must be the shorter one
    with pytest.raises(ValueError, match="quick_threshold"):
        DetectorConfig(quick_threshold=1.5)


def test_per_label_thresholds_and_their_release_level():
    seq = [onehot("_silence_")] * 6 + [onehot("yes", 0.6)] * 8 + [onehot("_silence_")] * 6 + [onehot("no", 0.6)] * 8
    # 0.6 is below the default 0.7: nothing; with "yes" at 0.5 only "yes" is reported
    assert run(CommandDetector(LABELS, one_speed()), seq) == []
    config = one_speed(thresholds={"yes": 0.5})
    assert [d.label for d in run(CommandDetector(LABELS, config), seq)] == ["yes"]
    assert config.threshold_for("yes") == 0.5 and config.threshold_for("no") == 0.7
    np.testing.assert_allclose(config.threshold_vector(LABELS), [0.7, 0.7, 0.5, 0.7, 0.7])
    # a threshold below the release level releases at the threshold instead
    low = one_speed(thresholds={"yes": 0.2})
    assert low.release_vector(LABELS).tolist() == [0.35, 0.35, 0.2, 0.35, 0.35]
    with pytest.raises(ValueError, match="'yes'"):
        one_speed(thresholds={"yes": 1.2})


def random_scores(rng, n, labels=LABELS):
    seq = []
    while len(seq) < n:
        label = int(rng.integers(len(labels)))
        boost = rng.uniform(0, 8)
        for _ in range(int(rng.integers(3, 40))):
            logits = rng.normal(0, 1, len(labels))
            logits[label] += boost
            seq.append(np.exp(logits) / np.exp(logits).sum())
    return np.array(seq[:n])


@pytest.mark.parametrize("seed", range(4))
def test_replay_of_stored_scores_equals_the_live_detector(seed):
    """smooth_scores + replay give exactly the detections of a CommandDetector fed the same scores."""
    rng = np.random.default_rng(seed)
    scores = random_scores(rng, 1200)
    times = np.arange(scores.shape[0]) * 0.1
    configs = [
        one_speed(),
        one_speed(thresholds={"yes": 0.45, "no": 0.9, "up": 0.6}),
        one_speed(release=None, threshold=0.55, suppression_ms=300.0),
        one_speed(average_window_ms=300.0, minimum_count=2, thresholds={"yes": 0.3}),
        one_speed(keyword_share=0.6, thresholds={"yes": 0.8, "no": 0.9}),
        DetectorConfig(),  # two speeds: 1000 ms, quick 300 ms at 0.9
        DetectorConfig(quick_average_ms=400.0, quick_threshold=0.8),
        DetectorConfig(quick_average_ms=300.0, quick_threshold=0.5,
                       thresholds={"yes": 0.9, "no": 0.6}, keyword_share=0.6),
        DetectorConfig(talk_before=0.3, threshold=0.5),  # words after talk: ignored
        one_speed(talk_before=0.2, talk_before_ms=600.0, thresholds={"yes": 0.4}),
    ]
    for config in configs:
        live = CommandDetector(LABELS, config)
        expected = [d for i in range(len(times)) if (d := live.process(scores[i], float(times[i]))) is not None]
        got = replay(LABELS, smooth_scores(times, scores, config, LABELS), config)
        assert got == expected
        assert len(expected) >= 3
    smoothed = smooth_scores(times, scores, configs[0], LABELS)
    assert not smoothed.valid[:2].any() and smoothed.valid[2:].all()  # three results needed
    with pytest.raises(ValueError, match="time order"):
        smooth_scores(times[::-1], scores, configs[0], LABELS)


def test_keyword_share_pools_a_word_split_between_two_keywords():
    """A word heard as a keyword but split between two (0.55 "yes" + 0.35 "no") misses 0.7 on its own scores;
    with keyword_share 0.6 the sure windows give "yes" the keywords' sum. An unsure split stays as it is."""
    split = np.array([0.02, 0.08, 0.55, 0.35, 0.0])
    unsure = np.array([0.02, 0.08, 0.45, 0.45, 0.0])
    silence = [onehot("_silence_")] * 10
    assert run(CommandDetector(LABELS, one_speed()), silence + [split] * 8 + silence) == []
    found = run(CommandDetector(LABELS, one_speed(keyword_share=0.6)), silence + [split] * 8 + silence)
    assert [d.label for d in found] == ["yes"] and 0.7 < found[0].score <= 0.9 + 1e-9
    assert run(CommandDetector(LABELS, one_speed(keyword_share=0.6)), silence + [unsure] * 8 + silence) == []

    keywords = keyword_index(LABELS)
    assert keywords.tolist() == [2, 3, 4]
    pooled = pool_keywords(np.stack([split, unsure]), keywords, 0.6)
    assert pooled[0] == pytest.approx([0.02, 0.08, 0.9, 0.0, 0.0]) and pooled[1] == pytest.approx(unsure)
    assert pool_keywords(split, keywords, 0.6) == pytest.approx(pooled[0])  # one window alike
    assert pooled.sum(axis=1) == pytest.approx([1.0, 1.0])  # _silence_ / _unknown_ untouched, sums kept
    assert pool_keywords(split, keywords, None) is split  # off: the scores as they are
    with pytest.raises(ValueError, match="keyword_share must be a share in"):
        one_speed(keyword_share=0.4)
    with pytest.raises(ValueError, match="one label per score column"):
        smooth_scores(np.arange(3) * 0.1, np.stack([split] * 3), one_speed(keyword_share=0.6), LABELS[:3])


def test_a_keyword_right_after_talk_is_ignored_one_after_a_pause_is_reported():
    """talk_before: the lowest _unknown_ score of the 1.5 s ending talk_before_ms (1000) before the decision.
    "yes" after silence is reported; the same "yes" right after a second and a half of running talk (_unknown_)
    is not; after talk and a pause it is again. Without an _unknown_ label the rule is off."""
    silence, talk, word = [onehot("_silence_")] * 15, [onehot("_unknown_", 0.8)] * 15, [onehot("yes", 0.95)] * 6
    config = one_speed(talk_before=0.5)
    assert [d.label for d in run(CommandDetector(LABELS, config), silence + word + silence)] == ["yes"]
    assert run(CommandDetector(LABELS, config), talk + word + silence) == []
    assert [d.label for d in run(CommandDetector(LABELS, one_speed()), talk + word + silence)] == ["yes"]  # rule off
    # a pause between the talk and the word: some result of the span is not talk, so it is reported
    pause = [onehot("_silence_")] * 12
    assert [d.label for d in run(CommandDetector(LABELS, config), talk + pause + word + silence)] == ["yes"]
    # the talk rule needs an _unknown_ label; without one it is off
    labels = ["_silence_", "yes", "no"]
    detector = CommandDetector(labels, one_speed(talk_before=0.0))
    found = [d for i, s in enumerate([np.array([1.0, 0, 0])] * 15 + [np.array([0.0, 0.95, 0.05])] * 6)
             if (d := detector.process(s, 1.0 + i * HOP)) is not None]
    assert [d.label for d in found] == ["yes"]
