"""Turning a stream of per-window scores into detections, after TensorFlow's ``RecognizeCommands``.

Rules (times in seconds, settings in milliseconds):

* scores of the results inside the last ``average_window_ms`` are averaged (a result at time ``t0`` is kept
  while ``t0 >= now - average_window_ms``);
* nothing is decided while fewer than ``minimum_count`` results, or less than a quarter of the averaging
  window, are available;
* the averaged top label *wins* when its score is above ``threshold``, it differs from the previous winner
  and more than ``suppression_ms`` have passed since the previous win (no wait after ``_silence_`` wins);
* a win of ``_silence_`` or ``_unknown_`` is never reported (it still updates the state, as in TensorFlow), nor
  one of a keyword left out of ``keywords`` when only some are listened for (``speech live --keywords stop,go``).

Two additions to TensorFlow's rules:

* TF never reports the same word twice in a row unless another label wins in between. Here the previous
  winner is *released* once its averaged score, or the newest window's own score for it, falls below ``release``
  (hysteresis; ``None`` keeps TF's behaviour), and it may then win again once the newest window's own score is
  above its threshold too, so "yes ... yes" gives two detections. The newest window counts because a long window
  (``window_ms`` 1500) still holds part of the last word for most of a short pause, where the average stays high.
* Thresholds may differ per label (``DetectorConfig.thresholds``, e.g. calibrated ones stored in a model);
  labels without one use ``threshold``. A label's release level is ``min(release, its threshold)``.

Two speeds (``DetectorConfig.quick_average_ms``, ``quick_threshold``): besides the average over
``average_window_ms`` (1000 ms) the detector keeps one over a shorter window (300 ms). Where the short average's
top label is above its quick level (``max(quick_threshold, its threshold)``) the decision is made on it at once;
otherwise on the long average. The long average keeps running speech quiet (a keyword rarely leads a second of it)
and the short one spares a clear word the wait. docs/more-speakers.md ("Averaging longer, and two speeds") has
the measurements.

And a rule for words amid talk (``DetectorConfig.talk_before``): a keyword that wins while *every* result of the
1.5 s (``TALK_SPAN_MS``) ending ``talk_before_ms`` (1000 ms) before the decision scored ``_unknown_`` above
``talk_before`` (0.5) is not reported: the model heard running speech throughout the time before the word. The win
still updates the state, as an unreported ``_unknown_`` does. A command follows a pause, or at least a moment the
model did not hear as talk; a keyword-like word in the middle of a sentence does not. docs/more-speakers.md
("Words amid talk") has the measurements.

And one to the scores themselves (``DetectorConfig.keyword_share``, issue #18; ``None`` keeps TF's scores): a
window whose top keyword holds at least that share of the keywords' summed probability gives that keyword the
whole sum (the chance that *some* keyword was said) and the other keywords 0, before averaging
(:func:`pool_keywords`). An unseen speaker's word is often heard as a keyword but split between two similar
ones, so no single score reaches the threshold; pooled, it does. A window unsure which keyword it heard (top
below the share) keeps its scores. docs/running-speech.md has the measurements.

The averaging and the decision are separate steps: :func:`smooth_scores` averages a stored score sequence
once, and :func:`replay` runs the decision rules over it for any thresholds, giving exactly the detections a
:class:`CommandDetector` fed the same scores would make (threshold sweeps and calibration use this).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from speech.data.labels import SILENCE_LABEL, SPECIAL_LABELS, UNKNOWN_LABEL
from speech.errors import SettingError

NEVER_REPORTED = SPECIAL_LABELS
TALK_SPAN_MS = 1500.0  # the span whose _unknown_ scores say whether a keyword came amid talk (talk_before)


@dataclass(frozen=True)
class Detection:
    """A reported keyword: ``label``, averaged ``score`` in [0, 1] and ``time`` in seconds from the stream start.

    ``time`` is when the detection was made: the end of the newest window that took part.
    """

    label: str
    score: float
    time: float

    def to_dict(self) -> dict:
        return {"label": self.label, "score": round(float(self.score), 4), "time": round(float(self.time), 3)}


@dataclass
class DetectorConfig:
    """Smoothing settings (milliseconds, probabilities)."""

    average_window_ms: float = 1000.0
    threshold: float = 0.7
    suppression_ms: float = 500.0
    minimum_count: int = 3
    release: float | None = 0.35
    thresholds: dict[str, float] | None = None  # per-label thresholds; other labels use ``threshold``
    keyword_share: float | None = None  # pool the keywords' scores in windows sure of their keyword (module doc)
    quick_average_ms: float | None = 300.0  # two speeds: a sure average over this shorter window wins at once
    quick_threshold: float = 0.9  # ... when its top score is above this (and the label's own threshold)
    keywords: tuple[str, ...] | None = None  # only these are reported (None: every keyword); the others still win
    talk_before: float | None = 0.5  # a keyword amid talk (_unknown_ above this all through the span) is ignored
    talk_before_ms: float = 1000.0  # ... the TALK_SPAN_MS span that ends this long before the decision

    @property
    def keyword_text(self) -> str:
        """What is listened for, for a banner: "every keyword" or the listed ones."""
        return "every keyword" if self.keywords is None else ", ".join(self.keywords)

    def __post_init__(self) -> None:
        if self.average_window_ms < 0 or self.suppression_ms < 0:
            raise SettingError("average_window_ms and suppression_ms must be >= 0 (milliseconds)",
                               param="average_window_ms")
        if not 0.0 <= self.threshold <= 1.0:
            raise SettingError(f"threshold must be a probability in [0, 1], got {self.threshold}", param="threshold")
        if self.minimum_count < 1:
            raise SettingError(f"minimum_count must be >= 1, got {self.minimum_count}", param="minimum_count")
        if self.release is not None and not 0.0 <= self.release <= self.threshold:
            raise SettingError(f"release must lie in [0, threshold={self.threshold}], got {self.release}",
                               param="release")
        if self.keyword_share is not None and not 0.5 <= self.keyword_share <= 1.0:
            raise SettingError(f"keyword_share must be a share in [0.5, 1] (or None: off), got {self.keyword_share}",
                               param="keyword_share")
        if self.quick_average_ms is not None and not 0 < self.quick_average_ms < self.average_window_ms:
            raise SettingError(f"quick_average_ms must lie between 0 and average_window_ms={self.average_window_ms:g}, "
                               f"got {self.quick_average_ms:g}", param="quick_average_ms")
        if not 0.0 <= self.quick_threshold <= 1.0:
            raise SettingError(f"quick_threshold must be a probability in [0, 1], got {self.quick_threshold}",
                               param="quick_threshold")
        if self.talk_before is not None and not 0.0 <= self.talk_before <= 1.0:
            raise SettingError(f"talk_before must be a probability in [0, 1] (or None: off), got {self.talk_before}",
                               param="talk_before")
        if self.talk_before_ms < 0:
            raise SettingError(f"talk_before_ms must be >= 0 (milliseconds), got {self.talk_before_ms}",
                               param="talk_before_ms")
        if self.keywords is not None:
            if isinstance(self.keywords, str) or not self.keywords or not all(isinstance(k, str) for k in self.keywords):
                raise SettingError(f"keywords must be a non-empty list of labels (or None: every keyword), got "
                                   f"{self.keywords!r}", param="keywords")
            self.keywords = tuple(self.keywords)
        for label, value in (self.thresholds or {}).items():
            if not 0.0 <= float(value) <= 1.0:
                raise SettingError(f"the threshold of {label!r} must be a probability in [0, 1], got {value}",
                                   param="thresholds")

    def threshold_for(self, label: str) -> float:
        """The threshold ``label`` must exceed: its own one when set, else ``threshold``."""
        if self.thresholds and label in self.thresholds:
            return float(self.thresholds[label])
        return float(self.threshold)

    def threshold_vector(self, labels: list[str]) -> np.ndarray:
        """``(len(labels),)`` float64: the threshold of each label."""
        return np.array([self.threshold_for(label) for label in labels], dtype=np.float64)

    def release_vector(self, labels: list[str]) -> np.ndarray | None:
        """``(len(labels),)`` release levels ``min(release, threshold of the label)``; None without release."""
        if self.release is None:
            return None
        return np.minimum(self.threshold_vector(labels), float(self.release))


def keyword_index(labels: list[str]) -> np.ndarray:
    """Indices of the keywords among ``labels`` (everything but ``_silence_`` and ``_unknown_``)."""
    return np.array([i for i, label in enumerate(labels) if label not in SPECIAL_LABELS], dtype=np.int64)


def pool_keywords(scores: np.ndarray, keywords: np.ndarray, share: float | None) -> np.ndarray:
    """``scores`` ``(..., classes)`` with the keywords pooled where a window is sure of its keyword: where the top
    keyword (of the indices ``keywords``) holds at least ``share`` of the keywords' sum, it gets that sum and the
    other keywords 0. ``share`` None: ``scores`` unchanged. ``_silence_`` / ``_unknown_`` never change, so each
    window still sums to 1."""
    if share is None or keywords.size == 0:
        return scores
    out = np.array(scores, copy=True)
    part = out[..., keywords]
    top = part.argmax(axis=-1)[..., None]
    total = part.sum(axis=-1, keepdims=True)
    sure = np.take_along_axis(part, top, axis=-1) >= share * total
    pooled = np.zeros_like(part)
    np.put_along_axis(pooled, top, total, axis=-1)
    out[..., keywords] = np.where(sure, pooled, part)
    return out


class _Decision:
    """The decision state of :class:`CommandDetector`: previous winner, its time and whether it was released."""

    def __init__(self, labels: list[str], config: DetectorConfig) -> None:
        self.labels = list(labels)
        self.config = config
        self.thresholds = config.threshold_vector(self.labels).tolist()
        release = config.release_vector(self.labels)
        self.release = None if release is None else release.tolist()
        self.suppression_s = config.suppression_ms / 1000.0
        self.silence = self.labels.index(SILENCE_LABEL) if SILENCE_LABEL in self.labels else -1
        self.never = {i for i, label in enumerate(self.labels) if label in NEVER_REPORTED}
        if config.keywords is not None:
            known = [label for label in self.labels if label not in NEVER_REPORTED]
            if unknown := [k for k in config.keywords if k not in known]:
                raise SettingError(f"keyword(s) {', '.join(map(repr, unknown))} not among the model's keywords: "
                                   f"{', '.join(known)}", param="keywords")
            self.never |= {i for i, label in enumerate(self.labels) if label not in config.keywords}
        self.quick_levels = [max(t, config.quick_threshold) for t in self.thresholds]
        self.talk_before = config.talk_before if UNKNOWN_LABEL in self.labels else None  # no _unknown_: no talk
        self.previous = self.silence  # index of the previous winner (-1: "_silence_" not a label)
        self.previous_time = -math.inf
        self.released = False

    def sure(self, quick_top: int, quick_score: float) -> bool:
        """Whether the quick average, top label ``quick_top`` at ``quick_score``, is decided on instead of the long
        one: its score is above that label's quick level."""
        return quick_score > self.quick_levels[quick_top]

    def step(self, average, top: int, top_score: float, time_s: float, latest=None,
             talk: float | None = None) -> Detection | None:
        """Decide on one averaged result (``average`` and the newest window's own scores ``latest``, both
        indexable by label index, and ``talk``, the lowest ``_unknown_`` score before it: :class:`_TalkBefore`;
        None or NaN where there is none yet); a detection or None."""
        previous = self.previous
        if self.release is not None and previous != self.silence and previous >= 0:
            level = self.release[previous]
            if average[previous] < level or (latest is not None and latest[previous] < level):
                self.released = True
        if previous == self.silence or self.previous_time == -math.inf:
            since_previous = math.inf
        else:
            since_previous = time_s - self.previous_time
        repeat_blocked = top == previous and (
            not self.released or (latest is not None and latest[top] <= self.thresholds[top])
        )
        if (
            top_score > self.thresholds[top]
            and not repeat_blocked
            and since_previous > self.suppression_s + 1e-9
        ):
            self.previous, self.previous_time, self.released = top, time_s, False
            after_talk = self.talk_before is not None and talk is not None and talk > self.talk_before
            if top not in self.never and not after_talk:
                return Detection(self.labels[top], top_score, time_s)
        return None


