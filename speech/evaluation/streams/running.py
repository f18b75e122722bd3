"""The running-speech stream of ``stream-test`` and ``calibrate`` (issue #18): false accepts while people talk.

:func:`build_running_stream` joins whole transcribed sentences (:mod:`speech.data.running_speech`) of held-out
readers into one stream, with a pause of U(0.3, 1.0) s between sentences and a -60 dBFS white-noise floor, and runs
the model on it once (the per-hop scores are kept, so any detector setting is replayed without the model, as for
the other streams).

Scoring rule (:meth:`RunningStream.score`): a detection of keyword ``k`` is correct when a sentence whose span
plus ``late_s`` (1 s) holds the detection's time says ``k``; otherwise it is a **false accept**, charged to the
last such sentence (or to none, before the first sentence). False accepts are reported per hour of the stream
(sentences and pauses) and per hour of the keyword-free sentences, with the sentences that caused them. For the
sentences that do say a keyword, ``said_recall`` is the share of the said keywords (counted per occurrence) that
were detected within the sentence's span plus ``late_s`` (a word said twice and detected once counts 1 of 2).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speech.data.errors import DatasetError
from speech.errors import SettingError
from speech.evaluation.streams.build import ScoredStream, score_stream
from speech.evaluation.streams.figures import SWEEP_THRESHOLDS, rounded
from speech.streaming.detection import NEVER_REPORTED, Detection, DetectorConfig, threshold_config

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
PAUSE_S = (0.3, 1.0)
NOISE_FLOOR_DBFS = -60.0
READERS_FOR = {"stream-test": "test", "calibrate": "calibration"}


@dataclass(frozen=True)
class Sentence:
    """One sentence in the stream: utterance ``id``, ``reader``, upper-case ``words``, and its span in the stream
    (``start``, ``end``, seconds)."""

    id: str
    reader: str
    words: tuple[str, ...]
    start: float
    end: float

    def count(self, word: str) -> int:
        return self.words.count(word.upper())


def poisson_upper_rate(count: int, hours: float, confidence: float = 0.95) -> float:
    """The one-sided upper confidence bound of a Poisson rate per hour after ``count`` events in ``hours``: the rate
    at which seeing ``count`` or fewer events has probability ``1 - confidence`` (the exact bound,
    ``chi2.ppf(confidence, 2 * (count + 1)) / 2``; 0 events in 1 h: 3.0 per hour)."""

    def at_most(rate: float) -> float:  # P(X <= count) for X ~ Poisson(rate)
        term = total = math.exp(-rate)
        for i in range(1, count + 1):
            term *= rate / i
            total += term
        return total

    low, high = float(count), float(count) + 10.0 * math.sqrt(count + 1.0) + 10.0
    for _ in range(100):  # bisection: at_most falls as the rate grows
        mid = (low + high) / 2.0
        low, high = (mid, high) if at_most(mid) > 1.0 - confidence else (low, mid)
    return high / hours


@dataclass
class RunningScore:
    """Figures of one detector setting on a running stream (see the module docstring). ``false_accepts_per_hour_95``:
    the 95 % upper bound of the false-accept rate on more speech of its kind (:func:`poisson_upper_rate`)."""

    false_accepts: int
    false_accepts_per_hour: float
    keyword_free_false_accepts: int
    keyword_free_false_accepts_per_hour: float | None
    by_keyword: dict[str, int]
    offenders: list[dict]
    said: int
    said_detected: int
    said_per_keyword: dict[str, dict]
    detections: int
    false_accepts_per_hour_95: float

    @property
    def said_recall(self) -> float | None:
        return 100.0 * self.said_detected / self.said if self.said else None

    def to_dict(self) -> dict:
        return {
            "false_accepts": self.false_accepts,
            "false_accepts_per_hour": rounded(self.false_accepts_per_hour),
            "keyword_free_false_accepts": self.keyword_free_false_accepts,
            "keyword_free_false_accepts_per_hour": rounded(self.keyword_free_false_accepts_per_hour),
            "false_accepts_by_keyword": dict(self.by_keyword),
            "false_accept_sentences": self.offenders,
            "said_keywords": self.said,
            "said_keywords_detected": self.said_detected,
            "said_recall": rounded(self.said_recall),
            "said_per_keyword": self.said_per_keyword,
            "detections": self.detections,
            "false_accepts_per_hour_95": rounded(self.false_accepts_per_hour_95),
        }


@dataclass
class RunningStream:
    """A scored running-speech stream: the ``scored`` hops and the ``sentences`` in it; ``info`` for reports."""

    scored: ScoredStream
    sentences: list[Sentence]
    info: dict = field(default_factory=dict)
    wave: np.ndarray | None = None  # the stream's audio, kept when asked (hard-negative mining)

    def __post_init__(self) -> None:
        self._starts = [s.start for s in self.sentences]  # in stream order: what holders() bisects

    @property
    def seconds(self) -> float:
        return self.scored.seconds

    @property
    def speech_seconds(self) -> float:
        return sum(s.end - s.start for s in self.sentences)

    def detections(self, labels: list[str], config: DetectorConfig) -> list[Detection]:
        return self.scored.detections(labels, config)

    def holders(self, time: float, late_s: float = 1.0) -> list[int]:
        """Indexes of the sentences whose ``[start, end + late_s]`` holds ``time`` (latest last)."""
        i = bisect.bisect_right(self._starts, time) - 1
        found = []
        while i >= 0 and self.sentences[i].end + late_s >= time - 1e-9:
            found.append(i)
            i -= 1
            if len(found) > 3:
                break
        return found[::-1]

    def false_accepts(self, labels: list[str], config: DetectorConfig, late_s: float = 1.0) -> int:
        """The number of false accepts under ``config`` (what calibration charges)."""
        return sum(1 for d in self.detections(labels, config) if not self._correct(d, late_s)[0])

    def _correct(self, d: Detection, late_s: float) -> tuple[bool, list[int]]:
        holders = self.holders(d.time, late_s)
        return any(self.sentences[i].count(d.label) for i in holders), holders

    def score(self, labels: list[str], config: DetectorConfig, late_s: float = 1.0) -> RunningScore:
        keywords = [k for k in labels if k not in NEVER_REPORTED]
        found = self.detections(labels, config)
        false_by_sentence: Counter = Counter()
        by_keyword: Counter = Counter()
        outside = 0
        detected_in: dict[int, Counter] = {}
        for d in found:
            correct, holders = self._correct(d, late_s)
            for i in holders:
                detected_in.setdefault(i, Counter())[d.label] += 1
            if correct:
                continue
            by_keyword[d.label] += 1
            if holders:
                false_by_sentence[(holders[-1], d.label)] += 1
            else:
                outside += 1
        free = [i for i, s in enumerate(self.sentences) if not any(s.count(k) for k in keywords)]
        free_set = set(free)
        free_seconds = sum(self.sentences[i].end - self.sentences[i].start for i in free)
        free_fa = sum(n for (i, _), n in false_by_sentence.items() if i in free_set)
        said = Counter()
        got = Counter()
        for i, s in enumerate(self.sentences):
            for k in keywords:
                n = s.count(k)
                if n:
                    said[k] += n
                    got[k] += min(n, detected_in.get(i, Counter())[k])
        offenders = [
            {"sentence": self.sentences[i].id, "as": label, "times": n,
             "says_a_keyword": i not in free_set, "text": " ".join(self.sentences[i].words)[:120]}
            for (i, label), n in false_by_sentence.most_common(15)
        ]
        total = sum(by_keyword.values())
        return RunningScore(
            false_accepts=total,
            false_accepts_per_hour=total * 3600.0 / self.seconds,
            keyword_free_false_accepts=free_fa,
            keyword_free_false_accepts_per_hour=free_fa * 3600.0 / free_seconds if free_seconds > 0 else None,
            by_keyword=dict(by_keyword.most_common()),
            offenders=offenders + ([{"sentence": None, "as": "(before the first sentence)", "times": outside}]
                                   if outside else []),
            said=sum(said.values()),
            said_detected=sum(got.values()),
            said_per_keyword={k: {"said": said[k], "detected": got[k]} for k in keywords if said[k]},
            detections=len(found),
            false_accepts_per_hour_95=poisson_upper_rate(total, self.seconds / 3600.0),
        )

    def sweep(self, labels: list[str], base: DetectorConfig, thresholds=SWEEP_THRESHOLDS,
              late_s: float = 1.0) -> list[dict]:
        """Per threshold (one for every keyword): false accepts (the count and per hour) and the said-keyword
        recall, as measured (not made monotone: :func:`~speech.evaluation.streams.figures.det_curve` draws them)."""
        rows = []
        for t in sorted(thresholds):
            s = self.score(labels, threshold_config(base, t), late_s)
            rows.append({"threshold": float(t), "running_false_accepts_per_hour": s.false_accepts_per_hour,
                         "running_said_recall": s.said_recall, "running_false_accepts": s.false_accepts})
        return rows


def running_fa_rows(rows: list[dict], stream: RunningStream, labels: list[str], config, late_s: float = 1.0) -> list[dict]:
    """Sweep ``rows`` of the clip streams with ``false_accepts_per_hour`` replaced by the running stream's (for the
    choice of a single threshold against a running-speech target)."""
    by_t = {round(r["threshold"], 4): r["running_false_accepts_per_hour"]
            for r in stream.sweep(labels, config.detector, thresholds=[r["threshold"] for r in rows], late_s=late_s)}
    return [{**r, "false_accepts_per_hour": by_t[round(r["threshold"], 4)]} for r in rows]


def join_sentences(waves: list[np.ndarray], rng: np.random.Generator, pause_s: tuple[float, float] = PAUSE_S,
                   noise_floor_dbfs: float = NOISE_FLOOR_DBFS) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``waves`` (16 kHz float32) joined with a U(``pause_s``) pause before each and after the last, over white
    noise at ``noise_floor_dbfs`` RMS; returns the stream and each sentence's ``(start, end)`` in seconds."""
    pauses = [int(rng.uniform(*pause_s) * SAMPLE_RATE) for _ in range(len(waves) + 1)]
    total = sum(w.shape[0] for w in waves) + sum(pauses)
    stream = (rng.standard_normal(total) * 10.0 ** (noise_floor_dbfs / 20.0)).astype(np.float32)
    spans = []
    at = pauses[0]
    for wave, pause in zip(waves, pauses[1:], strict=True):
        stream[at : at + wave.shape[0]] += wave
        spans.append((at / SAMPLE_RATE, (at + wave.shape[0]) / SAMPLE_RATE))
        at += wave.shape[0] + pause
    return np.clip(stream, -1.0, 1.0), spans


