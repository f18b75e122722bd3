"""The calibration procedure: thresholds fitted on streams of held-out speakers, stored in a copy of the model.

:func:`run_calibration` runs the stream experiment of the stream test (:mod:`speech.evaluation.streams.experiment`)
on one partition (by default the validation speakers of the model's own split), chooses one threshold per keyword
from the stored scores (:func:`speech.evaluation.streams.fitting.calibrate`), sweeps a single threshold for
comparison, stores the thresholds in ``out`` (or the model itself when ``in_place``) and writes the report files
(:data:`REPORT_FILES`) into a new folder. The maths is in :mod:`speech.evaluation.streams.fitting`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from speech.errors import OutputExistsError, RuntimeFailure, SettingError
from speech.evaluation.streams.experiment import StreamExperiment, run_experiment
from speech.evaluation.streams.figures import figures, plot_det, rounded, sweep, write_sweep_csv
from speech.evaluation.streams.fitting import (
    best_single,
    calibrate,
    detection_section,
    store_detection,
    table_rows,
)
from speech.evaluation.streams.running import running_fa_rows

log = logging.getLogger(__name__)

REPORT_FILES = ("det_curve.png", "sweep.csv", "calibration.json")


@dataclass
class CalibrationRun:
    """The outcome of :func:`run_calibration`: the ``summary`` (also ``calibration.json``), the ``report`` folder,
    the model file ``written`` with the thresholds (None when not stored) and the streams' ``data`` description."""

    summary: dict
    report: Path
    written: Path | None
    data: dict


def check_model_output(model: str | Path, out: str | Path | None, in_place: bool) -> None:
    """Where the calibrated model goes (a new ``out`` file of the model's kind, or ``model`` itself with
    ``in_place``) must be writable, before the calibration runs."""
    from speech.utils.files import check_can_create

    if out is not None and in_place:
        raise SettingError("give an output file or in_place, not both", param="in_place")
    target = Path(model) if in_place else None if out is None else Path(out)
    if target is None:
        return
    if out is not None:
        if target.is_dir():
            raise OutputExistsError(f"{target}: is a folder; expected a new model file", param="out")
        if target.exists():
            raise OutputExistsError(f"{target} exists; refusing to overwrite it", param="out")
        if target.suffix.lower() != Path(model).suffix.lower():
            raise SettingError(f"{target}: the calibrated model must be a {Path(model).suffix} file like "
                               f"{Path(model).name}", param="out")
    check_can_create(target.parent if in_place else target, "calibrated model", param="out")


def also_entry(info: dict, speakers: set[str]) -> dict:
    """What ``calibrated_on["also"]`` records of one more folder: its root, partition, split and speakers."""
    keep = ("root", "partition", "source", "split_method", "speakers", "speakers_hash", "keyword_clips")
    return {**{k: info[k] for k in keep if k in info}, "speaker_ids": sorted(speakers)}