class _Averager:
    """The one averaging rule of the live detector and of stored score sequences: the mean of the results of the
    last ``average_window_ms``, given once at least ``minimum_count`` of them span a quarter of that window."""

    def __init__(self, config: DetectorConfig) -> None:
        self.window_s = config.average_window_ms / 1000.0
        self.minimum_count = config.minimum_count
        self._results: deque[tuple[float, np.ndarray]] = deque()

    def add(self, time_s: float, scores: np.ndarray) -> np.ndarray | None:
        """Add one result; the average now, or None while too few results are in the window."""
        if self._results and time_s < self._results[-1][0]:
            raise ValueError(f"results must come in time order: {time_s} s after {self._results[-1][0]} s")
        self._results.append((time_s, scores))
        while self._results[0][0] < time_s - self.window_s - 1e-9:
            self._results.popleft()
        if len(self._results) < self.minimum_count or time_s - self._results[0][0] < self.window_s / 4 - 1e-9:
            return None
        return np.mean([s for _, s in self._results], axis=0)


class _TalkBefore:
    """The one rule of the live detector and of stored score sequences for ``talk_before``: the lowest
    ``_unknown_`` score of the results in the ``TALK_SPAN_MS`` span that ends ``talk_before_ms`` before now (None
    while no result lies there, as at the start of a stream)."""

    def __init__(self, config: DetectorConfig, unknown: int) -> None:
        self.end_s = config.talk_before_ms / 1000.0
        self.start_s = self.end_s + TALK_SPAN_MS / 1000.0
        self.unknown = unknown
        self._results: deque[tuple[float, float]] = deque()

    def add(self, time_s: float, scores: np.ndarray) -> float | None:
        self._results.append((time_s, float(scores[self.unknown])))
        while self._results[0][0] < time_s - self.start_s - 1e-9:
            self._results.popleft()
        span = [u for t, u in self._results if t <= time_s - self.end_s + 1e-9]
        return min(span) if span else None


