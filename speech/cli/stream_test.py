"""``speech stream-test``: keyword-spotting figures on generated test streams of held-out speakers.

Builds three streams from one data partition (by default the one the model was trained without): TensorFlow's
test stream (a word every 3 s, ``--unknown-share`` % non-keywords, background noise), a stream of non-keyword
words only and a stream of the background alone. The model runs once per stream; the figures are computed from
the stored scores (see :mod:`speech.streaming.stream_eval`), and ``--sweep`` adds recall against false accepts
per hour for every threshold from 0.30 to 0.99 (CSV and a DET curve PNG) from the same scores.

Files in ``--out``: ``streaming_test.wav`` and TF's ``streaming_test_labels.txt`` (``label, time_ms``), the words
with their speech spans (``streaming_test_words.csv``, ``non_keyword_words.csv``), every detection
(``*_detections.txt``: ``label, time_ms`` when it was made) and, with ``--sweep``, ``sweep.csv`` and
``det_curve.png``.

Exit codes: 0 done; 2 bad input (an unreadable model or data folder, an existing output, clips of training
speakers without ``--allow-trained-speakers``), one line naming what and why; 1 a failure while running; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from speech.cli.live import ModelError, add_stream_arguments, open_scorer, stream_config
from speech.cli.split_args import add_split_arguments, resolve_split

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


class Refused(ValueError):
    """The command would score clips it must not (training speakers); exit code 2."""


def add_stream_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, split and stream-generation options shared by ``stream-test`` and ``calibrate``."""
    parser.add_argument("model", help="trained checkpoint (.ckpt) or exported model (.onnx)")
    parser.add_argument("--data", required=True, type=Path, help="data set root (any layout speech.data reads)")
    add_split_arguments(parser)
    parser.add_argument("--allow-trained-speakers", action="store_true",
                        help="build the streams even from clips of speakers the model was trained on (the figures "
                        "are then inflated)")
    parser.add_argument("--negatives", action="append", type=Path, default=[], metavar="DIR",
                        help="more non-keyword speech for the false-accept stream: the clips of DIR whose word is none "
                        "of the model's labels, of speakers the model never trained on (repeatable)")
    parser.add_argument("--negatives-half", choices=("a", "b", "all"),
                        help="which fixed half of the --negatives speakers (by speaker-id hash) to use; default: a "
                        "for 'calibrate', b for 'stream-test', so the two never share a speaker")
    s = parser.add_argument_group("streams")
    s.add_argument("--minutes", type=float, default=10.0, help="length of the keyword stream (10)")
    s.add_argument("--unknown-minutes", type=float,
                   help="length of the non-keyword speech stream for false accepts (default: --minutes; 0: none)")
    s.add_argument("--noise-minutes", type=float,
                   help="length of the speech-free noise stream for false alarms (default: --minutes)")
    s.add_argument("--unknown-share", type=float, default=30.0,
                   help="percent of the keyword stream's words that are non-keywords (TF's 30)")
    s.add_argument("--background-volume", type=float, default=0.1, help="noise volume drawn from U(0, V) (0.1)")
    s.add_argument("--stream-seed", "--seed", dest="stream_seed", type=int, default=0,
                   help="random seed of the streams (0)")
    s.add_argument("--late-ms", type=float, default=1000.0,
                   help="a detection belongs to a word up to this long after the word's speech ends (1000)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stream_source_arguments(parser)
    parser.add_argument("--tolerance-ms", type=float, default=750.0, help="TF's matching tolerance (750)")
    parser.add_argument("--sweep", action="store_true",
                        help="also compute recall vs false accepts/hour for thresholds 0.30..0.99 from the stored "
                        "scores: sweep.csv and det_curve.png in --out")
    parser.add_argument("--out", type=Path, help="folder for the streams' files (default: a new stream-test-<time> folder)")
    parser.add_argument("--json", type=Path, dest="json_file", help="write the figures to this JSON file")
    add_stream_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from speech.data import DatasetError

    try:
        return _run(args)
    except KeyboardInterrupt:
        print("speech stream-test: stopped (Ctrl-C)", file=sys.stderr)
        return 130
    except Refused as exc:
        print(f"speech stream-test: refused: {exc}", file=sys.stderr)
        return 2
    except (ModelError, DatasetError, FileExistsError, ValueError) as exc:
        print(f"speech stream-test: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"speech stream-test: error: {exc}", file=sys.stderr)
        return 1


def output_dir(requested: Path | None, names: tuple[str, ...] = OUTPUT_FILES, prefix: str = "stream-test") -> Path:
    """The folder to write into: ``requested`` (must not hold earlier results) or a new timestamped one."""
    if requested is None:
        requested = Path(f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}")
    clash = [name for name in names if (requested / name).exists()]
    if clash:
        raise FileExistsError(f"{requested} already holds {', '.join(clash)}; refusing to overwrite (choose another --out)")
    requested.mkdir(parents=True, exist_ok=True)
    return requested


def stream_lengths(args: argparse.Namespace) -> tuple[float, float, float]:
    """``(keyword, non-keyword, noise)`` stream minutes from the options."""
    minutes = args.minutes
    unknown = minutes if args.unknown_minutes is None else args.unknown_minutes
    noise = minutes if args.noise_minutes is None else args.noise_minutes
    if minutes <= 0 or noise <= 0 or unknown < 0:
        raise ValueError(f"stream lengths must be positive minutes, got --minutes {minutes}, --unknown-minutes "
                         f"{unknown}, --noise-minutes {noise}")
    return minutes, unknown, noise


def stream_clips(args: argparse.Namespace, scorer, default_partition: str | None = None, default_half: str = "b"):
    """The held-out clips and noise to build streams from. Returns ``(clips, noise, data_info)``.

    The split comes from :func:`speech.cli.split_args.resolve_split` (``default_partition`` replaces its default
    partition when the user gave no ``--split``). Raises :class:`Refused` when clips of training speakers would
    be used without ``--allow-trained-speakers``. ``--negatives`` clips of training speakers are left out (and
    counted); ``default_half`` is the half of their speakers used when ``--negatives-half`` is not given.
    """
    from speech.audio import load_audio
    from speech.data import build_index, load_noise
    from speech.data.record import DataRecord, SpeakerLeakError, check_held_out, speakers_hash
    from speech.streaming.stream_eval import negative_clips, partition_clips

    record = DataRecord.from_dict(scorer.metadata.get("data"))
    choice = resolve_split(args, record, args.data)
    if default_partition is not None and getattr(args, "split", None) is None:
        choice.partition = default_partition
    options = dict(choice.index_options)
    if getattr(args, "unknown_percent", None) is None:
        options["unknown_percent"] = 100.0  # full layout: as many non-keyword clips as keyword clips in the split
    index = build_index(args.data, labels=list(scorer.labels), **options)
    clips = partition_clips(index, choice.partition)
    if not clips.examples:
        counts = {k: len(v) for k, v in index.splits.items()}
        raise ValueError(f"{index.root}: the {choice.partition!r} partition is empty with split rule "
                         f"{options['split']!r} (clips per split: {counts}); choose another --split / --split-rule")
    try:
        trained = check_held_out(record, clips.examples, index.root, allow=args.allow_trained_speakers)
    except SpeakerLeakError as exc:
        raise Refused(f"{exc} (--allow-trained-speakers)") from None
    if record is None:
        log.warning("%s carries no record of its training data: cannot check that the streams' speakers are unseen",
                    args.model)
    negatives = None
    if args.negatives:
        negatives = negative_clips(args.negatives, list(scorer.labels), args.negatives_half or default_half,
                                   set(record.training_speakers) if record is not None else set())
        clips.negatives = negatives.paths
    if clips.silence:
        noise = np.concatenate([load_audio(p, samples=None) for p in clips.silence]).astype(np.float32)
        noise_what = f"{len(clips.silence)} _silence_ clips of the {choice.partition} partition"
    else:
        noise = load_noise(index)
        noise_what = ("the data set's _background_noise_ files (training augmentation uses them too)"
                      if index.noise_files else "generated white + pink noise")
    info = {
        **choice.describe(),
        "root": str(index.root),
        "split_method": index.split_method,
        "speakers": len(clips.speakers),
        "speakers_hash": speakers_hash(clips.speakers),
        "keyword_clips": clips.keyword_clips,
        "unknown_clips": len(clips.unknown),
        "noise": noise_what,
        "clips_of_training_speakers": len(trained),
        "training_record": record is not None,
        "negatives": None if negatives is None else negatives.describe(),
    }
    if negatives is not None:
        info["negative_speaker_ids"] = sorted(negatives.speakers)
    return clips, noise, info


def calibration_overlap(metadata: dict, speakers: set[str], root: str, negative_speakers: set[str]) -> int | None:
    """How many of the streams' speakers (``speakers`` of ``root``, ``negative_speakers`` of ``--negatives``) the
    model's thresholds were calibrated on (None: not calibrated, or not recorded)."""
    import os

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
    from speech.streaming.scoring import LabelledTime, write_labels_file

    write_labels_file(path, [LabelledTime(d.label, 1000.0 * d.time) for d in found])


def rounded(value):
    return round(value, 3) if isinstance(value, float) else value


def _run(args: argparse.Namespace) -> int:
    from speech.audio import write_wav
    from speech.streaming.calibration import detector_from_metadata, settings_mismatch
    from speech.streaming.scoring import write_labels_file, write_words_file
    from speech.streaming.stream_eval import (
        build_streams,
        figures,
        keyword_thresholds,
        plot_det,
        sweep,
        write_sweep_csv,
    )

    minutes, unknown_minutes, noise_minutes = stream_lengths(args)
    if args.json_file is not None and args.json_file.exists():
        raise FileExistsError(f"{args.json_file} exists; refusing to overwrite it")
    scorer = open_scorer(args.model, args.backend, args.threads)
    config = stream_config(args)
    config.detector, threshold_source = detector_from_metadata(scorer.metadata, config.detector, args.threshold)
    mismatch = settings_mismatch(scorer.metadata, config) if args.threshold is None else []
    for line in mismatch:
        log.warning("the model's thresholds were calibrated with other settings: %s", line)
    clips, noise, data_info = stream_clips(args, scorer)
    overlap = None
    if args.threshold is None:
        overlap = calibration_overlap(scorer.metadata, clips.speakers, data_info["root"],
                                      set(data_info.get("negative_speaker_ids", [])))
    out = output_dir(args.out)
    print(f"building the streams from the {data_info['partition']} partition of {data_info['root']} "
          f"({data_info['speakers']} speakers, split from the {data_info['source']}); this runs the model on "
          f"{minutes + unknown_minutes + noise_minutes:g} min of audio", file=sys.stderr)
    streams = build_streams(scorer, config, clips, noise, minutes=minutes, unknown_minutes=unknown_minutes,
                            noise_minutes=noise_minutes, unknown_share=args.unknown_share,
                            background_volume=args.background_volume, seed=args.stream_seed)
    labels = list(scorer.labels)
    f = figures(streams, labels, config.detector, args.tolerance_ms, args.late_ms)

    recording = streams.recording
    write_wav(out / WAV, recording.wave)
    write_labels_file(out / LABELS, recording.words)
    write_words_file(out / WORDS, streams.keywords.words)
    write_detections(out / DETECTIONS, f["_detections"])
    if streams.non_keywords is not None:
        write_words_file(out / NON_KEYWORD_WORDS, streams.non_keywords.words)
        write_detections(out / NON_KEYWORD_DETECTIONS, streams.non_keywords.detections(labels, config.detector))
    write_detections(out / NOISE_DETECTIONS, streams.noise.detections(labels, config.detector))

    rows = None
    if args.sweep:
        rows = sweep(streams, labels, config.detector, late_ms=args.late_ms)
        write_sweep_csv(out / SWEEP_CSV, rows)
        if streams.non_keywords is not None:
            plot_det(out / DET_PNG, rows, points={"this run": f},
                     title=f"{Path(args.model).name} on {data_info['speakers']} held-out speakers "
                     f"({data_info['partition']})")

    wall = sum(s.wall_seconds for s in streams.streams())
    audio = sum(s.seconds for s in streams.streams())
    gated = sum(s.windows_gated for s in streams.streams())
    windows = sum(s.times.shape[0] for s in streams.streams())
    metrics = {
        **{k: rounded(v) for k, v in f.items() if not k.startswith("_")},
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
        "tolerance_ms": args.tolerance_ms,
        "late_ms": args.late_ms,
        "real_time_factor": round(audio / max(wall, 1e-9), 1),
        "windows_gated_percent": round(100.0 * gated / max(1, windows), 1),
        "model": str(args.model),
        "backend": getattr(scorer, "backend", args.backend),
        "stream_seed": args.stream_seed,
        "hop_ms": args.hop_ms,
        "gate_db": args.gate_db,
        "out": str(out),
    }
    if rows is not None:
        metrics["sweep"] = [{k: rounded(v) for k, v in row.items()} for row in rows]

    print("\n".join(report_lines(metrics)))
    if args.json_file is not None:
        with args.json_file.open("x", encoding="utf-8") as fh:
            json.dump(metrics, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json_file}", file=sys.stderr)
    return 0


def _pct(value) -> str:
    return "   n/a" if value is None else f"{value:6.1f} %"


def report_lines(m: dict) -> list[str]:
    """The text report of a stream test (``m``: the JSON figures)."""
    d, s = m["split"], m["streams"]
    lines = [
        f"stream test of {m['model']} ({m['backend']}), thresholds: {m['threshold_source']}",
        f"  data: the {d['partition']} partition of {d['root']} (split rule {d['split']}, from the {d['source']}): "
        f"{d['speakers']} speakers, {d['keyword_clips']} keyword clips, {d['unknown_clips']} non-keyword clips; "
        + ("none of them trained on" if d["training_record"] and not d["clips_of_training_speakers"] else
           f"WARNING: {d['clips_of_training_speakers']} clips of training speakers" if d["clips_of_training_speakers"]
           else "WARNING: the model has no record of its training speakers, not checked"),
        f"  background: {d['noise']}",
    ]
    if d.get("negatives"):
        n = d["negatives"]
        lines.append(f"  more non-keyword speech: {n['clips']} clips of {n['speakers']} unseen speakers (half {n['half']}) "
                     f"of {', '.join(n['roots'])}; {n['clips_of_training_speakers_left_out']} clips of training "
                     "speakers left out")
    if m.get("calibration_speakers_in_streams"):
        lines.append(f"  WARNING: the thresholds were calibrated on {m['calibration_speakers_in_streams']} of these "
                     "speakers; the figures are optimistic (test on other held-out speakers)")
    for line in m.get("settings_differ_from_calibration") or []:
        lines.append(f"  WARNING: thresholds calibrated with other settings: {line}")
    delay = "n/a" if m["median_delay_ms"] is None else f"{m['median_delay_ms']:.0f} ms"
    p90 = "" if m["p90_delay_ms"] is None else f" (p90 {m['p90_delay_ms']:.0f} ms)"
    lines += [
        f"keywords: {m['keyword_words']} keyword words in {s['keyword_stream_seconds'] / 60:.1f} min "
        f"({s['unknown_share']:g} % of the stream's words are non-keywords, not counted here)",
        f"  recall (correct)   {_pct(m['keyword_recall'])} of the keyword words",
        f"  wrong              {_pct(m['keyword_wrong'])}",
        f"  missed             {_pct(m['keyword_missed'])}",
        f"  median delay       {delay:>8}{p90}, end of the word -> event",
    ]
    if m.get("false_accepts_per_hour") is not None:
        lines += [
            f"non-keyword speech: {m['non_keyword_words']} words ({s['unknown_clips_in_stream']} distinct clips) in "
            f"{s['non_keyword_stream_seconds'] / 60:.1f} min",
            f"  false accepts      {m['false_accepts_per_hour']:6.1f} per hour ({m['false_accepts']} in the stream, "
            f"{100 * m['false_accepts_per_word']:.2f} % of the words, from {m['false_accept_distinct_clips']} distinct "
            "clips)",
        ]
        if m["false_accept_clips"]:
            lines.append("  most accepted: " + ", ".join(f"{c['clip']} as {c['as']} x{c['times']}"
                                                       for c in m["false_accept_clips"][:5]))
    else:
        lines.append("non-keyword speech: no non-keyword clips in the partition (false accepts not measured)")
    lines += [
        f"noise, no speech: {s['noise_seconds'] / 60:.1f} min",
        f"  false alarms       {m['false_alarms_per_hour']:6.1f} per hour ({m['false_alarms']} in the stream)",
        f"TensorFlow's StreamingAccuracyStats (percent of all {s['words']} words, non-keywords included; "
        f"tolerance {m['tolerance_ms']:g} ms):",
        f"  matched {m['tf_matched']:.1f} %, correct {m['tf_correct']:.1f} %, wrong {m['tf_wrong']:.1f} %, "
        f"false positive {m['tf_false_positive']:.1f} %",
        f"speed: {m['real_time_factor']:.0f}x real time; files in {m['out']}",
    ]
    if m.get("sweep"):
        lines.append("threshold sweep (one threshold for all keywords):  threshold  recall  wrong  FA/h speech  FA/h noise")
        for row in m["sweep"]:
            if abs(row["threshold"] * 20 - round(row["threshold"] * 20)) < 1e-6:  # every 0.05
                fa = "n/a" if row["false_accepts_per_hour"] is None else f"{row['false_accepts_per_hour']:.1f}"
                lines.append(f"  {row['threshold']:9.2f}  {row['keyword_recall']:5.1f} %  {row['keyword_wrong']:4.1f} %"
                             f"  {fa:>11}  {row['false_alarms_per_hour']:10.1f}")
    return lines
