"""Turning a stream of per-window scores into detections, after TensorFlow's ``RecognizeCommands``.

Rules (times in seconds, settings in milliseconds):

* scores of the results inside the last ``average_window_ms`` are averaged (a result at time ``t0`` is kept
  while ``t0 >= now - average_window_ms``);
* nothing is decided while fewer than ``minimum_count`` results, or less than a quarter of the averaging
  window, are available;
* the averaged top label *wins* when its score is above ``threshold``, it differs from the previous winner
  and more than ``suppression_ms`` have passed since the previous win (no wait after ``_silence_`` wins);
* a win of ``_silence_`` or ``_unknown_`` is never reported (it still updates the state, as in TensorFlow).

One addition to TensorFlow's rules: TF never reports the same word twice in a row unless another label wins
in between. Here the previous winner is *released* once its averaged score falls below ``release``
(hysteresis; ``None`` keeps TF's behaviour), so "yes ... yes" gives two detections.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
NEVER_REPORTED = (SILENCE_LABEL, UNKNOWN_LABEL)


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

    average_window_ms: float = 500.0
    threshold: float = 0.7
    suppression_ms: float = 500.0
    minimum_count: int = 3
    release: float | None = 0.35

    def __post_init__(self) -> None:
        if self.average_window_ms < 0 or self.suppression_ms < 0:
            raise ValueError("average_window_ms and suppression_ms must be >= 0 (milliseconds)")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {self.threshold}")
        if self.minimum_count < 1:
            raise ValueError(f"minimum_count must be >= 1, got {self.minimum_count}")
        if self.release is not None and not 0.0 <= self.release <= self.threshold:
            raise ValueError(f"release must lie in [0, threshold={self.threshold}], got {self.release}")


class CommandDetector:
    """Feed ``(scores (classes,), time_s)`` in time order; get a :class:`Detection` when a keyword is heard."""

    def __init__(self, labels: list[str], config: DetectorConfig | None = None) -> None:
        self.labels = list(labels)
        self.config = config or DetectorConfig()
        self._results: deque[tuple[float, np.ndarray]] = deque()
        self._previous_label = SILENCE_LABEL
        self._previous_time = -math.inf
        self._released = False
        self.average: np.ndarray | None = None  # the latest averaged scores (None while too few results)

    def reset(self) -> None:
        self.__init__(self.labels, self.config)

    def process(self, scores: np.ndarray, time_s: float) -> Detection | None:
        """Add the scores of the window ending at ``time_s`` (seconds); return a detection or None."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.size != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} scores (one per label), got {scores.size}")
        if self._results and time_s < self._results[-1][0]:
            raise ValueError(f"results must come in time order: {time_s} s after {self._results[-1][0]} s")
        c = self.config
        window_s = c.average_window_ms / 1000.0
        self._results.append((time_s, scores))
        while self._results[0][0] < time_s - window_s - 1e-9:
            self._results.popleft()
        count = len(self._results)
        if count < c.minimum_count or time_s - self._results[0][0] < window_s / 4 - 1e-9:
            self.average = None
            return None
        average = np.mean([s for _, s in self._results], axis=0)
        self.average = average
        top = int(np.argmax(average))
        top_label, top_score = self.labels[top], float(average[top])

        previous = self._previous_label
        if c.release is not None and previous != SILENCE_LABEL and previous in self.labels:
            if average[self.labels.index(previous)] < c.release:
                self._released = True
        if previous == SILENCE_LABEL or self._previous_time == -math.inf:
            since_previous = math.inf
        else:
            since_previous = time_s - self._previous_time
        repeat_blocked = top_label == previous and not self._released
        if top_score > c.threshold and not repeat_blocked and since_previous > c.suppression_ms / 1000.0 + 1e-9:
            self._previous_label, self._previous_time, self._released = top_label, time_s, False
            if top_label not in NEVER_REPORTED:
                return Detection(top_label, top_score, time_s)
        return None
