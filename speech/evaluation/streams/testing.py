"""The stream test: keyword-spotting figures of a model on generated streams of held-out speakers.

:func:`run_stream_test` runs the stream experiment (:mod:`speech.evaluation.streams.experiment`: the three
streams of held-out speakers, keywords, non-keyword speech and noise, scored once), computes the figures of the
model's detector settings (:mod:`speech.evaluation.streams.figures`; optionally a threshold sweep) and writes
the files of :data:`OUTPUT_FILES` into a folder.

Errors name the parameter to change (``param`` of :class:`~speech.evaluation.EvaluationError` and
:class:`~speech.evaluation.OutputExistsError`); the command line maps it to its flag.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from speech.evaluation.streams.experiment import StreamExperiment, run_experiment
from speech.evaluation.streams.figures import figures, keyword_thresholds, plot_det, rounded, write_sweep_csv
from speech.evaluation.streams.figures import sweep as sweep_rows
from speech.evaluation.streams.running import RUNNING_FILES, running_report

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


def relative_clips(words: list, root: str | Path) -> list:
    """``words`` with each clip path relative to the data folder ``root`` when it lies inside it (the CSVs name
    clips as they are in the folder, not by the absolute path of the machine that wrote them)."""

    base = os.path.realpath(root)
    shown = []
    for word in words:
        clip = os.path.realpath(word.clip) if word.clip else ""
        inside = clip and os.path.commonpath([base, clip]) == base
        shown.append(replace(word, clip=os.path.relpath(clip, base)) if inside else word)
    return shown


def calibration_overlap(metadata: dict, speakers: set[str], root: str, negative_speakers: set[str]) -> int | None:
    """How many of the streams' speakers (``speakers`` of ``root``, ``negative_speakers`` of the extra
    non-keyword folders) the model's thresholds were calibrated on, in any of the folders it was calibrated on
    (None: not calibrated, or not recorded)."""
    section = (metadata or {}).get("detection")
    if not isinstance(section, dict):
        return None
    on = section.get("calibrated_on") or {}
    ids = on.get("speaker_ids")
    if not isinstance(ids, list):
        return None
    shared = set()
    for part in (on, *[a for a in on.get("also") or [] if isinstance(a, dict)]):  # every folder it calibrated on
        same_root = not part.get("root") or os.path.realpath(part["root"]) == os.path.realpath(root)
        if same_root:
            shared |= speakers & set(part.get("speaker_ids") or [])
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
    experiment: StreamExperiment,
    *,
    threshold: float | None = None,
    tolerance_ms: float = 750.0,
    sweep: bool = False,
    out_dir: str | Path | None = None,
    json_path: str | Path | None = None,
) -> StreamTestResult:
    """Run ``experiment`` (:func:`~speech.evaluation.streams.experiment.run_experiment`), compute the figures and
    write the stream files into ``out_dir`` (default: a new ``speech-runs/stream-test-<time>`` folder) and, when
    given, the figures to ``json_path`` (a new file).

    The model's calibrated thresholds replace the experiment's detector thresholds unless ``threshold`` is given
    (:func:`speech.streaming.thresholds.detector_from_metadata`). ``tolerance_ms``: TF's matching tolerance.
    ``sweep``: also the figures of one threshold for all keywords, 0.30 .. 0.99 (``sweep.csv``,
    ``det_curve.png``). Its steps are logged. Outputs are checked before any scoring; nothing is written when the
    clips would include training speakers.
    """
    from speech.audio.io import write_wav
    from speech.evaluation.streams.matching import write_labels_file, write_words_file
    from speech.streaming.thresholds import resolve_detector
    from speech.utils.files import write_json

    scorer, model, spec = experiment.scorer, experiment.model, experiment.spec
    config, threshold_source, mismatch = resolve_detector(scorer.metadata, experiment.config, threshold)
    experiment = replace(experiment, config=config)
    for line in mismatch:
        log.warning("the model's thresholds were calibrated with other settings: %s", line)
    names = OUTPUT_FILES + (RUNNING_FILES if experiment.running is not None else ())
    scored = run_experiment(experiment, out_dir=out_dir, names=names, prefix="stream-test", json_path=json_path,
                            announce="building the streams from the %s partition of %s (%d speakers, split from the "
                            "%s); this runs the model on %g min of audio")
    streams, out, data_info = scored.streams, scored.out, scored.source.info
    overlap = None
    if threshold is None:
        overlap = calibration_overlap(scorer.metadata, scored.source.clips.speakers, data_info["root"],
                                      scored.source.negative_speakers)
    labels = experiment.labels
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
        "stateful": config.stateful,
        "stream_states": config.stream_states if config.stateful else None,
        "keyword_share": config.detector.keyword_share,
        "out": str(out),
    }
    if rows is not None:
        report["sweep"] = [{k: rounded(v) for k, v in row.items()} for row in rows]
    if scored.running_source is not None:  # issue #18: false accepts on the held-out readers' running speech
        report["running_speech"] = running_report(streams.running, scored.running_source, labels, config,
                                                  experiment.running, scorer.metadata, out=out, sweep_rows=rows,
                                                  model_name=Path(model).name)
        written.update({name: out / name for name in RUNNING_FILES if (out / name).exists()})
    if json_path is not None:
        written["json"] = write_json(json_path, report)
    return StreamTestResult(report, out, written, rows)