def build_running_stream(scorer, config, utterances, *, seed: int = 0, max_minutes: float | None = None,
                         pause_s: tuple[float, float] = PAUSE_S, keep_wave: bool = False) -> RunningStream:
    """The sentences ``utterances`` (:class:`speech.data.running_speech.Utterance`) in a seeded random order, up to
    ``max_minutes`` of stream (None: all), joined (:func:`join_sentences`) and scored with ``scorer``."""
    from speech.audio.io import AudioError
    from speech.data.running_speech import load_sentence

    if not utterances:
        raise DatasetError("no running-speech sentences to build the stream from")
    rng = np.random.default_rng(seed)
    order = [utterances[i] for i in rng.permutation(len(utterances))]
    waves, used, seconds, undecodable = [], [], 0.0, 0
    for u in order:
        if max_minutes is not None and seconds >= max_minutes * 60.0:
            break
        try:
            wave = load_sentence(u.path)
        except AudioError as exc:  # a file that passed the header check but fails to decode: skipped and counted
            log.warning("%s: cannot decode, skipped (%s)", u.path, exc)
            undecodable += 1
            continue
        waves.append(wave)
        used.append(u)
        seconds += wave.shape[0] / SAMPLE_RATE + sum(PAUSE_S) / 2
    if not waves:
        raise DatasetError(f"none of the {undecodable} running-speech sentences tried could be decoded")
    wave, spans = join_sentences(waves, rng, pause_s)
    sentences = [Sentence(u.id, u.reader, u.words, a, b) for u, (a, b) in zip(used, spans, strict=True)]
    scored = score_stream(scorer, config, wave, "running_speech", [])
    readers = sorted({u.reader for u in used})
    info = {"sentences": len(sentences), "readers": readers, "stream_seconds": round(scored.seconds, 1),
            "speech_seconds": round(sum(b - a for a, b in spans), 1), "seed": seed,
            "undecodable_skipped": undecodable}
    return RunningStream(scored, sentences, info, wave if keep_wave else None)


