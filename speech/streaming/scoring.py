"""Streaming accuracy, as TensorFlow's ``accuracy_utils.StreamingAccuracyStats`` computes it. Pure functions.

Ground truth is a list of ``(label, time_ms)`` (TF's labels file: one ``label, time_ms`` line per word, the
time where the word's 1 s clip starts). Detections are ``(label, time_ms)`` too; TF stamps a detection with
the start of the window it fired on, and so does :func:`window_start_ms`.

For each detection, in time order, the first ground-truth word within ``tolerance_ms`` of it decides:
same label and that word not matched before -> *correct*, otherwise -> *wrong*; no word within the
tolerance -> *false positive*. Percentages are of all ground-truth words (false positives may exceed 100%).
*Matched* counts the ground-truth words that got at least one detection (TF counts matches, so a word hit
twice counts twice there; here it counts once).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LabelledTime:
    """A word (ground truth) or a detection: ``label`` and ``time_ms`` (milliseconds from the stream start)."""

    label: str
    time_ms: float


def read_labels_file(path: str | Path) -> list[LabelledTime]:
    """Read a TF labels file (``label, time_ms`` per line; blank lines ignored), sorted by time."""
    path = Path(path)
    words = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) != 2 or not parts[0]:
                raise ValueError
            words.append(LabelledTime(parts[0], float(parts[1])))
        except ValueError:
            raise ValueError(f"{path}:{number}: expected 'label, time_ms', got {line.strip()!r}") from None
    return sorted(words, key=lambda w: w.time_ms)


def write_labels_file(path: str | Path, words: list[LabelledTime]) -> None:
    """Write ``label, time_ms`` lines like TF's ``generate_streaming_test_wav.py``; refuses to overwrite."""
    path = Path(path)
    with path.open("x", encoding="utf-8") as f:  # "x": fail if the file exists
        for w in words:
            f.write(f"{w.label}, {w.time_ms:f}\n")


@dataclass
class StreamingStats:
    """Counts from :func:`streaming_accuracy` and the ``(detection index, word index, correct)`` pairing."""

    words: int
    matched: int
    correct: int
    wrong: int
    false_positive: int
    pairs: list[tuple[int, int, bool]] = field(default_factory=list)

    def percent(self, count: int) -> float:
        return 100.0 * count / self.words if self.words else 0.0

    def summary(self) -> dict[str, float]:
        """Percentages of the ground-truth words: ``matched``, ``correct``, ``wrong``, ``false_positive``."""
        return {
            "matched": self.percent(self.matched),
            "correct": self.percent(self.correct),
            "wrong": self.percent(self.wrong),
            "false_positive": self.percent(self.false_positive),
        }


def streaming_accuracy(
    truth: list[LabelledTime], detections: list[LabelledTime], tolerance_ms: float = 750.0
) -> StreamingStats:
    """Score ``detections`` against ``truth`` (TF's rules, see the module docstring)."""
    order = sorted(range(len(truth)), key=lambda i: truth[i].time_ms)
    det_order = sorted(range(len(detections)), key=lambda i: detections[i].time_ms)
    used: set[int] = set()
    correct = wrong = false_positive = 0
    pairs = []
    for d in det_order:
        found = detections[d]
        reached = None  # the first ground-truth word within the tolerance
        for t in order:
            if truth[t].time_ms > found.time_ms + tolerance_ms:
                break
            if truth[t].time_ms >= found.time_ms - tolerance_ms:
                reached = t
                break
        if reached is None:
            false_positive += 1
            continue
        is_correct = truth[reached].label == found.label and reached not in used
        correct += is_correct
        wrong += not is_correct
        used.add(reached)
        pairs.append((d, reached, is_correct))
    return StreamingStats(len(truth), len(used), correct, wrong, false_positive, pairs)


def window_start_ms(detection_time_s: float, window_s: float = 1.0) -> float:
    """TF's time stamp for a detection made at ``detection_time_s`` (window end): the window's start, in ms."""
    return 1000.0 * (detection_time_s - window_s)


def median_delay_ms(
    stats: StreamingStats, detection_ms: list[float], reference_ms: list[float]
) -> float | None:
    """Median of ``detection_ms[d] - reference_ms[t]`` over the correct pairs (None when there are none).

    ``detection_ms``: when each detection was made (ms); ``reference_ms``: a time per ground-truth word, e.g.
    its speech onset.
    """
    delays = [detection_ms[d] - reference_ms[t] for d, t, ok in stats.pairs if ok]
    return statistics.median(delays) if delays else None


def false_alarms_per_hour(detections: int, seconds: float) -> float:
    """Detections on a keyword-free stream of ``seconds``, scaled to one hour."""
    if seconds <= 0:
        raise ValueError(f"the stream must be longer than 0 s, got {seconds}")
    return detections * 3600.0 / seconds
