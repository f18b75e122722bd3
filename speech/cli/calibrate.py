"""``speech calibrate``: per-keyword detection thresholds for a target false-accept rate, stored in the model.

Parses, calls :func:`speech.evaluation.streams.calibration.run_calibration` and prints its summary. That builds the three
test streams of ``speech stream-test`` from held-out speakers (by default the validation partition of the model's
own split), runs the model once per stream, chooses one threshold per keyword from the stored scores, sweeps a
single threshold for comparison and writes, in ``--report`` (a new folder): ``det_curve.png``, ``sweep.csv`` and
``calibration.json``.

The thresholds go into a copy of the model (``--out NEW.ckpt|NEW.onnx``) or, with ``--in-place``, into the model
file itself (written to a temporary file and renamed). Without either, nothing is stored. ``speech live`` and
``speech stream-test`` use stored thresholds by default; score the calibrated model on *other* held-out speakers.

Exit codes: 0 done; 2 bad input (conflicting options, an unreadable model or data folder, an existing output,
clips of training speakers without ``--allow-trained-speakers``), one line naming what and why; 1 a failure while
running; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speech.cli.live import (
    add_stream_arguments,
    check_engine,
    describe_model_argument,
    open_model,
    stream_config,
)
from speech.cli.stream_args import FLAG_HINTS as STREAM_FLAG_HINTS
from speech.cli.stream_args import add_stream_source_arguments, stream_experiment
from speech.errors import SettingError

FLAG_HINTS = {**STREAM_FLAG_HINTS, **{"out_dir": "--report", "out": "--out", "targets": "--target-fa / --target-noise",
                                       "min_threshold": "--min-threshold", "single": "--single"}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stream_source_arguments(parser, several=True)
    describe_model_argument(parser)
    c = parser.add_argument_group("calibration")
    c.add_argument("--target-fa", type=float, default=1.0,
                   help="false accepts per hour on non-keyword speech to aim for, all keywords together (1.0)")
    c.add_argument("--target-noise", type=float, default=0.5,
                   help="false alarms per hour on speech-free noise to aim for (0.5)")
    c.add_argument("--min-threshold", type=float, default=0.5,
                   help="no keyword threshold below this (0.5)")
    c.add_argument("--single", action="store_true",
                   help="store one threshold for all keywords (the lowest of the sweep that meets both targets on the "
                   "calibration streams) instead of one per keyword")
    c.add_argument("--wrong-weight", type=float, default=1.0,
                   help="cost of a wrong detection against a correct one when lowering a threshold (1.0)")
    c.add_argument("--pooling", type=float, default=0.0,
                   help="shrink each keyword's false accepts towards the keywords' mean, with this weight (0: its own "
                   "only); docs/running-speech.md measures it")
    c.add_argument("--out", type=Path, help="write the model with the thresholds to this new file (same kind)")
    c.add_argument("--in-place", action="store_true", help="store the thresholds in MODEL itself")
    c.add_argument("--report", type=Path, help="folder for det_curve.png, sweep.csv, calibration.json "
                   "(default: a new speech-runs/calibrate-<time> folder)")
    c.add_argument("--json", type=Path, dest="json_file", help="also write the summary to this JSON file")
    add_stream_arguments(parser)
    options = parser._option_string_actions  # adjust two shared options' help for this command
    options["--split"].help = "partition to calibrate on (default: validation, of the model's own split)"
    options["--threshold"].help = argparse.SUPPRESS  # calibration chooses the thresholds


def run(args: argparse.Namespace) -> int:
    if args.out is not None and args.in_place:
        raise SettingError("give --out FILE or --in-place, not both")
    if args.pooling < 0:
        raise SettingError(f"--pooling must be >= 0 (0: each keyword's own false accepts), got {args.pooling}")
    if args.threshold is not None:
        raise SettingError("--threshold does not apply (calibration chooses the thresholds)")
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from speech.evaluation.streams.calibration import run_calibration

    scorer, choice = open_model(args.model, args.backend, args.threads)
    if choice.name is not None and args.in_place:
        raise SettingError(f"--in-place would change the packaged model '{choice.name}' inside the installation "
                           f"({choice.path}); give --out NEW.onnx")
    args.model = str(choice.path)  # a packaged name: its file, which the thresholds are stored into a copy of
    config = stream_config(args)
    check_engine(scorer, config)  # settings the engine refuses: before any work
    folders = list({Path(f).resolve(): Path(f) for f in args.data}.values())  # in order, each folder once
    experiments, notes = [], []
    for folder in folders:  # the running speech is built once, from the first folder's experiment
        one = argparse.Namespace(**{**vars(args), "data": folder, "split_note": None})
        experiments.append(stream_experiment(one, scorer, config, default_partition="validation",
                                             default_half="a", default_readers="calibration", command="calibrate"))
        notes.append(one.split_note)
    result = run_calibration(
        experiments[0], target_false_accepts_per_hour=args.target_fa, target_false_alarms_per_hour=args.target_noise,
        min_threshold=args.min_threshold, wrong_weight=args.wrong_weight, pooling=args.pooling, single=args.single,
        out=args.out,
        in_place=args.in_place, report_dir=args.report, json_path=args.json_file, more=experiments[1:],
    )  # fmt: skip
    for note in filter(None, notes):  # after the output checks and the work: a refusal stays one line
        print(note, file=sys.stderr)
    print("\n".join(report_lines(result.summary, {**result.data, "root": str(folders[0])}, result.report)))
    if "running_speech" in result.summary:
        from speech.evaluation.streams.running import report_lines as running_lines

        r = result.summary["running_speech"]
        print("the false-accept target applied to the running speech of the calibration readers (and 'best single' "
              "too); on that speech (the thresholds' own data: optimistic), calibrated:")
        print("\n".join(running_lines({**r["calibrated"], "stream": r["stream"], "source": r["source"]})))
    return 0


def report_lines(s: dict, data: dict, report: Path) -> list[str]:
    c, d = s["calibrated"], s["default_threshold"]
    lines = [
        f"calibrated {s['model']} on {data['speakers']} held-out speakers ({data['partition']} partition of "
        f"{data['root']}), targets {s['targets']['false_accepts_per_hour']:g} false accepts/hour on non-keyword "
        f"speech and {s['targets']['false_alarms_per_hour']:g} false alarms/hour on noise",
        *[f"  and {a['speakers']} held-out speakers ({a['partition']} partition of {a['root']}), their keyword "
          f"streams joined to the first's" for a in s["calibrated_on"].get("also", [])],
        f"  allowed in these streams: {s['budgets_in_streams']['false_accepts']} false accepts, "
        f"{s['budgets_in_streams']['false_alarms']} false alarms "
        f"({s['calibrated_on']['distinct_non_keyword_clips']} distinct non-keyword clips)",
        "  keyword   threshold  correct  wrong  false accepts  false alarms  (this keyword alone)",
    ]
    for row in s["per_keyword"]:
        t = "never" if row["threshold"] >= 1.0 else f"{row['threshold']:.2f}"
        note = "" if row.get("meets_target", True) else "  OVER TARGET: the best threshold it can have"
        lines.append(f"  {row['keyword']:<9} {t:>9}  {row['correct']:7d}  {row['wrong']:5d}  {row['false_accepts']:13d}"
                     f"  {row['false_alarms']:12d}{note}")
    if s.get("over_target"):
        from speech.streaming.thresholds import over_target_warning

        lines.append(f"  {over_target_warning(s['over_target'])}")

    def line(name: str, f: dict) -> str:
        fa = "n/a" if f["false_accepts_per_hour"] is None else f"{f['false_accepts_per_hour']:.1f}"
        delay = "n/a" if f["median_delay_ms"] is None else f"{f['median_delay_ms']:.0f} ms"
        return (f"  {name:<24} recall {f['keyword_recall']:5.1f} %, wrong {f['keyword_wrong']:4.1f} %, {fa} false "
                f"accepts/h, {f['false_alarms_per_hour']:.1f} false alarms/h, median delay {delay}")

    lines += ["on the calibration streams (the speakers the thresholds were fitted on: optimistic):",
              line(f"calibrated ({s['mode']})", c), line("default threshold", d)]
    if s["best_single_threshold"] is not None:
        lines.append(line(f"best single ({s['best_single_threshold']['threshold']:.2f})", s["best_single_threshold"]))
    if s["written"]:
        lines.append(f"wrote {s['written']} (thresholds in its metadata; 'speech live' and 'speech stream-test' use them)")
    else:
        lines.append("thresholds not stored: give --out NEW_MODEL or --in-place to keep them")
    lines.append(f"report: {report / 'det_curve.png'}, {report / 'sweep.csv'}, {report / 'calibration.json'}")
    return lines
