"""The stream test: keyword-spotting figures of a model on generated streams of held-out speakers.

:func:`stream_source` gathers what the streams are built from (the clips of one partition of a data folder,
more non-keyword speech from other folders, the background noise) and refuses clips of speakers the model was
trained on. :func:`run_stream_test` builds the three streams of :mod:`speech.evaluation.streams.figures` (keywords,
non-keyword speech, noise), runs the model once per stream, computes the figures (optionally a threshold sweep)
and writes the files of :data:`OUTPUT_FILES` into a folder.

Errors name the parameter to change (``param`` of :class:`~speech.evaluation.EvaluationError` and
:class:`~speech.evaluation.OutputExistsError`); the command line maps it to its flag.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speech.evaluation.errors import OutputExistsError
from speech.evaluation.streams.figures import (
    StreamClips,
    StreamSet,
    build_streams,
    check_stream_minutes,
    rounded,
)
from speech.evaluation.streams.running import RUNNING_FILES, RunningOptions, running_report
from speech.streaming.engine import StreamingConfig

if TYPE_CHECKING:
    from speech.data.record import SplitChoice

log = logging.getLogger(__name__)

WAV, LABELS, WORDS, DETECTIONS = (
    "streaming_test.wav",
    "streaming_test_labels.txt",
    "streaming_test_words.csv",
    "streaming_test_detections.txt",
)
NON_KEYWORD_WORDS, NON_KEYWORD_DETECTIONS, NOISE_DETECTIONS = (
    "non_keyword_words.csv",
    "non_keyword_detections.txt",
    "noise_detections.txt",
)
SWEEP_CSV, DET_PNG = "sweep.csv", "det_curve.png"
OUTPUT_FILES = (WAV, LABELS, WORDS, DETECTIONS, NON_KEYWORD_WORDS, NON_KEYWORD_DETECTIONS, NOISE_DETECTIONS,
                SWEEP_CSV, DET_PNG)
STREAM_UNKNOWN_PERCENT = 100.0  # full layout: as many non-keyword clips as keyword clips in the split


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
        """Generate the three streams from ``source`` and score them (:func:`~speech.evaluation.streams.figures.build_streams`)."""
        minutes, unknown_minutes, noise_minutes = self.lengths()
        return build_streams(scorer, config, source.clips, source.noise, minutes=minutes,
                             unknown_minutes=unknown_minutes, noise_minutes=noise_minutes,
                             unknown_share=self.unknown_share, background_volume=self.background_volume,
                             seed=self.seed)


@dataclass
class StreamSource:
    """What the streams are built from: the partition's ``clips``, the background ``noise`` (1-D float32, 16 kHz)
    and ``info``, the description that goes into reports (split, speakers, clip counts, leak check)."""

    clips: StreamClips
    noise: np.ndarray
    info: dict

    @property
    def negative_speakers(self) -> set[str]:
        return set(self.info.get("negative_speaker_ids", []))


def stream_source(
    scorer,
    data_root: str | Path,
    split: SplitChoice,
    *,
    allow_trained_speakers: bool = False,
    negatives: Sequence[str | Path] = (),
    negatives_half: str = "b",
    unknown_percent: float = STREAM_UNKNOWN_PERCENT,
) -> StreamSource:
    """The held-out clips and noise of ``data_root`` to build streams from.

    ``split``: the resolved split (see :func:`speech.data.record.choose_split`); its ``unknown_percent`` is
    replaced by ``unknown_percent``. Raises :class:`speech.data.record.SpeakerLeakError` when clips of training
    speakers would be used without ``allow_trained_speakers``, :class:`EvaluationError` (``param`` ``"split"``)
    for an empty partition. ``negatives``: folders of more non-keyword speech, of which the clips of speakers in
    ``negatives_half`` (``a``/``b``/``all``) and not trained on are used.
    """
    from speech.audio import load_audio
    from speech.data import build_index, load_noise
    from speech.data.record import DataRecord, check_held_out, speakers_hash
    from speech.evaluation.streams.figures import negative_clips, partition_clips

    record = DataRecord.from_dict(scorer.metadata.get("data"))
    settings = replace(split.settings, unknown_percent=float(unknown_percent))
    index = build_index(data_root, labels=list(scorer.labels), split=settings)
    clips = partition_clips(index, split.partition)
    trained = check_held_out(record, clips.examples, index.root, allow=allow_trained_speakers)
    if record is None:
        log.warning("the model carries no record of its training data: cannot check that the streams' speakers "
                    "are unseen")
    found = None
    if negatives:
        found = negative_clips(list(negatives), list(scorer.labels), negatives_half,
                               set(record.training_speakers) if record is not None else set())
        clips.negatives = found.paths
    if clips.silence:
        noise = np.concatenate([load_audio(p, samples=None) for p in clips.silence]).astype(np.float32)
        noise_what = f"{len(clips.silence)} _silence_ clips of the {split.partition} partition"
    else:
        noise = load_noise(index)
        noise_what = ("the data set's _background_noise_ files (training augmentation uses them too)"
                      if index.noise_files else "generated white + pink noise")
    info = {
        **split.describe(),
        "root": str(index.root),
        "split_method": index.split_method,
        "speakers": len(clips.speakers),
        "speakers_hash": speakers_hash(clips.speakers),
        "keyword_clips": clips.keyword_clips,
        "unknown_clips": len(clips.unknown),
        "noise": noise_what,
        "clips_of_training_speakers": len(trained),
        "training_record": record is not None,
        "negatives": None if found is None else found.describe(),
    }
    if found is not None:
        info["negative_speaker_ids"] = sorted(found.speakers)
    return StreamSource(clips, noise, info)


RUNS_DIR = Path("speech-runs")  # default report folders go below it (git-ignored), never loose in the working folder


def output_dir(requested: str | Path | None, names: tuple[str, ...] = OUTPUT_FILES, prefix: str = "stream-test",
               *, create: bool = True) -> Path:
    """The folder to write into: ``requested`` (must not hold earlier results, must be writable) or a new
    timestamped one (``speech-runs/<prefix>-<time>``). Raises :class:`OutputExistsError` /
    :class:`~speech.errors.OutputPlaceError` (``param`` ``"out_dir"``). ``create=False`` only checks (call it
    before any long work, then again with the returned path to create it)."""
    from speech.files import check_can_create

    folder = RUNS_DIR / f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}" if requested is None else Path(requested)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder}: exists and is not a folder", param="out_dir")
    clash = [name for name in names if (folder / name).exists()]
    if clash:
        raise OutputExistsError(f"{folder} already holds {', '.join(clash)}; refusing to overwrite; choose another "
                                "folder", param="out_dir")
    check_can_create(folder, "output folder", param="out_dir")
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def relative_clips(words: list, root: str | Path) -> list:
    """``words`` with each clip path relative to the data folder ``root`` when it lies inside it (the CSVs name
    clips as they are in the folder, not by the absolute path of the machine that wrote them)."""
    from dataclasses import replace

    base = os.path.realpath(root)
    shown = []
    for word in words:
        clip = os.path.realpath(word.clip) if word.clip else ""
        inside = clip and os.path.commonpath([base, clip]) == base
        shown.append(replace(word, clip=os.path.relpath(clip, base)) if inside else word)
    return shown


def calibration_overlap(metadata: dict, speakers: set[str], root: str, negative_speakers: set[str]) -> int | None:
    """How many of the streams' speakers (``speakers`` of ``root``, ``negative_speakers`` of the extra
    non-keyword folders) the model's thresholds were calibrated on (None: not calibrated, or not recorded)."""
    section = (metadata or {}).get("detection")
    if not isinstance(section, dict):
        return None
    on = section.get("calibrated_on") or {}
    ids = on.get("speaker_ids")
    if not isinstance(ids, list):
        return None
    same_root = not on.get("root") or os.path.realpath(on["root"]) == os.path.realpath(root)
    shared = (speakers & set(ids)) if same_root else set()
    shared |= negative_speakers & set(on.get("negative_speaker_ids") or [])
    return len(shared)


