"""``speech stream-test``: keyword-spotting figures on generated test streams of held-out speakers.

Builds three streams from one data partition (by default the one the model was trained without): TensorFlow's
test stream (a word every 3 s, ``--unknown-share`` % non-keywords, background noise), a stream of non-keyword
words only and a stream of the background alone. The model runs once per stream; the figures are computed from
the stored scores (see :mod:`speech.evaluation.streams.figures`), and ``--sweep`` adds recall against false accepts
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
import sys
from pathlib import Path

from speech.cli.live import (
    add_stream_arguments,
    check_engine,
    describe_model_argument,
    keyword_share,
    open_model,
    share_text,
    stream_config,
)
from speech.cli.stream_args import FLAG_HINTS as STREAM_FLAG_HINTS
from speech.cli.stream_args import add_stream_source_arguments, stream_experiment, stream_spec

FLAG_HINTS = {**STREAM_FLAG_HINTS, **{"out_dir": "--out"}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stream_source_arguments(parser)
    describe_model_argument(parser)
    parser.add_argument("--tolerance-ms", type=float, default=750.0, help="TF's matching tolerance (750)")
    parser.add_argument("--sweep", action="store_true",
                        help="also compute recall vs false accepts/hour for thresholds 0.30..0.99 from the stored "
                        "scores: sweep.csv and det_curve.png in --out")
    parser.add_argument("--out", type=Path, help="folder for the streams' files (default: a new speech-runs/stream-test-<time> folder)")
    parser.add_argument("--json", type=Path, dest="json_file", help="write the figures to this JSON file")
    add_stream_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from speech.evaluation.streams.testing import run_stream_test

    spec = stream_spec(args)
    spec.lengths()  # bad lengths are refused before the model is loaded
    scorer, choice = open_model(args.model, args.backend, args.threads)
    args.model = str(choice.path)  # a packaged name: its file, which the reports name
    check_engine(scorer, stream_config(args))  # settings the engine refuses: before any work
    keyword_share(args, scorer.metadata)
    result = run_stream_test(stream_experiment(args, scorer, stream_config(args)), threshold=args.threshold,
                             tolerance_ms=args.tolerance_ms, sweep=args.sweep, out_dir=args.out,
                             json_path=args.json_file)
    shown = {**result.figures, "split": {**result.figures["split"], "root": str(args.data)}}  # as the user typed it
    print("\n".join(report_lines(shown)))
    if "running_speech" in result.figures:
        from speech.evaluation.streams.running import report_lines as running_lines

        print("\n".join(running_lines(result.figures["running_speech"])))
    if args.json_file is not None:
        print(f"wrote {args.json_file}", file=sys.stderr)
    return 0


def _pct(value) -> str:
    return "   n/a" if value is None else f"{value:6.1f} %"


def report_lines(m: dict) -> list[str]:
    """The text report of a stream test (``m``: the JSON figures)."""
    d, s = m["split"], m["streams"]
    lines = [
        f"stream test of {m['model']} ({m['backend']}), thresholds: {m['threshold_source']}, keyword share "
        f"{share_text(m.get('keyword_share'))}",
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
    if m.get("per_keyword"):
        lines.append("  per keyword (caught / words): " + ", ".join(
            f"{k} {row['recall']:.0f} % / {row['words']}" for k, row in m["per_keyword"].items()))
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
