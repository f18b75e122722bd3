"""The figures of generated test streams under one detector setting, replayed from their stored scores.

:func:`figures` gives a :class:`StreamFigures` (keyword recall, wrong and missed keywords, delays, false accepts
on non-keyword speech, false alarms on noise, TensorFlow's streaming figures); :func:`sweep` the figures of one
threshold for all keywords from 0.30 to 0.99, written by :func:`write_sweep_csv` as measured and drawn by
:func:`plot_det` as a DET curve: :func:`det_curve`, the lower envelope of the sweep's points (the detector's
averaging and suppression do not make false accepts fall with every step of the threshold). Times are
milliseconds, as in :mod:`speech.evaluation.streams.matching`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from speech.evaluation.errors import EvaluationError
from speech.evaluation.streams.build import StreamSet
from speech.evaluation.streams.matching import (
    LabelledTime,
    false_accepts,
    keyword_accuracy,
    per_hour,
    streaming_accuracy,
    window_start_ms,
)
from speech.streaming.detection import NEVER_REPORTED, DetectorConfig, threshold_config
from speech.utils.plots import new_figure

SWEEP_THRESHOLDS = tuple(round(0.30 + 0.01 * i, 2) for i in range(70))  # 0.30 .. 0.99


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
    words). ``per_keyword``: per keyword of the keyword stream, its ``words`` and the percent ``recall`` and
    ``wrong`` among them. :meth:`to_json` is the reports' form (the field names as keys, floats rounded).
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
    per_keyword: dict[str, dict] = field(default_factory=dict)

    def to_json(self, digits: int = 3) -> dict:
        """The figures as the reports write them: one key per field, floats rounded to ``digits`` decimals."""
        per_keyword = {k: {key: rounded(v, digits) for key, v in row.items()} for k, row in self.per_keyword.items()}
        return {key: rounded(value, digits) for key, value in asdict(self).items()} | {"per_keyword": per_keyword}

    @classmethod
    def from_json(cls, values: dict) -> StreamFigures:
        """The figures of a report written by :meth:`to_json` (other keys of the report are ignored; fields that
        older reports lack take their defaults)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values or f.default_factory is MISSING})