@dataclass
class RunningSource:
    """The running-speech sentences a command streams: ``utterances`` of the ``part`` readers of ``root``."""

    root: str
    part: str
    readers: list[str]
    utterances: list
    split: dict
    split_from: str
    bad_files: int = 0

    def describe(self) -> dict:
        return {"root": self.root, "readers_part": self.part, "readers": self.readers,
                "sentences_available": len(self.utterances), "reader_split": self.split,
                "reader_split_from": self.split_from, "bad_files_skipped": self.bad_files}


def running_source(root: str | Path, metadata: dict | None, part: str, *,
                   allow_trained_speakers: bool = False) -> RunningSource:
    """The sentences of the ``part`` readers (``test``/``calibration``/``all``) of ``root``, split as recorded in
    the model's data record when it was trained on this folder, else with the default seeded split. Raises
    :class:`speech.data.record.SpeakerLeakError` when any of them was trained on (unless allowed)."""
    import os

    from speech.data.record import DataRecord, SpeakerLeakError
    from speech.data.running_speech import ReaderSplit, read_running_speech, split_readers

    speech = read_running_speech(root)
    record = DataRecord.from_dict((metadata or {}).get("data"))
    own = (record.running_speech or {}) if record is not None else {}
    recorded = set((own.get("reader_split") or {}).get("parts", {}))
    # the folder it trained on, at its path or moved: known by its readers (every recorded reader is here)
    if recorded and (os.path.realpath(own.get("root", "")) == os.path.realpath(speech.root)
                     or recorded <= set(speech.readers)):
        split, split_from = ReaderSplit.from_dict(own["reader_split"]), "model record"
        for reader in speech.readers:  # readers the record does not know were never trained on: test readers
            split.parts.setdefault(reader, "test")
    else:
        split, split_from = split_readers(speech.readers), "defaults"
    readers = split.readers(part)
    trained = record.training_readers() & set(readers) if record is not None else set()
    if trained and not allow_trained_speakers:
        raise SpeakerLeakError(f"{speech.root}: {len(trained)} of the {len(readers)} {part} readers were trained on "
                               f"(e.g. {', '.join(sorted(trained)[:3])}); scores on them would be inflated")
    if not readers:
        raise DatasetError(f"{speech.root}: the reader split has no {part} readers")
    return RunningSource(str(speech.root), part, readers, speech.of_readers(readers), split.to_dict(), split_from,
                         len(speech.bad_files))