def _talk_before(config: DetectorConfig, labels: list[str]) -> _TalkBefore | None:
    """The talk tracker of ``config``, None when the rule is off or the model has no ``_unknown_`` label."""
    if config.talk_before is None or UNKNOWN_LABEL not in labels:
        return None
    return _TalkBefore(config, labels.index(UNKNOWN_LABEL))


def _quick_averager(config: DetectorConfig) -> _Averager | None:
    """The averager of the quick (shorter) window, None without two speeds."""
    if config.quick_average_ms is None:
        return None
    return _Averager(replace(config, average_window_ms=config.quick_average_ms, quick_average_ms=None))


class CommandDetector:
    """Feed ``(scores (classes,), time_s)`` in time order; get a :class:`Detection` when a keyword is heard."""

    def __init__(self, labels: list[str], config: DetectorConfig | None = None) -> None:
        self.labels = list(labels)
        self.config = config or DetectorConfig()
        self._averager = _Averager(self.config)
        self._quick = _quick_averager(self.config)
        self._talk = _talk_before(self.config, self.labels)
        self._decision = _Decision(self.labels, self.config)
        self._keywords = keyword_index(self.labels)
        self.average: np.ndarray | None = None  # the latest averaged scores (None while too few results)

    def reset(self) -> None:
        self.__init__(self.labels, self.config)

    def process(self, scores: np.ndarray, time_s: float) -> Detection | None:
        """Add the scores of the window ending at ``time_s`` (seconds); return a detection or None."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.size != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} scores (one per label), got {scores.size}")
        scores = pool_keywords(scores, self._keywords, self.config.keyword_share)
        self.average = chosen = self._averager.add(time_s, scores)
        quick = None if self._quick is None else self._quick.add(time_s, scores)
        talk = None if self._talk is None else self._talk.add(time_s, scores)
        if quick is not None and self._decision.sure(q := int(np.argmax(quick)), float(quick[q])):
            chosen = quick
        if chosen is None:
            return None
        top = int(np.argmax(chosen))
        return self._decision.step(chosen, top, float(chosen[top]), time_s, scores, talk)


@dataclass
class SmoothedScores:
    """Averaged scores of a stored sequence: ``times`` (n,) seconds, ``average`` (n, classes) float64,
    ``valid`` (n,) bool (False where too few results were available to decide) and the ``latest`` scores."""

    times: np.ndarray
    average: np.ndarray
    valid: np.ndarray
    latest: np.ndarray | None = None  # (n, classes): each result's own (pooled) scores (the release rule reads them)
    quick: SmoothedScores | None = None  # the quick window's averages (two speeds), same times
    talk: np.ndarray | None = None  # (n,) the lowest _unknown_ score before each result (talk_before; NaN: none)

    def __post_init__(self) -> None:
        self.top = self.average.argmax(axis=1) if self.average.size else np.zeros(0, dtype=np.int64)
        self.top_score = (
            self.average[np.arange(self.average.shape[0]), self.top] if self.average.size else np.zeros(0)
        )


def smooth_scores(times: np.ndarray, scores: np.ndarray, config: DetectorConfig, labels: list[str]) -> SmoothedScores:
    """Average ``scores`` ``(n, classes)`` at ``times`` ``(n,)`` (seconds, ascending) as :class:`CommandDetector`
    does; only ``average_window_ms``, ``minimum_count``, ``keyword_share``, ``quick_average_ms`` and the talk
    span (``talk_before`` on or off, ``talk_before_ms``) of ``config`` matter here; ``labels`` name the score
    columns (the keyword share needs the keywords, the talk span ``_unknown_``)."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != times.shape[0]:
        raise ValueError(f"expected scores (n, classes) for {times.shape[0]} times, got {scores.shape}")
    if np.any(np.diff(times) < 0):
        raise ValueError("results must come in time order")
    if len(labels) != scores.shape[1]:
        raise ValueError(f"expected one label per score column ({scores.shape[1]}), got {len(labels)} labels")
    if config.keyword_share is not None:
        scores = pool_keywords(scores, keyword_index(labels), config.keyword_share)
    average, valid = _average_all(times, scores, _Averager(config))
    quick = None
    if config.quick_average_ms is not None:
        quick = SmoothedScores(times, *_average_all(times, scores, _quick_averager(config)), scores)
    talk = None
    if (tracker := _talk_before(config, list(labels))) is not None:
        talk = np.array([np.nan if (v := tracker.add(float(t), scores[i])) is None else v for i, t in enumerate(times)])
    return SmoothedScores(times, average, valid, scores, quick, talk)