def keyword_breakdown(words, outcomes: list[str]) -> dict[str, dict]:
    """Per keyword (alphabetical): how many of its words the stream holds, and the percent caught and wrong."""
    rows: dict[str, Counter] = {}
    for word, outcome in zip(words, outcomes, strict=True):
        if outcome in ("correct", "wrong", "missed"):
            rows.setdefault(word.label, Counter())[outcome] += 1
    breakdown = {}
    for label, counts in sorted(rows.items()):
        words = sum(counts.values())
        breakdown[label] = {"words": words, "recall": 100.0 * counts["correct"] / words,
                            "wrong": 100.0 * counts["wrong"] / words}
    return breakdown


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
        per_keyword=keyword_breakdown(streams.keywords.words, stats.outcomes),
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
    ``false_accepts_per_hour``, ``false_accepts_per_word``, ``false_alarms_per_hour``, ``median_delay_ms``, and
    ``per_keyword_recall`` (percent caught of each keyword's words; in the JSON reports, not in the CSV).
    """
    rows = []
    for t in sorted(thresholds):
        f = figures(streams, labels, threshold_config(base, t), late_ms=late_ms)
        rows.append({"threshold": float(t), **{k: getattr(f, k) for k in SWEEP_COLUMNS[1:]},
                     "per_keyword_recall": {label: round(row["recall"], 3) for label, row in f.per_keyword.items()}})
    return rows


SWEEP_COLUMNS = ("threshold", "keyword_recall", "keyword_wrong", "false_accepts_per_hour", "false_accepts_per_word",
                 "false_alarms_per_hour", "median_delay_ms")


def write_sweep_csv(path: str | Path, rows: list[dict]) -> None:
    """The sweep as CSV (one row per threshold); refuses to overwrite."""
    with Path(path).open("x", encoding="utf-8") as f:
        f.write(",".join(SWEEP_COLUMNS) + "\n")
        for row in rows:
            f.write(",".join("" if row[k] is None else f"{row[k]:.6g}" for k in SWEEP_COLUMNS) + "\n")


def det_curve(rows: list[dict], x_key: str = "false_accepts_per_hour") -> list[dict]:
    """The DET curve of a sweep: the rows no other row beats on both axes (as few or fewer false accepts per hour,
    ``x_key``, and as high or higher keyword recall, one of them strictly), by false accepts ascending.

    The lower envelope of the operating points, as DET tools draw it: each point is a threshold that was measured,
    and along the curve the missed keywords fall as the false accepts rise. The raw sweep need not be monotone:
    with averaging, suppression and release a higher threshold can split one detection into two, or let a false
    keyword through that an ``_unknown_`` win suppressed at a lower one. Rows without ``x_key`` are left out."""
    points = sorted((r for r in rows if r.get(x_key) is not None),
                    key=lambda r: (r[x_key], -r["keyword_recall"], r["threshold"]))
    curve: list[dict] = []
    for r in points:  # by false accepts, then best recall first: keep a row only if it beats every row kept
        if not curve or r["keyword_recall"] > curve[-1]["keyword_recall"]:
            curve.append(r)
    return curve


def det_axes(ax, xlabel: str, title: str = "") -> None:
    """The DET figures' axes: false accepts per hour (``xlabel``) on a scale linear to 1 and logarithmic above,
    missed-or-wrong keywords in percent, a grid and the legend."""
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("keywords missed or wrong (%)  = 100 - recall")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)


def plot_det(
    path: str | Path,
    rows: list[dict],
    *,
    points: dict[str, StreamFigures] | None = None,
    title: str = "",
) -> Path:
    """Draw the DET curve (miss rate of keywords vs false accepts per hour on non-keyword speech) to a PNG: the
    sweep's lower envelope (:func:`det_curve`) as the line, every threshold's own point as a grey dot.

    ``rows``: :func:`sweep` output (needs ``false_accepts_per_hour``); ``points``: named operating points (e.g.
    ``{"calibrated": figures}``, :class:`StreamFigures`) drawn as markers. Refuses to overwrite ``path``.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    if any(r["false_accepts_per_hour"] is None for r in rows):
        raise EvaluationError("the DET curve needs a non-keyword stream (false accepts per hour)", param="minutes")
    curve = det_curve(rows)
    fig = new_figure(6.4, 4.8, dpi=120)
    ax = fig.subplots()
    ax.plot([r["false_accepts_per_hour"] for r in rows], [100.0 - r["keyword_recall"] for r in rows], ".",
            color="0.6", ms=3, label="each threshold, as measured")
    ax.plot([r["false_accepts_per_hour"] for r in curve], [100.0 - r["keyword_recall"] for r in curve], "-",
            color="tab:blue", lw=1.5, label="one threshold for all keywords (lower envelope)")
    for r in curve:
        if abs(r["threshold"] * 10 - round(r["threshold"] * 10)) < 1e-6:  # label 0.3, 0.4, ... 0.9 on the curve
            x, y = r["false_accepts_per_hour"], 100.0 - r["keyword_recall"]
            ax.plot([x], [y], "o", color="tab:blue", ms=3)
            ax.annotate(f"{r['threshold']:.1f}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    markers = iter(("*", "s", "D", "^"))
    for name, f in (points or {}).items():
        if f.false_accepts_per_hour is None:
            continue
        ax.plot([f.false_accepts_per_hour], [100.0 - f.keyword_recall], next(markers, "o"), ms=10,
                label=f"{name}: recall {f.keyword_recall:.1f} %, {f.false_accepts_per_hour:.1f} FA/h")
    det_axes(ax, "false accepts per hour on non-keyword speech", title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