def write_offenders(path: str | Path, stream: RunningStream, labels: list[str], config: DetectorConfig,
                    late_s: float = 1.0) -> Path:
    """Every detection on the running stream as CSV: time, keyword, score, verdict, sentence id and text."""
    path = Path(path)
    with path.open("x", encoding="utf-8") as f:
        f.write("time_s,keyword,score,verdict,sentence,text\n")
        for d in stream.detections(labels, config):
            correct, holders = stream._correct(d, late_s)
            s = stream.sentences[holders[-1]] if holders else None
            text = " ".join(s.words).replace('"', "'") if s else ""
            f.write(f'{d.time:.3f},{d.label},{d.score:.4f},{"said" if correct else "false_accept"},'
                    f'{s.id if s else ""},"{text}"\n')
    return path


RUNNING_DETECTIONS, RUNNING_SWEEP, RUNNING_DET = ("running_speech_detections.csv", "running_speech_sweep.csv",
                                                  "running_speech_det_curve.png")
RUNNING_FILES = (RUNNING_DETECTIONS, RUNNING_SWEEP, RUNNING_DET)


@dataclass
class RunningOptions:
    """The running-speech stream a command adds: the folder, which readers (``test``/``calibration``/``all``), at
    most ``minutes`` of it (None: every sentence of those readers), the order ``seed`` and ``late_s``."""

    root: str | Path
    part: str = "test"
    minutes: float | None = None
    seed: int = 0
    late_s: float = 1.0
    allow_trained_speakers: bool = False

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes <= 0:
            raise SettingError(f"the running-speech stream must be longer than 0 minutes, got {self.minutes} "
                             "(--running-minutes)")

    def source(self, metadata: dict | None) -> RunningSource:
        return running_source(self.root, metadata, self.part, allow_trained_speakers=self.allow_trained_speakers)


