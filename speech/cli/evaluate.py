"""``speech evaluate MODEL [MODEL ...] --data DIR``: accuracy, macro-F1, per-class metrics, confusion matrices,
a side-by-side comparison of several models and, with ``--snr``, accuracy with background noise.

Each model file (``.ckpt`` or exported ``.onnx``) is evaluated on the data folder indexed with its own label
list; a folder that lacks one of the model's labels is an error naming the labels and the folder.
Exit status: 0 on success, 2 for bad input (unreadable model, data that does not fit, an output path that
exists or cannot be written: all checked before the evaluation starts), 1 for a failure while running (the
cache or the report cannot be written), 130 for Ctrl-C (no traceback).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from speech.cli.progress import ProgressBars
from speech.cli.split_args import add_split_arguments, resolve_split
from speech.cli.threads import add_threads_argument, apply_threads
from speech.errors import InputFileError, SettingError

# the flag a user changes when the library blames one of its parameters (``exc.param``)
FLAG_HINTS = {
    "split": "choose another --split or --split-rule",
    "overwrite": "pass --overwrite to replace it",
    "out_dir": "--out",
    "json_path": "--json takes a file name, apart from the --out report",
    "allow_trained_speakers": "--allow-trained-speakers",
    "snr": "--snr",
    "batch_size": "--batch-size",
    "data": "--data",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models", nargs="+", metavar="MODEL",
        help="trained checkpoint(s) (.ckpt), exported model(s) (.onnx) or packaged model names (commands); a path "
        "always wins over a name",
    )
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="data folder (any layout speech.data reads)"
    )
    add_split_arguments(parser)
    parser.add_argument(
        "--allow-trained-speakers",
        action="store_true",
        help="score clips of speakers the model was trained on anyway (the figures are then inflated)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="write report.md, report.json, confusion CSV/PNG (and SNR plot) here"
    )
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON here")
    parser.add_argument(
        "--overwrite", action="store_true", help="allow replacing an existing --out folder / --json file"
    )
    parser.add_argument(
        "--snr", metavar="DB,DB,...", help="also evaluate with background noise at these SNRs, e.g. 20,10,5,0"
    )
    parser.add_argument("--noise-seed", type=int, default=0, help="seed of the noise offsets (default 0)")
    parser.add_argument("--batch-size", type=int, default=256, help="clips per scoring call (default 256)")
    add_threads_argument(parser)
    parser.add_argument(
        "--latency-clips", type=int, default=20, help="batch-1 calls timed per model (default 20; 0: skip)"
    )
    parser.add_argument("--top-pairs", type=int, default=10, help="most confused pairs listed (default 10)")
    parser.add_argument(
        "--cache-dir", help="decoded-waveform cache (default $SPEECH_CACHE or ~/.cache/speech)"
    )


def parse_snrs(text: str) -> list[float]:
    """``--snr "20,10,5,0"`` -> ``[20.0, 10.0, 5.0, 0.0]`` (dB; duplicates rejected)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SettingError(f"--snr {text!r}: expected comma-separated numbers in dB, e.g. 20,10,5,0") from None
    if not values:
        raise SettingError(f"--snr {text!r}: no SNR given")
    if len(set(values)) != len(values):
        raise SettingError(f"--snr {text!r}: repeated values")
    if not all(np.isfinite(values)):
        raise SettingError(f"--snr {text!r}: SNRs must be finite")
    return values


def _summary_lines(evals) -> list[str]:
    from speech.evaluation.report import comparability_note, comparison_rows

    note = comparability_note(evals)
    lines = [
        f"{'model':<28} {'set':<3} {'backend':<7} {'accuracy':>9} {'macro-F1':>9} {'params':>10} {'ms/clip b1':>10} "
        f"{'clips':>6}"
    ]
    for row in comparison_rows(evals):
        latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.2f}"
        lines.append(
            f"{row['name']:<28} {row['clip_set']:<3} {row['backend']:<7} {100 * row['accuracy']:>8.2f}% "
            f"{row['macro_f1']:>9.3f} {row['num_parameters']:>10,} {latency:>10} {row['clips']:>6}"
        )
    if note:
        lines.append(f"WARNING: {note}")
    return lines


