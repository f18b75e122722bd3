"""Streaming evaluation: test streams built from a data split, their stored per-hop scores, and the figures.

The model runs once per stream (:func:`score_stream` keeps every hop's time and class scores); detections for
any detector settings are then replayed from the stored scores (:func:`speech.streaming.detection.replay`,
exactly what the live engine would report), so a threshold sweep or a calibration costs no further model
calls. Three streams (:class:`StreamSet`):

* ``keywords``: TensorFlow's test stream: a word every 3 s, ``unknown_share`` % of them non-keywords, noise;
* ``non_keywords``: the same, with non-keyword words only (false accepts on speech);
* ``noise``: the background alone (false alarms on speech-free noise).

Times are seconds in the stored scores and milliseconds in the figures, as in :mod:`speech.evaluation.streams.matching`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL
from speech.evaluation.errors import EvaluationError
from speech.evaluation.eval_set import partition_examples
from speech.evaluation.streams.matching import (
    LabelledTime,
    Word,
    false_accepts,
    keyword_accuracy,
    per_hour,
    streaming_accuracy,
    window_start_ms,
)
from speech.evaluation.streams.recording import LongRecording, generate_long_recording, noise_recording
from speech.plots import new_figure
from speech.streaming.detection import (
    NEVER_REPORTED,
    Detection,
    DetectorConfig,
    SmoothedScores,
    replay,
    smooth_scores,
    threshold_config,
)
from speech.streaming.engine import StreamingConfig, StreamingRecogniser, stream_array
from speech.timing import Stopwatch

log = logging.getLogger(__name__)

SWEEP_THRESHOLDS = tuple(round(0.30 + 0.01 * i, 2) for i in range(70))  # 0.30 .. 0.99


@dataclass
class StreamClips:
    """The clips a partition offers for test streams: ``keywords`` (label -> paths), ``unknown`` (non-keyword
    word clips), ``silence`` (speech-free ``_silence_`` clips, for the background) and the ``speakers``;
    ``negatives``: more non-keyword clips from other folders, for the non-keyword stream only."""

    keywords: dict[str, list[str]]
    unknown: list[str]
    silence: list[str]
    speakers: set[str]
    examples: list = field(default_factory=list)  # speech.data.Example, all clips above
    negatives: list[str] = field(default_factory=list)

    @property
    def keyword_clips(self) -> int:
        return sum(len(v) for v in self.keywords.values())


def partition_clips(index, partition: str) -> StreamClips:
    """The clips of ``partition`` (``test``/``validation``/``train``/``all``) of a :class:`speech.data.DatasetIndex`
    (files only: generated silence has none); :class:`EvaluationError` for an empty partition."""
    keywords: dict[str, list[str]] = {}
    unknown, silence, examples, speakers = [], [], [], set()
    for ex in partition_examples(index, partition):
        if ex.path is None:
            continue
        label = index.labels[ex.label]
        examples.append(ex)
        if ex.speaker:
            speakers.add(ex.speaker)
        if label == UNKNOWN_LABEL:
            unknown.append(ex.path)
        elif label == SILENCE_LABEL:
            silence.append(ex.path)
        else:
            keywords.setdefault(label, []).append(ex.path)
    return StreamClips(keywords, unknown, silence, speakers, examples)


HALVES = ("a", "b", "all")


@dataclass
class NegativeClips:
    """Non-keyword speech from other folders: clip ``paths``, their ``speakers``, the ``roots`` and speaker
    ``half`` they came from, and how many clips were left out because their speaker was trained on."""

    paths: list[str]
    speakers: set[str]
    roots: list[str]
    half: str
    left_out_trained: int = 0

    def describe(self) -> dict:
        return {"roots": list(self.roots), "half": self.half, "clips": len(self.paths),
                "speakers": len(self.speakers), "clips_of_training_speakers_left_out": self.left_out_trained}


def speaker_half(speaker: str) -> str:
    """``"a"`` or ``"b"``: a fixed half of all speaker ids (TensorFlow's SHA-1 bucket below or above 50 %)."""
    from speech.data.splits import hash_percentage

    return "a" if hash_percentage(speaker) < 50.0 else "b"


def negative_clips(roots: list[str | Path], labels: list[str], half: str = "all",
                   training_speakers: set[str] | frozenset = frozenset()) -> NegativeClips:
    """Every clip under ``roots`` whose word is none of ``labels`` (``_unknown_`` clips of a test-set folder
    included, ``_silence_`` left out), of speakers in ``half`` (``a``/``b``: :func:`speaker_half`; ``all``) and
    not in ``training_speakers``. Clips without a speaker id are left out (they cannot be checked)."""
    from speech.data.index import parse_clip_name
    from speech.data.scan import scan_folder

    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    paths, speakers, trained = [], set(), 0
    for root in roots:
        scan = scan_folder(root)
        for folder, names in sorted(scan.clips.items()):
            if folder == SILENCE_LABEL:
                continue
            for name in names:
                word, speaker = parse_clip_name(folder, name)
                if word in labels or not speaker or (half != "all" and speaker_half(speaker) != half):
                    continue
                if speaker in training_speakers:
                    trained += 1
                    continue
                paths.append(str(Path(scan.root) / folder / name))
                speakers.add(speaker)
    if roots and not paths:
        raise EvaluationError(f"no non-keyword clips of unseen speakers in half {half!r} of {', '.join(map(str, roots))}",
                              param="negatives")
    return NegativeClips(paths, speakers, [str(Path(r).resolve()) for r in roots], half, trained)


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

    def smoothed(self, config: DetectorConfig) -> SmoothedScores:
        """The averaged scores for ``config``'s averaging settings (computed once per setting)."""
        key = (config.average_window_ms, config.minimum_count)
        if key not in self._smoothed:
            self._smoothed[key] = smooth_scores(self.times, self.scores, config)
        return self._smoothed[key]

    def detections(self, labels: list[str], config: DetectorConfig) -> list[Detection]:
        """What the engine reports on this stream with detector settings ``config``."""
        return replay(labels, self.smoothed(config), config)


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


def rounded(value, digits: int = 3):
    """Floats to ``digits`` decimals for reports; anything else unchanged."""
    return round(value, digits) if isinstance(value, float) else value


def keyword_thresholds(config: DetectorConfig, labels: list[str]) -> dict[str, float]:
    """The threshold each keyword (labels other than ``_silence_``/``_unknown_``) must exceed under ``config``."""
    return {label: config.threshold_for(label) for label in labels if label not in NEVER_REPORTED}


@dataclass(frozen=True)
class StreamFigures:
    """Every figure of one detector setting on a :class:`StreamSet` (see :mod:`speech.evaluation.streams.matching`).

    Percentages are 0..100; ``*_per_hour`` are counts scaled to one hour; delays are ms from the end of the word.
    The keyword stream: ``keyword_*``, delays, counts of its words, correct and wrong detections, extra detections
    (false accepts on its non-keywords, false alarms between words). The non-keyword stream (None, 0 or ``[]``
    without one): false accepts, their rate per hour and per word, and the clips most accepted. The noise stream:
    false alarms. ``tf_*``: TensorFlow's ``StreamingAccuracyStats`` on the keyword stream (percent of all its
    words). :meth:`to_json` is the reports' form (the field names as keys, floats rounded).
    """

    keyword_recall: float
    keyword_wrong: float
    keyword_missed: float
    median_delay_ms: float | None
    p90_delay_ms: float | None
    keyword_words: int
    keywords_correct: int
    keywords_wrong: int
    detections: int
    extra_detections: int
    false_accepts_in_keyword_stream: int
    false_alarms_in_keyword_stream: int
    false_accepts: int | None
    false_accepts_per_hour: float | None
    false_accepts_per_word: float | None
    non_keyword_words: int
    false_accept_distinct_clips: int | None
    false_accept_clips: list[dict]  # the ten most accepted: {"clip": file name, "as": label, "times": n}
    false_alarms: int
    false_alarms_per_hour: float
    tf_matched: float
    tf_correct: float
    tf_wrong: float
    tf_false_positive: float

    def to_json(self, digits: int = 3) -> dict:
        """The figures as the reports write them: one key per field, floats rounded to ``digits`` decimals."""
        return {key: rounded(value, digits) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, values: dict) -> StreamFigures:
        """The figures of a report written by :meth:`to_json` (other keys of the report are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})


def figures(
    streams: StreamSet,
    labels: list[str],
    config: DetectorConfig,
    tolerance_ms: float = 750.0,
    late_ms: float = 1000.0,
) -> StreamFigures:
    """Every figure of one detector setting on ``streams``, replayed from the stored scores."""
    found = streams.keywords.detections(labels, config)
    made = [LabelledTime(d.label, 1000.0 * d.time) for d in found]
    stats = keyword_accuracy(streams.keywords.words, made, late_ms)
    window_s = streams.keywords.window_seconds
    tf = streaming_accuracy(
        [LabelledTime(w.label, w.start_ms) for w in streams.keywords.words],
        [LabelledTime(d.label, window_start_ms(d.time, window_s)) for d in found],
        tolerance_ms,
    ).summary()
    non_keyword = dict(false_accepts=None, false_accepts_per_hour=None, false_accepts_per_word=None,
                       non_keyword_words=0, false_accept_distinct_clips=None, false_accept_clips=[])
    if streams.non_keywords is not None:
        s = streams.non_keywords
        accepted = s.detections(labels, config)
        fa = false_accepts(len(accepted), len(s.words), s.seconds)
        on_words = keyword_accuracy(s.words, [LabelledTime(d.label, 1000.0 * d.time) for d in accepted], late_ms)
        offenders = Counter(
            (Path(s.words[w].clip).name, accepted[i].label) for i, w in enumerate(on_words.assigned) if w is not None
        )
        non_keyword = dict(
            false_accepts=fa.count,
            false_accepts_per_hour=fa.per_hour,
            false_accepts_per_word=fa.per_word,
            non_keyword_words=fa.words,
            false_accept_distinct_clips=len({clip for clip, _ in offenders}),
            false_accept_clips=[{"clip": clip, "as": label, "times": n} for (clip, label), n in offenders.most_common(10)],
        )
    alarms = len(streams.noise.detections(labels, config))
    return StreamFigures(
        keyword_recall=stats.recall,
        keyword_wrong=stats.wrong_percent,
        keyword_missed=stats.missed_percent,
        median_delay_ms=stats.median_delay_ms,
        p90_delay_ms=stats.delay_percentile(90.0),
        keyword_words=stats.keyword_words,
        keywords_correct=stats.correct,
        keywords_wrong=stats.wrong,
        detections=len(found),
        extra_detections=stats.extra,
        false_accepts_in_keyword_stream=stats.false_accepts,
        false_alarms_in_keyword_stream=stats.false_alarms,
        **non_keyword,
        false_alarms=alarms,
        false_alarms_per_hour=per_hour(alarms, streams.noise.seconds),
        **{f"tf_{k}": v for k, v in tf.items()},
    )


def sweep(
    streams: StreamSet,
    labels: list[str],
    base: DetectorConfig,
    thresholds: tuple[float, ...] = SWEEP_THRESHOLDS,
    late_ms: float = 1000.0,
) -> list[dict]:
    """Figures for one threshold per row (the same for all labels, :func:`threshold_config`), from the stored scores.

    Rows (ascending threshold): ``threshold``, ``keyword_recall``, ``keyword_wrong`` (%),
    ``false_accepts_per_hour``, ``false_accepts_per_word``, ``false_alarms_per_hour``, ``median_delay_ms``.
    """
    rows = []
    for t in sorted(thresholds):
        f = figures(streams, labels, threshold_config(base, t), late_ms=late_ms)
        rows.append({"threshold": float(t), **{k: getattr(f, k) for k in SWEEP_COLUMNS[1:]}})
    return rows


SWEEP_COLUMNS = ("threshold", "keyword_recall", "keyword_wrong", "false_accepts_per_hour", "false_accepts_per_word",
                 "false_alarms_per_hour", "median_delay_ms")


def write_sweep_csv(path: str | Path, rows: list[dict]) -> None:
    """The sweep as CSV (one row per threshold); refuses to overwrite."""
    with Path(path).open("x", encoding="utf-8") as f:
        f.write(",".join(SWEEP_COLUMNS) + "\n")
        for row in rows:
            f.write(",".join("" if row[k] is None else f"{row[k]:.6g}" for k in SWEEP_COLUMNS) + "\n")


def plot_det(
    path: str | Path,
    rows: list[dict],
    *,
    points: dict[str, StreamFigures] | None = None,
    title: str = "",
) -> Path:
    """Draw the DET curve (miss rate of keywords vs false accepts per hour on non-keyword speech) to a PNG.

    ``rows``: :func:`sweep` output (needs ``false_accepts_per_hour``); ``points``: named operating points (e.g.
    ``{"calibrated": figures}``, :class:`StreamFigures`) drawn as markers. Refuses to overwrite ``path``.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    xs = [r["false_accepts_per_hour"] for r in rows]
    if any(x is None for x in xs):
        raise EvaluationError("the DET curve needs a non-keyword stream (false accepts per hour)", param="minutes")
    ys = [100.0 - r["keyword_recall"] for r in rows]
    fig = new_figure(6.4, 4.8, dpi=120)
    ax = fig.subplots()
    ax.plot(xs, ys, "-", color="tab:blue", lw=1.5, label="one threshold for all keywords")
    for r, x, y in zip(rows, xs, ys, strict=True):
        if abs(r["threshold"] * 10 - round(r["threshold"] * 10)) < 1e-6:  # label 0.3, 0.4, ... 0.9
            ax.plot([x], [y], "o", color="tab:blue", ms=3)
            ax.annotate(f"{r['threshold']:.1f}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    markers = iter(("*", "s", "D", "^"))
    for name, f in (points or {}).items():
        if f.false_accepts_per_hour is None:
            continue
        ax.plot([f.false_accepts_per_hour], [100.0 - f.keyword_recall], next(markers, "o"), ms=10,
                label=f"{name}: recall {f.keyword_recall:.1f} %, {f.false_accepts_per_hour:.1f} FA/h")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("false accepts per hour on non-keyword speech")
    ax.set_ylabel("keywords missed or wrong (%)  = 100 - recall")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
