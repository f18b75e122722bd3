"""Streaming accuracy: TensorFlow's ``StreamingAccuracyStats`` and the keyword-spotting figures. Pure functions.

**Keyword-spotting figures** (:func:`keyword_accuracy`, :func:`false_accepts`). Each word of a stream has its
clip start, speech onset and speech end (ms). A detection (``label``, ``time_ms`` = when it was made, the end
of its window) belongs to the word whose span ``[clip start, speech end + late_ms]`` holds it; where two
spans overlap, a word of the detection's label not yet detected is preferred, else the later word. Then, per
keyword word: *correct* when a detection of its label belongs to it, else *wrong* when a detection of
another label does, else *missed*; **keyword recall** and **wrong** are percentages of the keyword words only
(the non-keyword words of the stream are not in the denominator). Detections that belong to ``_unknown_``
words are *false accepts*; detections near no word are *false alarms*. The **delay** of a correct word is its
first correct detection's time minus its speech end. On a stream of non-keyword words only, every detection
is a false accept (per hour and per word); on speech-free noise, every detection is a false alarm.

**TensorFlow's figures** (:func:`streaming_accuracy`), kept for comparison with its published numbers:

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

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speech.data.labels import UNKNOWN_LABEL


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


# --- keyword-spotting figures ---------------------------------------------------------------------------------

WORDS_FILE_FIELDS = ("label", "start_ms", "onset_ms", "end_ms", "clip")


@dataclass(frozen=True)
class Word:
    """A word of a test stream: ``label``, its clip's ``start_ms`` and the speech ``onset_ms`` / ``end_ms`` inside
    it (milliseconds from the stream start); ``clip`` names the source file (may be empty)."""

    label: str
    start_ms: float
    onset_ms: float
    end_ms: float
    clip: str = ""


def write_words_file(path: str | Path, words: list[Word]) -> None:
    """Write the words as CSV (``label,start_ms,onset_ms,end_ms,clip`` with a header); refuses to overwrite."""
    with Path(path).open("x", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(WORDS_FILE_FIELDS)
        for w in words:
            writer.writerow([w.label, f"{w.start_ms:.4f}", f"{w.onset_ms:.4f}", f"{w.end_ms:.4f}", w.clip])


def read_words_file(path: str | Path) -> list[Word]:
    """Read a words CSV (see :func:`write_words_file`; ``clip`` may be missing), sorted by start."""
    path = Path(path)
    words = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in WORDS_FILE_FIELDS[:4] if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: expected the columns {', '.join(WORDS_FILE_FIELDS)}; missing {missing}")
        for number, row in enumerate(reader, start=2):
            try:
                start, onset, end = (float(row[k]) for k in ("start_ms", "onset_ms", "end_ms"))
                if not row["label"] or not start <= onset <= end:
                    raise ValueError
            except (ValueError, TypeError):
                raise ValueError(f"{path}:{number}: expected label and start_ms <= onset_ms <= end_ms, got {row}") from None
            words.append(Word(row["label"].strip(), start, onset, end, (row.get("clip") or "").strip()))
    return sorted(words, key=lambda w: w.start_ms)


@dataclass
class KeywordStats:
    """What :func:`keyword_accuracy` found. Counts of words: ``keyword_words``, ``correct``, ``wrong``,
    ``missed``, ``unknown_words``, ``unknown_accepted`` (non-keyword words with a detection); counts of
    detections: ``false_accepts`` (on non-keyword words), ``false_alarms`` (near no word), ``extra`` (further
    detections of a word after its first). ``delays_ms``: speech end -> first correct detection, per correct
    word; ``outcomes``: per word, ``correct``/``wrong``/``missed`` or, for ``_unknown_``, ``accepted``/``rejected``;
    ``assigned``: per detection, the index of its word or None."""

    keyword_words: int
    correct: int
    wrong: int
    missed: int
    unknown_words: int
    unknown_accepted: int
    false_accepts: int
    false_alarms: int
    extra: int
    delays_ms: list[float]
    outcomes: list[str]
    assigned: list[int | None]

    def percent(self, count: int) -> float:
        """``count`` as a percentage of the keyword words (0 when there are none)."""
        return 100.0 * count / self.keyword_words if self.keyword_words else 0.0

    @property
    def recall(self) -> float:
        """Percent of the keyword words detected with their own label."""
        return self.percent(self.correct)

    @property
    def wrong_percent(self) -> float:
        """Percent of the keyword words detected only with another label."""
        return self.percent(self.wrong)

    @property
    def missed_percent(self) -> float:
        return self.percent(self.missed)

    def delay_percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) of the delays in ms, None without correct words."""
        if not self.delays_ms:
            return None
        return float(np.percentile(np.asarray(self.delays_ms, dtype=np.float64), q))

    @property
    def median_delay_ms(self) -> float | None:
        return self.delay_percentile(50.0)


