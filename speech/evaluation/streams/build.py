"""Generated test streams, scored once: the model runs once per stream and every hop's scores are kept.

Detections for any detector settings are then replayed from the stored scores
(:func:`speech.streaming.detection.replay`, exactly what the live engine would report), so figures, a threshold
sweep or a calibration cost no further model calls. Three streams (:class:`StreamSet`):

* ``keywords``: TensorFlow's test stream: a word every 3 s, ``unknown_share`` % of them non-keywords, noise;
* ``non_keywords``: the same, with non-keyword words only (false accepts on speech);
* ``noise``: the background alone (false alarms on speech-free noise).

Times are seconds in the stored scores (milliseconds in the figures, as in :mod:`speech.evaluation.streams.matching`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from speech.data.labels import UNKNOWN_LABEL
from speech.evaluation.errors import EvaluationError
from speech.evaluation.streams.matching import Word
from speech.evaluation.streams.recording import LongRecording, generate_long_recording, noise_recording
from speech.evaluation.streams.source import StreamClips, StreamSource
from speech.streaming.detection import (
    NEVER_REPORTED,
    Detection,
    DetectorConfig,
    SmoothedScores,
    replay,
    smooth_scores,
)
from speech.streaming.engine import StreamingConfig, StreamingRecogniser, stream_array
from speech.utils.timing import Stopwatch


@dataclass
class StreamSpec:
    """How the streams are generated: lengths in minutes (``unknown_minutes``/``noise_minutes`` default to
    ``minutes``; ``unknown_minutes=0``: no non-keyword stream), the share of non-keywords in the keyword stream
    (%), the noise volume drawn from U(0, ``background_volume``), the ``seed`` of all three streams, and
    ``late_ms``: how long after a word's speech ends a detection still belongs to it."""

    minutes: float = 10.0
    unknown_minutes: float | None = None
    noise_minutes: float | None = None
    unknown_share: float = 30.0
    background_volume: float = 0.1
    seed: int = 0
    late_ms: float = 1000.0

    def lengths(self) -> tuple[float, float, float]:
        """``(keyword, non-keyword, noise)`` stream minutes; raises :class:`EvaluationError` (``param``
        ``"minutes"``) unless positive (the non-keyword stream may be 0)."""
        minutes = self.minutes
        unknown = minutes if self.unknown_minutes is None else self.unknown_minutes
        noise = minutes if self.noise_minutes is None else self.noise_minutes
        check_stream_minutes(minutes, unknown, noise)
        return minutes, unknown, noise

    def build(self, scorer, config: StreamingConfig, source: StreamSource) -> StreamSet:
        """Generate the three streams from ``source`` and score them (:func:`build_streams`)."""
        minutes, unknown_minutes, noise_minutes = self.lengths()
        return build_streams(scorer, config, source.clips, source.noise, minutes=minutes,
                             unknown_minutes=unknown_minutes, noise_minutes=noise_minutes,
                             unknown_share=self.unknown_share, background_volume=self.background_volume,
                             seed=self.seed)


@dataclass
class ScoredStream:
    """One test stream after the model ran on it: ``times`` (n,) window ends in s, ``scores`` (n, classes)
    (gated windows score as ``_silence_``), the stream's ``words`` and its length in ``seconds``."""

    name: str
    seconds: float
    words: list[Word]
    times: np.ndarray
    scores: np.ndarray
    window_seconds: float = 1.0
    wall_seconds: float = 0.0
    windows_gated: int = 0
    _smoothed: dict = field(default_factory=dict, repr=False)

    @property
    def keyword_words(self) -> int:
        return sum(w.label != UNKNOWN_LABEL for w in self.words)

    def smoothed(self, labels: list[str], config: DetectorConfig) -> SmoothedScores:
        """The averaged scores for ``config``'s averaging settings (computed once per setting)."""
        key = (config.average_window_ms, config.minimum_count, config.keyword_share, config.quick_average_ms,
               config.talk_before is not None, config.talk_before_ms)
        if key not in self._smoothed:
            self._smoothed[key] = smooth_scores(self.times, self.scores, config, labels)
        return self._smoothed[key]

    def detections(self, labels: list[str], config: DetectorConfig) -> list[Detection]:
        """What the engine reports on this stream with detector settings ``config``."""
        return replay(labels, self.smoothed(labels, config), config)


def score_stream(scorer, config: StreamingConfig, wave: np.ndarray, name: str, words: list[Word]) -> ScoredStream:
    """Run ``wave`` (16 kHz float32) through a fresh engine and keep every hop's scores."""
    hops = []
    engine = StreamingRecogniser(scorer, config, input_rate=16_000, on_hop=hops.append)
    with Stopwatch() as watch:
        stream_array(engine, wave)
    wall = watch.seconds
    n = len(scorer.labels)
    times = np.array([h.time for h in hops], dtype=np.float64)
    scores = np.stack([h.scores for h in hops]).astype(np.float32) if hops else np.zeros((0, n), np.float32)
    return ScoredStream(name, wave.shape[0] / 16_000, words, times, scores, engine.window_seconds, wall,
                        engine.windows_gated)