def write_detections(path: Path, found) -> None:
    """Detections as TF's labels file (``label, time_ms`` when each was made)."""
    from speech.evaluation.streams.matching import LabelledTime, write_labels_file

    write_labels_file(path, [LabelledTime(d.label, 1000.0 * d.time) for d in found])


@dataclass
class StreamTestResult:
    """The outcome of :func:`run_stream_test`: ``figures`` (the JSON report: keyword recall, false accepts and
    alarms per hour, delays, TF's figures, the split, the streams, settings), the ``out`` folder and the files
    ``written`` there (plus the JSON file when asked), and the ``sweep`` rows when a sweep ran."""

    figures: dict
    out: Path
    written: dict[str, Path] = field(default_factory=dict)
    sweep: list[dict] | None = None


def run_stream_test(
    scorer,
    data_root: str | Path,
    split: SplitChoice,
    config: StreamingConfig,
    *,
    model: str | Path,
    spec: StreamSpec | None = None,
    threshold: float | None = None,
    tolerance_ms: float = 750.0,
    sweep: bool = False,
    out_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    allow_trained_speakers: bool = False,
    negatives: Sequence[str | Path] = (),
    negatives_half: str = "b",
    unknown_percent: float = STREAM_UNKNOWN_PERCENT,
    running: RunningOptions | None = None,
) -> StreamTestResult:
    """Build the streams from the held-out ``split`` of ``data_root``, score them with ``scorer`` (loaded from
    ``model``), compute the figures and write the stream files into ``out_dir`` (default: a new
    ``speech-runs/stream-test-<time>`` folder) and, when given, the figures to ``json_path`` (a new file).

    ``config``: engine and detector settings; the model's calibrated thresholds replace the detector's unless
    ``threshold`` is given (:func:`speech.streaming.thresholds.detector_from_metadata`). ``tolerance_ms``: TF's
    matching tolerance. ``sweep``: also the figures of one threshold for all keywords, 0.30 .. 0.99 (``sweep.csv``,
    ``det_curve.png``). Its steps are logged.
    Outputs are checked before any scoring; nothing is written when the clips would include training speakers.
    """
    from dataclasses import replace

    from speech.audio import write_wav
    from speech.evaluation.streams.figures import figures, keyword_thresholds, plot_det, write_sweep_csv
    from speech.evaluation.streams.figures import sweep as sweep_rows
    from speech.evaluation.streams.matching import write_labels_file, write_words_file
    from speech.report import check_json_path, write_json
    from speech.streaming.thresholds import detector_from_metadata, settings_mismatch

    spec = spec or StreamSpec()
    minutes, unknown_minutes, noise_minutes = spec.lengths()
    if json_path is not None:
        check_json_path(json_path)
    out = output_dir(out_dir, OUTPUT_FILES + (RUNNING_FILES if running is not None else ()), create=False)  # checked before any work, created once the streams are built
    detector, threshold_source = detector_from_metadata(scorer.metadata, config.detector, threshold)
    config = replace(config, detector=detector)
    mismatch = settings_mismatch(scorer.metadata, config) if threshold is None else []
    for line in mismatch:
        log.warning("the model's thresholds were calibrated with other settings: %s", line)
    source = stream_source(scorer, data_root, split, allow_trained_speakers=allow_trained_speakers,
                           negatives=negatives, negatives_half=negatives_half, unknown_percent=unknown_percent)
    data_info = source.info
    overlap = None
    if threshold is None:
        overlap = calibration_overlap(scorer.metadata, source.clips.speakers, data_info["root"],
                                      source.negative_speakers)
    running_src = running.source(scorer.metadata) if running is not None else None
    out = output_dir(out, OUTPUT_FILES + (RUNNING_FILES if running is not None else ()))
    log.info(
        "building the streams from the %s partition of %s (%d speakers, split from the %s); this runs the model "
        "on %g min of audio", data_info["partition"], data_info["root"], data_info["speakers"], data_info["source"],
        minutes + unknown_minutes + noise_minutes,
    )
    streams = spec.build(scorer, config, source)
    labels = list(scorer.labels)
    f = figures(streams, labels, config.detector, tolerance_ms, spec.late_ms)

    written = {name: out / name for name in (WAV, LABELS, WORDS, DETECTIONS, NOISE_DETECTIONS)}
    write_wav(written[WAV], streams.recording.wave)
    write_labels_file(written[LABELS], streams.recording.words)
    write_words_file(written[WORDS], relative_clips(streams.keywords.words, data_info["root"]))
    write_detections(written[DETECTIONS], streams.keywords.detections(labels, config.detector))
    if streams.non_keywords is not None:
        written[NON_KEYWORD_WORDS], written[NON_KEYWORD_DETECTIONS] = out / NON_KEYWORD_WORDS, out / NON_KEYWORD_DETECTIONS
        write_words_file(written[NON_KEYWORD_WORDS], relative_clips(streams.non_keywords.words, data_info["root"]))
        write_detections(written[NON_KEYWORD_DETECTIONS], streams.non_keywords.detections(labels, config.detector))
    write_detections(written[NOISE_DETECTIONS], streams.noise.detections(labels, config.detector))

    rows = None
    if sweep:
        rows = sweep_rows(streams, labels, config.detector, late_ms=spec.late_ms)
        written[SWEEP_CSV] = out / SWEEP_CSV
        write_sweep_csv(written[SWEEP_CSV], rows)
        if streams.non_keywords is not None:
            written[DET_PNG] = plot_det(out / DET_PNG, rows, points={"this run": f},
                                        title=f"{Path(model).name} on {data_info['speakers']} held-out speakers "
                                        f"({data_info['partition']})")

    wall = sum(s.wall_seconds for s in streams.streams())
    audio = sum(s.seconds for s in streams.streams())
    gated = sum(s.windows_gated for s in streams.streams())
    windows = sum(s.times.shape[0] for s in streams.streams())
    report = {
        **f.to_json(),
        "split": data_info,
        "streams": {
            **streams.info,
            "keyword_stream_seconds": round(streams.keywords.seconds, 1),
            "non_keyword_stream_seconds": round(streams.non_keywords.seconds, 1) if streams.non_keywords else 0.0,
            "noise_seconds": round(streams.noise.seconds, 1),
            "words": len(streams.keywords.words),
        },
        "thresholds": keyword_thresholds(config.detector, labels),
        "threshold_source": threshold_source,
        "calibration_speakers_in_streams": overlap,
        "settings_differ_from_calibration": mismatch,
        "tolerance_ms": tolerance_ms,
        "late_ms": spec.late_ms,
        "real_time_factor": round(audio / max(wall, 1e-9), 1),
        "windows_gated_percent": round(100.0 * gated / max(1, windows), 1),
        "model": str(model),
        "backend": getattr(scorer, "backend", None),
        "stream_seed": spec.seed,
        "hop_ms": config.hop_ms,
        "gate_db": config.gate_db,
        "out": str(out),
    }
    if rows is not None:
        report["sweep"] = [{k: rounded(v) for k, v in row.items()} for row in rows]
    if running_src is not None:  # issue #18: false accepts on the held-out readers' running speech
        _, report["running_speech"] = running_report(scorer, config, running, running_src, out=out, sweep_rows=rows,
                                                     model_name=Path(model).name)
        written.update({name: out / name for name in RUNNING_FILES if (out / name).exists()})
    if json_path is not None:
        written["json"] = write_json(json_path, report)
    return StreamTestResult(report, out, written, rows)
