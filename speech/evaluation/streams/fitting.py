"""Calibrated detection: per-keyword thresholds chosen on held-out speakers, stored in the model file.

:func:`calibrate` picks, from the stored scores of calibration streams (:mod:`speech.evaluation.streams.build`,
built from speakers the model never trained on), one threshold per keyword:

1. For every keyword ``k`` and every threshold ``t`` of a grid (0.50 .. 0.99), the streams are replayed with
   only ``k`` allowed to fire at ``t``. That gives ``k``'s correct detections and wrong ones (on other
   keywords' words) on the keyword stream, and its false accepts on the non-keyword stream and false alarms on
   the noise stream. Costs are made monotone: the cost at ``t`` is the largest cost at any threshold >= ``t``.
2. Budgets: ``floor(target per hour x hours of stream)`` false accepts on non-keyword speech and false alarms
   on noise, for all keywords together. With a running-speech stream (``StreamSet.running``, issue #18) the false
   accepts and their hours are those of the running speech (:mod:`speech.evaluation.streams.running`'s rule).
3. Greedy: all keywords start at "never" (1.0); the move (one keyword to a lower threshold) with the best gain
   (correct - ``wrong_weight`` x wrong) per unit of cost that stays within both budgets is taken, until no move
   gains.
4. Each threshold is then moved to the middle of the run of thresholds around it that give the same counts,
   halfway between the nearest keyword word it would lose and the nearest false accept it would add.
5. A keyword is never silently disabled: one that no threshold lets detect a word within the budgets gets the
   best threshold it can have (the one that finds its words at the fewest false accepts and alarms, centred as
   in step 4; the base threshold when no threshold finds any of its words), and is listed in ``over_target``:
   the report, the JSON, the stored section and ``speech live``'s banner name it.

``_silence_`` and ``_unknown_`` keep the base threshold (their wins only start the suppression time).

The result goes into the model's metadata under ``"detection"`` (:func:`store_detection`): a ``.ckpt`` (its
``"speech"`` entry) or an ``.onnx`` file (``metadata_props["speech"]``), written atomically to a new file or,
only when asked, in place. ``speech live`` and ``speech stream-test`` then use it by default
(:func:`speech.streaming.thresholds.detector_from_metadata`); ``--threshold`` overrides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from speech.errors import SettingError
from speech.evaluation.errors import EvaluationError
from speech.evaluation.streams.build import StreamSet
from speech.evaluation.streams.figures import SWEEP_THRESHOLDS, rounded
from speech.evaluation.streams.matching import LabelledTime, keyword_accuracy
from speech.streaming.detection import NEVER_REPORTED, DetectorConfig
from speech.streaming.engine import StreamingConfig
from speech.streaming.thresholds import NEVER, SECTION, detector_settings

SECTION_VERSION = 1


@dataclass
class KeywordTable:
    """Per threshold (``grid``, descending, ``NEVER`` first) for one keyword: ``correct`` and ``wrong`` words on
    the keyword stream, ``false_accepts`` on non-keyword speech and ``false_alarms`` on noise (monotone)."""

    keyword: str
    grid: list[float]
    correct: list[int]
    wrong: list[int]
    false_accepts: list[int]
    false_alarms: list[int]


@dataclass
class Calibration:
    """Chosen ``thresholds`` (keyword -> threshold), the targets, and the ``tables`` they came from."""

    thresholds: dict[str, float]
    target_false_accepts_per_hour: float
    target_false_alarms_per_hour: float
    budgets: dict[str, int]
    tables: list[KeywordTable] = field(default_factory=list)
    over_target: list[str] = field(default_factory=list)  # keywords whose threshold could not meet the targets


def keyword_table(streams: StreamSet, labels: list[str], base: DetectorConfig, keyword: str,
                  grid: list[float]) -> KeywordTable:
    """Replay ``streams`` with only ``keyword`` able to fire, at each threshold of ``grid`` (descending)."""
    keywords = [label for label in labels if label not in NEVER_REPORTED]
    correct, wrong, accepts, alarms = [], [], [], []
    for t in grid:
        config = replace(base, thresholds={k: (t if k == keyword else NEVER) for k in keywords})
        found = streams.keywords.detections(labels, config)
        stats = keyword_accuracy(streams.keywords.words, [LabelledTime(d.label, 1000.0 * d.time) for d in found])
        correct.append(stats.correct)
        wrong.append(stats.wrong)
        if streams.running is not None:  # running speech: its false accepts are the cost (issue #18)
            accepts.append(streams.running.false_accepts(labels, config))
        else:
            accepts.append(len(streams.non_keywords.detections(labels, config)) if streams.non_keywords else 0)
        alarms.append(len(streams.noise.detections(labels, config)))
    for costs in (accepts, alarms):  # cost at t = the worst cost at any threshold >= t
        for i in range(1, len(costs)):
            costs[i] = max(costs[i], costs[i - 1])
    return KeywordTable(keyword, list(grid), correct, wrong, accepts, alarms)


def choose_thresholds(tables: list[KeywordTable], fa_budget: int, alarm_budget: int,
                      wrong_weight: float = 1.0) -> dict[str, float]:
    """The greedy choice of step 3 (module docstring): keyword -> threshold (``NEVER`` when none pays off)."""
    at = {t.keyword: 0 for t in tables}  # index into each grid; 0 is NEVER
    used_fa = sum(t.false_accepts[0] for t in tables)
    used_alarms = sum(t.false_alarms[0] for t in tables)

    def gain(t: KeywordTable, i: int) -> float:
        return t.correct[i] - wrong_weight * t.wrong[i]

    while True:
        best = None  # (ratio, -index, keyword, index)
        for t in tables:
            i = at[t.keyword]
            for j in range(i + 1, len(t.grid)):
                extra_fa = t.false_accepts[j] - t.false_accepts[i]
                extra_alarms = t.false_alarms[j] - t.false_alarms[i]
                if used_fa + extra_fa > fa_budget or used_alarms + extra_alarms > alarm_budget:
                    break  # costs only grow further down the grid
                gained = gain(t, j) - gain(t, i)
                if gained <= 0:
                    continue
                ratio = gained / (extra_fa + extra_alarms + 0.5)
                candidate = (ratio, -j, t.keyword, j)
                if best is None or candidate[:2] > best[:2]:
                    best = candidate
        if best is None:
            break
        _, _, keyword, j = best
        t = next(t for t in tables if t.keyword == keyword)
        used_fa += t.false_accepts[j] - t.false_accepts[at[keyword]]
        used_alarms += t.false_alarms[j] - t.false_alarms[at[keyword]]
        at[keyword] = j
    return {t.keyword: float(t.grid[centre(t, at[t.keyword])]) for t in tables}


def pooled_false_accepts(tables: list[KeywordTable], weight: float) -> list[KeywordTable]:
    """``tables`` whose false accepts at each threshold are shrunk towards the mean of all keywords there:
    ``(own + weight x mean) / (1 + weight)``, the posterior mean of a keyword's count under a gamma prior centred
    on the keywords' mean, ``weight`` calibration sets strong (empirical Bayes).

    An hour of running speech sees a few false accepts in all; a keyword that happened to cause none there would
    otherwise fall to the lowest threshold and fire on other speakers (measured: per-keyword thresholds of 0.50-0.65
    and 4-8 false accepts per hour on the test readers for a target of 1). Shrunk, its low thresholds cost what the
    other keywords pay there, so the thresholds part from a common one only where the counts say so."""
    mean = [sum(t.false_accepts[i] for t in tables) / len(tables) for i in range(len(tables[0].grid))]
    return [replace(t, false_accepts=[(own + weight * m) / (1.0 + weight) for own, m in zip(t.false_accepts, mean,
                                                                                          strict=True)])
            for t in tables]


def best_over_target(table: KeywordTable, base_threshold: float, wrong_weight: float = 1.0) -> float:
    """The threshold of a keyword the budgets left at ``NEVER`` (step 5): of the grid points where it gains
    (correct - ``wrong_weight`` x wrong > 0), the one with the fewest false accepts + false alarms, then the most
    gain, centred; ``base_threshold`` when it gains nowhere."""
    gains = [c - wrong_weight * w for c, w in zip(table.correct, table.wrong, strict=True)]
    candidates = [j for j in range(1, len(table.grid)) if gains[j] > 0]
    if not candidates:  # the grid point nearest the base threshold
        return float(min(table.grid[1:], key=lambda g: abs(g - base_threshold)))
    best = min(candidates, key=lambda j: (table.false_accepts[j] + table.false_alarms[j], -gains[j], -table.grid[j]))
    return float(table.grid[centre(table, best)])


def centre(table: KeywordTable, i: int) -> int:
    """The middle of the run of grid points around ``i`` with the same counts as ``i`` (so the threshold sits
    halfway between the nearest changes in the calibration data); ``NEVER`` stays."""
    if i == 0:
        return 0

    def counts(j: int) -> tuple:
        return table.correct[j], table.wrong[j], table.false_accepts[j], table.false_alarms[j]

    lo = hi = i
    while lo - 1 > 0 and counts(lo - 1) == counts(i):
        lo -= 1
    while hi + 1 < len(table.grid) and counts(hi + 1) == counts(i):
        hi += 1
    return (lo + hi) // 2


def calibrate(
    streams: StreamSet,
    labels: list[str],
    base: DetectorConfig,
    *,
    target_false_accepts_per_hour: float = 1.0,
    target_false_alarms_per_hour: float = 0.5,
    grid: tuple[float, ...] = SWEEP_THRESHOLDS,
    min_threshold: float = 0.5,
    wrong_weight: float = 1.0,
    pooling: float = 0.0,
) -> Calibration:
    """Per-keyword thresholds on the calibration ``streams`` for the two targets (see the module docstring).

    ``min_threshold``: no keyword gets a lower threshold (a keyword that no calibration negative ever triggers
    would otherwise sink to the bottom of the grid on the strength of a few dozen clips). ``pooling``: the weight
    of the keywords' mean false accepts in each keyword's own (:func:`pooled_false_accepts`); 0: its own only."""
    if streams.non_keywords is None and streams.running is None:
        raise EvaluationError("calibration needs a stream of non-keyword speech (no _unknown_ clips in the split?)",
                              param="minutes")
    if target_false_accepts_per_hour < 0 or target_false_alarms_per_hour < 0:
        raise SettingError("the targets must be >= 0 per hour", param="targets")
    if pooling < 0:
        raise SettingError(f"pooling must be >= 0 (0: each keyword's own false accepts), got {pooling}",
                           param="pooling")
    descending = [NEVER] + sorted({float(g) for g in grid if min_threshold <= g < NEVER}, reverse=True)
    if len(descending) == 1:
        raise SettingError(f"no threshold of the grid is >= min_threshold {min_threshold}", param="min_threshold")
    keywords = [label for label in labels if label not in NEVER_REPORTED]
    tables = [keyword_table(streams, labels, base, k, descending) for k in keywords]
    fa_stream = streams.running if streams.running is not None else streams.non_keywords  # the budget's hours
    budgets = {
        "false_accepts": math.floor(target_false_accepts_per_hour * fa_stream.seconds / 3600.0 + 1e-9),
        "false_alarms": math.floor(target_false_alarms_per_hour * streams.noise.seconds / 3600.0 + 1e-9),
    }
    fitted = pooled_false_accepts(tables, pooling) if pooling > 0 else tables
    chosen = choose_thresholds(fitted, budgets["false_accepts"], budgets["false_alarms"], wrong_weight)
    over = [t.keyword for t in tables if chosen[t.keyword] >= NEVER]
    for table in tables:  # never silently disabled (step 5)
        if table.keyword in over:
            chosen[table.keyword] = best_over_target(table, max(base.threshold, min_threshold), wrong_weight)
    return Calibration(chosen, target_false_accepts_per_hour, target_false_alarms_per_hour, budgets, tables, over)


def detection_section(
    calibration: Calibration,
    config: StreamingConfig,
    *,
    calibrated_on: dict,
    figures_on_calibration: dict,
) -> dict:
    """The plain-data ``metadata["detection"]`` entry for a calibration; ``figures_on_calibration``: the
    calibrated figures on the calibration streams, as reports write them
    (:meth:`~speech.evaluation.streams.figures.StreamFigures.to_json`)."""
    return {
        "version": SECTION_VERSION,
        "thresholds": {k: round(v, 4) for k, v in calibration.thresholds.items()},
        "threshold": config.detector.threshold,  # for _silence_ / _unknown_ (never reported)
        "target_false_accepts_per_hour": calibration.target_false_accepts_per_hour,
        "target_false_alarms_per_hour": calibration.target_false_alarms_per_hour,
        "over_target": list(calibration.over_target),
        "settings": detector_settings(config),
        "calibrated_on": calibrated_on,
        "figures_on_calibration_streams": dict(figures_on_calibration),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def store_detection(model: str | Path, section: dict, *, out: str | Path | None = None,
                    in_place: bool = False) -> Path:
    """Write ``model`` with ``metadata["detection"] = section`` to ``out`` (a new file of the same kind), or over
    ``model`` itself when ``in_place``. Written to a temporary file first and renamed, so a failure leaves the
    original untouched; ``out`` must not exist. Returns the path written."""
    from speech.model.model_file import write_section

    model = Path(model)
    if (out is None) == (not in_place):
        raise ValueError("give either an output file or in_place, not both / neither")
    target = model if in_place else Path(out)
    return write_section(model, SECTION, section, target, overwrite=in_place)  # refuses an existing ``out``


def table_rows(calibration: Calibration) -> list[dict]:
    """Per keyword at its chosen threshold: correct, wrong, false accepts, false alarms (for reports)."""
    rows = []
    for t in calibration.tables:
        i = t.grid.index(calibration.thresholds[t.keyword])
        rows.append({"keyword": t.keyword, "threshold": t.grid[i], "correct": t.correct[i], "wrong": t.wrong[i],
                     "false_accepts": t.false_accepts[i], "false_alarms": t.false_alarms[i],
                     "meets_target": t.keyword not in calibration.over_target})
    return rows


def best_single(rows: list[dict], target_fa: float, target_noise: float) -> dict | None:
    """The lowest single threshold of the sweep that meets both targets on the calibration streams."""
    for row in rows:  # ascending thresholds: the first that meets the targets has the best recall
        fa = row["false_accepts_per_hour"]
        if fa is not None and fa <= target_fa + 1e-9 and row["false_alarms_per_hour"] <= target_noise + 1e-9:
            return {k: rounded(v) for k, v in row.items()}
    return None


__all__ = [
    "Calibration",
    "KeywordTable",
    "best_single",
    "calibrate",
    "choose_thresholds",
    "detection_section",
    "store_detection",
    "table_rows",
]