@dataclass
class StreamSet:
    """The scored streams of one evaluation and what they were built from (``info``)."""

    keywords: ScoredStream
    non_keywords: ScoredStream | None
    noise: ScoredStream
    recording: LongRecording | None = None  # the keyword stream's audio and words (to write it out)
    info: dict = field(default_factory=dict)
    running: object | None = None  # speech.evaluation.streams.running.RunningStream: running speech (issue #18)

    def streams(self) -> list[ScoredStream]:
        return [s for s in (self.keywords, self.non_keywords, self.noise) if s is not None]


JOIN_GAP_S = 10.0  # between joined streams: longer than any averaging, suppression or late window


def join_streams(parts: list[ScoredStream], gap_s: float = JOIN_GAP_S) -> ScoredStream:
    """One stream of ``parts`` played one after the other with ``gap_s`` seconds between them: the hop times and
    the words' times of each part moved by the seconds before it. The gap keeps a part's averaging, suppression
    and late window from reaching into the next; replaying the joined stream gives each part's detections."""
    if not parts:
        raise ValueError("nothing to join")
    if len(parts) == 1:
        return parts[0]
    words, times, scores, offset = [], [], [], 0.0
    for part in parts:
        ms = 1000.0 * offset
        words += [replace(w, start_ms=w.start_ms + ms, onset_ms=w.onset_ms + ms, end_ms=w.end_ms + ms) for w in part.words]
        times.append(part.times + offset)
        scores.append(part.scores)
        offset += part.seconds + gap_s
    first = parts[0]
    return ScoredStream(first.name, offset - gap_s, words, np.concatenate(times), np.concatenate(scores),
                        first.window_seconds, sum(p.wall_seconds for p in parts), sum(p.windows_gated for p in parts))


def join_stream_sets(sets: list[StreamSet]) -> StreamSet:
    """The streams of several :class:`StreamSet` (e.g. the held-out speakers of several folders) joined kind by kind
    (:func:`join_streams`); the first set's ``running`` stream, ``recording`` and ``info`` are kept."""
    first = sets[0]
    non_keywords = [s.non_keywords for s in sets if s.non_keywords is not None]
    return StreamSet(join_streams([s.keywords for s in sets]), join_streams(non_keywords) if non_keywords else None,
                     join_streams([s.noise for s in sets]), first.recording, first.info, first.running)


def check_stream_minutes(minutes: float, unknown_minutes: float, noise_minutes: float) -> None:
    """Refuse stream lengths that are not positive minutes (:class:`EvaluationError`, ``param`` ``"minutes"``); the
    non-keyword stream may be 0 (no such stream)."""
    if minutes <= 0 or noise_minutes <= 0 or unknown_minutes < 0:
        raise EvaluationError(f"stream lengths must be positive minutes, got minutes {minutes}, unknown_minutes "
                              f"{unknown_minutes}, noise_minutes {noise_minutes}", param="minutes")


def build_streams(
    scorer,
    config: StreamingConfig,
    clips: StreamClips,
    noise: np.ndarray,
    *,
    minutes: float,
    unknown_minutes: float,
    noise_minutes: float,
    unknown_share: float = 30.0,
    background_volume: float = 0.1,
    seed: int = 0,
) -> StreamSet:
    """Generate the three streams from ``clips`` over ``noise`` (1-D float32 at 16 kHz) and score them.

    ``minutes``/``unknown_minutes``/``noise_minutes``: stream lengths (``unknown_minutes=0`` or no non-keyword
    clips: no non-keyword stream). The keyword stream's non-keywords are the partition's ``_unknown_`` clips; the
    non-keyword stream draws from those and ``clips.negatives``. One generator seeded with ``seed`` draws all
    three streams, in that order.
    """
    keywords = [label for label in scorer.labels if label not in NEVER_REPORTED]
    if not any(clips.keywords.get(k) for k in keywords):
        raise EvaluationError(f"no clips of the model's keywords {keywords} to build the stream from", param="split")
    check_stream_minutes(minutes, unknown_minutes, noise_minutes)
    rng = np.random.default_rng(seed)
    pools = {k: v for k, v in clips.keywords.items() if k in keywords}
    if clips.unknown:
        pools[UNKNOWN_LABEL] = clips.unknown
    recording = generate_long_recording(pools, noise, minutes * 60.0, rng, unknown_percentage=unknown_share,
                                        background_volume=background_volume)
    main = score_stream(scorer, config, recording.wave, "keywords", recording.spans())
    others = None
    non_keywords = clips.unknown + clips.negatives
    if non_keywords and unknown_minutes > 0:
        unknown = generate_long_recording({UNKNOWN_LABEL: non_keywords}, noise, unknown_minutes * 60.0, rng,
                                          unknown_percentage=100.0, background_volume=background_volume)
        others = score_stream(scorer, config, unknown.wave, "non_keywords", unknown.spans())
    quiet = noise_recording(noise, noise_minutes * 60.0, rng, background_volume)
    noise_stream = score_stream(scorer, config, quiet, "noise", [])
    used = {w.clip for s in (main, others) if s is not None for w in s.words}
    info = {
        "keyword_clips": clips.keyword_clips,
        "unknown_clips": len(clips.unknown),
        "negative_clips": len(clips.negatives),
        "noise_clips": len(clips.silence),
        "speakers": len(clips.speakers),
        "clips_in_streams": len(used),
        "unknown_clips_in_stream": len({w.clip for w in others.words}) if others is not None else 0,
        "stream_seed": seed,
        "unknown_share": unknown_share,
        "background_volume": background_volume,
    }
    return StreamSet(main, others, noise_stream, recording, info)