def running_report(stream: RunningStream, source: RunningSource, labels: list[str], config, options: RunningOptions,
                   metadata: dict | None, *, out: Path | None = None, sweep_rows: list[dict] | None = None,
                   model_name: str = "") -> dict:
    """The figures of the scored running ``stream`` of ``source`` under ``config.detector`` (a report dict, with a
    warning count when the model's thresholds were calibrated on its readers); writes its detections CSV into
    ``out`` and, with ``sweep_rows`` (the keyword stream's sweep), a sweep CSV with the running-speech columns
    added (as measured, with the count of false accepts) and a DET curve of missed keywords (keyword stream)
    against false accepts per hour of running speech (the lower envelope of the sweep's points,
    :func:`~speech.evaluation.streams.figures.det_curve`)."""
    from speech.evaluation.streams.figures import plot_det

    report = {**stream.score(labels, config.detector, options.late_s).to_dict(), "stream": stream.info,
              "source": source.describe()}
    calibrated_on = (((metadata or {}).get("detection") or {}).get("calibrated_on") or {}).get("running_speech")
    if isinstance(calibrated_on, dict):  # thresholds fitted on some of these readers: optimistic figures
        report["calibration_readers_in_stream"] = len(set(calibrated_on.get("readers") or [])
                                                      & set(report["stream"]["readers"]))
    if out is not None:
        write_offenders(out / RUNNING_DETECTIONS, stream, labels, config.detector, options.late_s)
        if sweep_rows:
            by_t = {round(r["threshold"], 4): r for r in stream.sweep(labels, config.detector, late_s=options.late_s)}
            merged = [{**r, **by_t[round(r["threshold"], 4)]} for r in sweep_rows if round(r["threshold"], 4) in by_t]
            with (out / RUNNING_SWEEP).open("x", encoding="utf-8") as f:
                f.write("threshold,keyword_recall,keyword_wrong,running_false_accepts_per_hour,running_said_recall,"
                        "running_false_accepts\n")
                for r in merged:
                    said = "" if r["running_said_recall"] is None else f"{r['running_said_recall']:.6g}"
                    f.write(f"{r['threshold']:.2f},{r['keyword_recall']:.6g},{r['keyword_wrong']:.6g},"
                            f"{r['running_false_accepts_per_hour']:.6g},{said},{r['running_false_accepts']}\n")
            plot_det(out / RUNNING_DET,
                     [{**r, "false_accepts_per_hour": r["running_false_accepts_per_hour"]} for r in merged],
                     title=f"{model_name}: x = running speech of {len(stream.info['readers'])} {source.part} "
                     f"readers ({stream.seconds / 3600:.2f} h)")
            report["sweep"] = [{k: rounded(v) for k, v in r.items()} for r in merged]
    return report


def report_lines(r: dict) -> list[str]:
    """The text report of the running-speech stream (``r``: its report dict)."""
    s, src = r["stream"], r["source"]
    free = r["keyword_free_false_accepts_per_hour"]
    lines = [
        f"running speech: {s['sentences']} sentences of {len(s['readers'])} {src['readers_part']} readers of "
        f"{src['root']} (reader split from the {src['reader_split_from']}), {s['stream_seconds'] / 3600:.2f} h "
        f"({s['speech_seconds'] / 3600:.2f} h of speech)",
        f"  false accepts      {r['false_accepts_per_hour']:6.1f} per hour ({r['false_accepts']} in the stream; "
        f"{'n/a' if free is None else f'{free:.1f}'} per hour of the keyword-free sentences)",
        *([f"  on other speech like it: up to {upper:.1f} per hour (95 % bound from {r['false_accepts']} in "
           f"{s['stream_seconds'] / 3600:.2f} h)"] if (upper := r.get("false_accepts_per_hour_95")) is not None else []),
    ]
    if r["false_accepts_by_keyword"]:
        lines.append("  as: " + ", ".join(f"{k} x{n}" for k, n in r["false_accepts_by_keyword"].items()))
    for o in r["false_accept_sentences"][:5]:
        lines.append(f"    {o['sentence']} as {o['as']} x{o['times']}: {o.get('text', '')[:70]}")
    if r.get("calibration_readers_in_stream"):
        lines.append(f"  WARNING: the thresholds were calibrated on {r['calibration_readers_in_stream']} of these readers; "
                     "the figures are optimistic (test on the test readers)")
    if r["said_keywords"]:
        lines.append(f"  keywords said in the sentences: {r['said_keywords_detected']} of {r['said_keywords']} "
                     f"detected ({r['said_recall']:.1f} %)")
    return lines