def run_calibration(
    experiment: StreamExperiment,
    *,
    target_false_accepts_per_hour: float = 1.0,
    target_false_alarms_per_hour: float = 0.5,
    min_threshold: float = 0.5,
    wrong_weight: float = 1.0,
    pooling: float = 0.0,
    single: bool = False,
    out: str | Path | None = None,
    in_place: bool = False,
    report_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    more: Sequence[StreamExperiment] = (),
) -> CalibrationRun:
    """Calibrate the experiment's model on its streams (:func:`~speech.evaluation.streams.experiment.run_experiment`;
    with a running-speech stream, the false-accept budget is per hour of that speech).

    The experiment's detector threshold is the default the calibrated ones are compared with. Thresholds: one per
    keyword, or with ``single`` the lowest of the sweep that meets both targets, never below ``min_threshold``.
    They are stored in ``out`` (a new file of the model's kind) or, with ``in_place``, in the model itself, and
    read back to check; with neither, nothing is stored. ``report_dir`` (default: a new
    ``speech-runs/calibrate-<time>`` folder) and ``json_path`` must not hold earlier results. The steps are logged.
    ``more``: experiments on other folders (e.g. the held-out speakers of every folder the model trained on) whose
    streams join the calibration streams, so each keyword's threshold rests on the words of all of them; the
    false-accept budget stays that of the running speech (or of the first folder's non-keyword stream).
    """
    from speech.model.model_file import read_metadata
    from speech.streaming.detection import threshold_config
    from speech.utils.files import write_json

    model, spec, config, running = experiment.model, experiment.spec, experiment.config, experiment.running
    check_model_output(model, out, in_place)
    scored = run_experiment(experiment, out_dir=report_dir, names=REPORT_FILES, prefix="calibrate",
                            json_path=json_path, announce="calibrating on the %s partition of %s (%d speakers, split "
                            "from the %s); running the model on %g min of audio", more=more)
    streams, report, data, running_src = scored.streams, scored.out, scored.source.info, scored.running_source
    minutes, unknown_minutes, noise_minutes = spec.lengths()
    labels = experiment.labels
    result = calibrate(streams, labels, config.detector, target_false_accepts_per_hour=target_false_accepts_per_hour,
                       target_false_alarms_per_hour=target_false_alarms_per_hour, min_threshold=min_threshold,
                       wrong_weight=wrong_weight, pooling=pooling)
    rows = sweep(streams, labels, config.detector, late_ms=spec.late_ms)
    fa_rows = rows if running_src is None else running_fa_rows(rows, streams.running, labels, config, running.late_s)
    best = best_single([r for r in fa_rows if r["threshold"] >= min_threshold], target_false_accepts_per_hour,
                       target_false_alarms_per_hour)
    if single:
        if best is None:
            raise SettingError("no single threshold of the sweep meets both targets on the calibration streams",
                               param="single")
        result.thresholds = {k: float(best["threshold"]) for k in result.thresholds}
    got = figures(streams, labels, replace(config.detector, thresholds=result.thresholds), late_ms=spec.late_ms)
    default = figures(streams, labels, threshold_config(config.detector, config.detector.threshold),
                      late_ms=spec.late_ms)

    calibrated_on = {
        **{k: v for k, v in data.items() if k not in ("clips_of_training_speakers", "training_record")},
        "speaker_ids": sorted(scored.source.clips.speakers),
        "minutes": minutes,
        "unknown_minutes": unknown_minutes,
        "noise_minutes": noise_minutes,
        "keyword_words": got.keyword_words,
        "non_keyword_words": got.non_keyword_words,
        "distinct_non_keyword_clips": streams.info["unknown_clips_in_stream"],
        "stream_seed": spec.seed,
        "unknown_share": spec.unknown_share,
        "background_volume": spec.background_volume,
        "model_file": Path(model).name,
    }
    if scored.more_sources:  # the other folders' held-out speakers whose keywords joined the streams
        calibrated_on["also"] = [also_entry(source.info, source.clips.speakers) for source in scored.more_sources]
    if running_src is not None:
        calibrated_on["running_speech"] = {"root": running_src.root, "readers": running_src.readers,
                                           "hours": round(streams.running.seconds / 3600, 3)}
    section = detection_section(result, config, calibrated_on=calibrated_on, figures_on_calibration=got.to_json(digits=4))
    written = None
    if out is not None or in_place:
        written = store_detection(model, section, out=out, in_place=in_place)
        if read_metadata(written).get("detection", {}).get("thresholds") != section["thresholds"]:
            raise RuntimeFailure(f"{written}: the stored thresholds did not read back the same")

    mode = "single" if single else "per keyword"
    plot_det(report / "det_curve.png", rows,
             points={f"calibrated ({mode})": got, f"default {config.detector.threshold:g}": default},
             title=f"{Path(model).name}: calibration streams, {data['speakers']} held-out speakers "
             f"({data['partition']})")
    write_sweep_csv(report / "sweep.csv", rows)
    summary = {
        "model": str(model),
        "written": None if written is None else str(written),
        "thresholds": section["thresholds"],
        "targets": {"false_accepts_per_hour": target_false_accepts_per_hour,
                    "false_alarms_per_hour": target_false_alarms_per_hour},
        "budgets_in_streams": result.budgets,
        "mode": mode,
        "pooling": pooling,
        "per_keyword": table_rows(result),
        "over_target": list(result.over_target),
        "calibrated": got.to_json(),
        "default_threshold": default.to_json(),
        "best_single_threshold": best,
        "calibrated_on": calibrated_on,
        "settings": section["settings"],
        "sweep": [{k: rounded(v) for k, v in row.items()} for row in rows],
    }
    if running_src is not None:
        late = running.late_s
        summary["running_speech"] = {
            "source": running_src.describe(),
            "stream": streams.running.info,
            "calibrated": streams.running.score(labels, replace(config.detector, thresholds=result.thresholds),
                                                late).to_dict(),
            "default_threshold": streams.running.score(labels, threshold_config(config.detector,
                                                       config.detector.threshold), late).to_dict(),
            "sweep": [{k: r[k] for k in ("threshold", "false_accepts_per_hour", "false_alarms_per_hour")}
                      for r in fa_rows],  # what "best single" was chosen from: running speech's false accepts
        }
    write_json(report / "calibration.json", summary)
    if json_path is not None:
        write_json(json_path, summary)
    return CalibrationRun(summary, report, written, data)