def check_data_folder(data: str) -> None:
    """``--data`` must be a folder: say what it is otherwise."""
    path = Path(data)
    if not path.exists():
        raise InputFileError(f"--data {data}: no such folder; expected a data folder with one subfolder per label")
    if not path.is_dir():
        raise InputFileError(f"--data {data}: is a file, not a folder; expected a data folder with one subfolder per label")


def run(args: argparse.Namespace) -> int:
    from speech.data import DatasetError
    from speech.data.record import DataRecord
    from speech.evaluation import evaluate_model, model_names
    from speech.evaluation.report import check_outputs, report_json, write_report
    from speech.models import open_model
    from speech.utils.files import write_json

    snrs = parse_snrs(args.snr) if args.snr else None
    if args.batch_size < 1:
        raise SettingError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_outputs(args.out, args.json, args.overwrite)  # before anything slow: found now, not at the end
    check_data_folder(args.data)
    threads = apply_threads(args.threads)

    evals = []
    loaded: dict = {}  # decoded sets, shared by models with the same classes and split
    with ProgressBars() as bars:  # decoding a set: one bar, gone when done (plain lines in a log)
        for name, given in zip(model_names(args.models), args.models, strict=True):
            scorer, choice = open_model(given, "auto", threads)  # a path, or a packaged model by name
            path = str(choice.path)
            record = DataRecord.from_dict(scorer.metadata.get("data"))
            try:
                evals.append(
                    evaluate_model(
                        scorer,
                        path,
                        args.data,
                        resolve_split(args, record, args.data),
                        name=name,
                        cache_dir=args.cache_dir,
                        snrs=snrs,
                        batch_size=args.batch_size,
                        latency_clips=args.latency_clips,
                        noise_seed=args.noise_seed,
                        top_pairs=args.top_pairs,
                        allow_trained_speakers=args.allow_trained_speakers,
                        loaded=loaded,
                        progress=bars,
                    )
                )
            except DatasetError as exc:  # the same message, naming the model whose labels do not fit
                raise DatasetError(
                    f"{path}: the model's labels {list(scorer.labels)} do not fit the data: {exc}", param=exc.param
                ) from None

    print("\n".join(_summary_lines(evals)))
    for ev in evals:
        d = ev.data
        settings = d.get("split_settings", {})
        leak = d.get("clips_of_training_speakers", 0)
        print(
            f"{ev.name}: scored the {d['split']} split of {args.data} ({d['clips']} clips, {d.get('speakers', 0)} "
            f"speakers; split rule {settings.get('split', d['split_rule'])}, from the {settings.get('source', 'defaults')})"
            + (f"; {d['skipped_files']} bad file(s) in the folder skipped" if d.get("skipped_files") else "")
            + (f"; WARNING: {leak} clips of training speakers" if leak else "")
            + (f"; {d['generated_silence_clips']} of them generated silence (all zeros, as TensorFlow's test adds; "
               "--silence-percent 0 leaves them out)" if d.get("generated_silence_clips") else "")
            + (f"; no clips of {', '.join(d['labels_without_clips'])} (scored over all {len(ev.result.metrics.labels)} "
               f"labels; mean F1 of the labels with clips {ev.result.metrics.macro_f1_present:.3f})"
               if d.get("labels_without_clips") else "")
        )
    for ev in evals:
        if ev.result.noisy:
            accs = ", ".join(f"{r.snr_db:g} dB: {100 * r.accuracy:.2f}%" for r in ev.result.noisy)
            print(f"{ev.name} with noise: {accs}")
    if args.out:
        write_report(evals, args.out, overwrite=args.overwrite)
        print(f"report: {Path(args.out) / 'report.md'}")
    if args.json:
        write_json(args.json, report_json(evals), overwrite=args.overwrite)
        print(f"json: {args.json}")
    return 0