def _average_all(times: np.ndarray, scores: np.ndarray, averager: _Averager) -> tuple[np.ndarray, np.ndarray]:
    average = np.zeros_like(scores)
    valid = np.zeros(times.shape[0], dtype=bool)
    for i, t in enumerate(times):
        mean = averager.add(float(t), scores[i])
        if mean is not None:
            average[i], valid[i] = mean, True
    return average, valid


def replay(labels: list[str], smoothed: SmoothedScores, config: DetectorConfig) -> list[Detection]:
    """The detections a fresh :class:`CommandDetector` with ``config`` makes on the smoothed sequence.

    ``smoothed`` must come from :func:`smooth_scores` with the same averaging settings; only the decision
    settings (thresholds, suppression, release, the ``talk_before`` level) are read from ``config`` here.
    """
    decision = _Decision(labels, config)
    found = []
    average, latest = smoothed.average, smoothed.latest
    tops, top_scores, times = smoothed.top.tolist(), smoothed.top_score.tolist(), smoothed.times.tolist()
    thresholds = decision.thresholds
    quick = smoothed.quick if config.quick_average_ms is not None else None
    valid = smoothed.valid if quick is None else smoothed.valid | quick.valid
    if quick is not None:
        quick_tops, quick_scores = quick.top.tolist(), quick.top_score.tolist()
    if decision.talk_before is not None and smoothed.talk is None:
        raise ValueError("talk_before is on: smooth the scores with it (smooth_scores) first")
    talk = None if decision.talk_before is None else smoothed.talk.tolist()  # NaN (none yet) is never above a level
    for i in np.flatnonzero(valid).tolist():
        if quick is not None and quick.valid[i] and decision.sure(quick_tops[i], quick_scores[i]):
            chosen, top, score = quick.average[i], quick_tops[i], quick_scores[i]
        elif smoothed.valid[i]:
            chosen, top, score = average[i], tops[i], top_scores[i]
        else:
            continue
        # fast path: nothing can win and the release state cannot change
        if score <= thresholds[top] and (decision.release is None or decision.released or decision.previous < 0
                                          or decision.previous == decision.silence):
            continue
        found_one = decision.step(chosen, top, score, times[i], None if latest is None else latest[i],
                                  None if talk is None else talk[i])
        if found_one is not None:
            found.append(found_one)
    return found


def threshold_config(base: DetectorConfig, threshold: float) -> DetectorConfig:
    """``base`` with one ``threshold`` for every label (per-label ones dropped; the release level capped at it)."""
    release = None if base.release is None else min(base.release, threshold)
    return replace(base, threshold=float(threshold), thresholds=None, release=release)