def keyword_accuracy(
    words: list[Word], detections: list[LabelledTime], late_ms: float = 1000.0, unknown_label: str = UNKNOWN_LABEL
) -> KeywordStats:
    """Score ``detections`` (``time_ms``: when each was made) against ``words`` (see the module docstring)."""
    order = sorted(range(len(words)), key=lambda i: words[i].start_ms)
    starts = [words[i].start_ms for i in order]
    firsts: dict[int, float] = {}  # word -> time of its first correct detection
    hits: dict[int, list[str]] = {}  # word -> labels of the detections that belong to it
    assigned: list[int | None] = [None] * len(detections)
    false_alarms = 0
    for d in sorted(range(len(detections)), key=lambda i: detections[i].time_ms):
        found = detections[d]
        # words that started at or before the detection and whose late limit it does not pass
        last = int(np.searchsorted(starts, found.time_ms, side="right"))
        candidates = [order[k] for k in range(last - 1, -1, -1) if found.time_ms <= words[order[k]].end_ms + late_ms]
        candidates = [w for w in candidates if words[w].start_ms <= found.time_ms]
        if not candidates:
            false_alarms += 1
            continue
        same = [w for w in candidates if words[w].label == found.label and w not in firsts]
        chosen = same[0] if same else candidates[0]  # candidates run from the latest start backwards
        assigned[d] = chosen
        hits.setdefault(chosen, []).append(found.label)
        if words[chosen].label == found.label and chosen not in firsts:
            firsts[chosen] = found.time_ms
    outcomes, delays = [], []
    correct = wrong = missed = unknown_words = unknown_accepted = false_accepts = extra = 0
    for i, word in enumerate(words):
        labels = hits.get(i, [])
        extra += max(0, len(labels) - 1)
        if word.label == unknown_label:
            unknown_words += 1
            false_accepts += len(labels)
            unknown_accepted += bool(labels)
            outcomes.append("accepted" if labels else "rejected")
        elif i in firsts:
            correct += 1
            delays.append(firsts[i] - word.end_ms)
            outcomes.append("correct")
        elif labels:
            wrong += 1
            outcomes.append("wrong")
        else:
            missed += 1
            outcomes.append("missed")
    return KeywordStats(
        keyword_words=len(words) - unknown_words,
        correct=correct,
        wrong=wrong,
        missed=missed,
        unknown_words=unknown_words,
        unknown_accepted=unknown_accepted,
        false_accepts=false_accepts,
        false_alarms=false_alarms,
        extra=extra,
        delays_ms=delays,
        outcomes=outcomes,
        assigned=assigned,
    )


def per_hour(count: int, seconds: float) -> float:
    """``count`` events in ``seconds`` of audio, scaled to one hour."""
    if seconds <= 0:
        raise ValueError(f"the stream must be longer than 0 s, got {seconds}")
    return count * 3600.0 / seconds


@dataclass
class FalseAccepts:
    """Detections on a stream of non-keyword speech: ``count`` in ``seconds`` of audio holding ``words`` words."""

    count: int
    words: int
    seconds: float

    @property
    def per_hour(self) -> float:
        return per_hour(self.count, self.seconds)

    @property
    def per_word(self) -> float:
        """Detections per non-keyword word (0 without words)."""
        return self.count / self.words if self.words else 0.0


def false_accepts(detections: int, words: int, seconds: float) -> FalseAccepts:
    """Every detection on a stream of ``words`` non-keyword words (``seconds`` long) is a false accept."""
    return FalseAccepts(int(detections), int(words), float(seconds))
