"""``speech evaluate CKPT [CKPT ...] --data ROOT``: accuracy, macro-F1, per-class metrics, confusion matrices,
a side-by-side comparison of several models and, with ``--snr``, accuracy with background noise.

Each model file (``.ckpt`` or exported ``.onnx``) is evaluated on the data folder indexed with its own label
list; a folder that lacks one of the model's labels is an error naming the labels and the folder.
Exit status: 0 on success, 2 for bad input (unreadable model, data that does not fit, existing output).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from speech.data.splits import DEFAULT_SEED
from speech.evaluate import SPLIT_CHOICES, parse_snrs

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models", nargs="+", metavar="CKPT", help="checkpoint(s) (.ckpt) or exported model(s) (.onnx)"
    )
    parser.add_argument(
        "--data", required=True, metavar="ROOT", help="data folder (any layout speech.data reads)"
    )
    parser.add_argument(
        "--split", choices=SPLIT_CHOICES, default="test", help="which split to evaluate (default test)"
    )
    parser.add_argument(
        "--split-rule",
        choices=("auto", "lists", "hash", "speaker"),
        default="auto",
        help="how clips are split: official lists when present else the hash rule (auto, default), or a seeded "
        "speaker-disjoint split (speaker)",
    )
    parser.add_argument(
        "--validation-percent",
        type=float,
        default=10.0,
        help="validation share, hash/speaker rules (default 10)",
    )
    parser.add_argument(
        "--testing-percent", type=float, default=10.0, help="testing share, hash/speaker rules (default 10)"
    )
    parser.add_argument(
        "--split-seed", type=int, default=DEFAULT_SEED, help="seed of the speaker rule and of label sampling"
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
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (torch and ONNX Runtime; default: torch's default, ORT 1)",
    )
    parser.add_argument(
        "--latency-clips", type=int, default=20, help="batch-1 calls timed per model (default 20; 0: skip)"
    )
    parser.add_argument("--top-pairs", type=int, default=10, help="most confused pairs listed (default 10)")
    parser.add_argument(
        "--cache-dir", help="decoded-waveform cache (default $SPEECH_CACHE or ~/.cache/speech)"
    )


def _fail(message: str) -> int:
    print(f"speech evaluate: error: {message}", file=sys.stderr)
    return 2


def _summary_lines(evals) -> list[str]:
    from speech.report import comparison_rows

    lines = [
        f"{'model':<28} {'backend':<7} {'accuracy':>9} {'macro-F1':>9} {'params':>10} {'ms/clip b1':>10} {'clips':>6}"
    ]
    for row in comparison_rows(evals):
        latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.2f}"
        lines.append(
            f"{row['name']:<28} {row['backend']:<7} {100 * row['accuracy']:>8.2f}% {row['macro_f1']:>9.3f} "
            f"{row['num_parameters']:>10,} {latency:>10} {row['clips']:>6}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    import torch

    from speech.checkpoint import CheckpointError
    from speech.data import CacheError, DatasetError
    from speech.evaluate import EvaluationError, evaluate_set, load_eval_set
    from speech.export import OnnxModelError
    from speech.inference import load_scorer
    from speech.report import (
        ModelEvaluation,
        check_json_path,
        check_out_dir,
        model_names,
        report_json,
        write_json,
        write_report,
    )

    try:
        snrs = parse_snrs(args.snr) if args.snr else None
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.out:
            check_out_dir(args.out, args.overwrite)
        if args.json:
            check_json_path(args.json, args.overwrite)
    except (ValueError, FileExistsError) as exc:
        return _fail(str(exc))
    if not Path(args.data).is_dir():
        return _fail(f"--data {args.data}: no such folder")
    if args.threads:
        torch.set_num_threads(args.threads)

    evals = []
    loaded: dict[tuple[str, ...], object] = {}  # labels -> EvalSet, shared by models with the same classes
    for name, path in zip(model_names(args.models), args.models, strict=True):
        try:
            scorer = load_scorer(path, intra_op_threads=args.threads or 1)
        except (CheckpointError, OnnxModelError) as exc:
            return _fail(str(exc))
        key = tuple(scorer.labels)
        try:
            if key not in loaded:
                loaded[key] = load_eval_set(
                    args.data,
                    scorer.labels,
                    split=args.split,
                    split_rule=args.split_rule,
                    cache_dir=args.cache_dir,
                    with_noise=bool(snrs),
                    progress=sys.stderr.isatty(),
                    validation_percent=args.validation_percent,
                    testing_percent=args.testing_percent,
                    seed=args.split_seed,
                )
            data = loaded[key]
            log.info("%s: %d %s clips of %s", name, data.num_clips, args.split, data.root)
            result = evaluate_set(
                scorer,
                data,
                snrs=snrs,
                batch_size=args.batch_size,
                latency_clips=args.latency_clips,
                noise_seed=args.noise_seed,
                top_pairs=args.top_pairs,
            )
        except DatasetError as exc:
            return _fail(f"{path}: the model's labels {list(scorer.labels)} do not fit the data: {exc}")
        except (EvaluationError, CacheError, ValueError) as exc:
            return _fail(f"{path}: {exc}")
        evals.append(
            ModelEvaluation(
                name, str(path), scorer.backend, int(scorer.num_parameters), data.describe(), result
            )
        )

    print("\n".join(_summary_lines(evals)))
    for ev in evals:
        if ev.result.noisy:
            accs = ", ".join(f"{r.snr_db:g} dB: {100 * r.accuracy:.2f}%" for r in ev.result.noisy)
            print(f"{ev.name} with noise: {accs}")
    try:
        if args.out:
            written = write_report(evals, args.out, overwrite=args.overwrite)
            print(f"report: {written['markdown']}")
        if args.json:
            print(f"json: {write_json(args.json, report_json(evals), overwrite=args.overwrite)}")
    except FileExistsError as exc:
        return _fail(str(exc))
    return 0
