"""``speech stream-test``: streaming accuracy on a generated long recording (TensorFlow's protocol).

Writes ``streaming_test.wav``, ``streaming_test_labels.txt`` (``label, time_ms``) and
``streaming_test_detections.txt`` into ``--out``, streams the recording through the engine, scores it with
a 750 ms tolerance, and measures false alarms per hour on a noise-only stream of the same background.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from speech.cli.live import ModelError, add_stream_arguments, open_scorer, stream_config

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "training", "training": "training", "validation": "validation", "val": "validation",
               "test": "testing", "testing": "testing"}
OUTPUT_FILES = ("streaming_test.wav", "streaming_test_labels.txt", "streaming_test_detections.txt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="trained checkpoint (.ckpt) or exported model (.onnx)")
    parser.add_argument("--data", required=True, type=Path, help="data set root (Speech Commands layout)")
    parser.add_argument("--split", default="test", choices=sorted(SPLIT_NAMES), help="which split's clips to use (test)")
    parser.add_argument("--split-rule", default="auto", choices=("auto", "lists", "hash", "speaker"),
                        help="how the data set is split (see speech.data.build_index; auto)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test recording (10)")
    parser.add_argument("--noise-minutes", type=float,
                        help="length of the noise-only stream for false alarms per hour (default: --minutes)")
    parser.add_argument("--unknown-percent", type=float, default=30.0, help="share of _unknown_ words (30)")
    parser.add_argument("--background-volume", type=float, default=0.1, help="noise volume drawn from U(0, V) (0.1)")
    parser.add_argument("--tolerance-ms", type=float, default=750.0, help="matching tolerance (750)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the recording (0)")
    parser.add_argument("--out", type=Path, help="folder for the WAV and labels (default: a new stream-test-<time> folder)")
    parser.add_argument("--json", type=Path, dest="json_file", help="write the metrics to this JSON file")
    add_stream_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from speech.data import DatasetError

    try:
        return _run(args)
    except KeyboardInterrupt:
        print("speech stream-test: stopped (Ctrl-C)", file=sys.stderr)
        return 130
    except (ModelError, DatasetError, FileExistsError, ValueError, OSError) as exc:
        print(f"speech stream-test: error: {exc}", file=sys.stderr)
        return 1


def output_dir(requested: Path | None) -> Path:
    """The folder to write into: ``requested`` (must not hold earlier results) or a new timestamped one."""
    if requested is None:
        requested = Path(f"stream-test-{datetime.now():%Y%m%d-%H%M%S}")
    clash = [name for name in OUTPUT_FILES if (requested / name).exists()]
    if clash:
        raise FileExistsError(f"{requested} already holds {', '.join(clash)}; refusing to overwrite (choose another --out)")
    requested.mkdir(parents=True, exist_ok=True)
    return requested


def clips_by_label(index, split: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for example in index.splits[split]:
        if example.path is not None:
            groups.setdefault(index.labels[example.label], []).append(example.path)
    return groups


def run_stream(scorer, config, wave: np.ndarray, chunk: int = 16_000):
    """Stream ``wave`` (16 kHz) through a fresh engine; returns ``(engine, detections, seconds of wall time)``."""
    from speech.streaming.engine import StreamingRecogniser, stream_array

    engine = StreamingRecogniser(scorer, config, input_rate=16_000)
    start = time.perf_counter()
    found = stream_array(engine, wave, chunk)
    return engine, found, time.perf_counter() - start


def _run(args: argparse.Namespace) -> int:
    from speech.audio import write_wav
    from speech.data import build_index, load_noise
    from speech.streaming.detection import NEVER_REPORTED
    from speech.streaming.long_recording import generate_long_recording, noise_recording
    from speech.streaming.scoring import (
        LabelledTime,
        false_alarms_per_hour,
        median_delay_ms,
        streaming_accuracy,
        window_start_ms,
        write_labels_file,
    )

    if args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    if args.json_file is not None and args.json_file.exists():
        raise FileExistsError(f"{args.json_file} exists; refusing to overwrite it")
    scorer = open_scorer(args.model, args.backend, args.threads)
    config = stream_config(args)
    index = build_index(args.data, labels=list(scorer.labels), split=args.split_rule)
    split = SPLIT_NAMES[args.split]
    groups = clips_by_label(index, split)
    keywords = [label for label in scorer.labels if label not in NEVER_REPORTED]
    if not any(groups.get(k) for k in keywords):
        raise ValueError(f"{args.data}: the {split} split has no clips of the model's keywords {keywords}")
    out = output_dir(args.out)
    noise = load_noise(index)
    rng = np.random.default_rng(args.seed)
    seconds = args.minutes * 60.0
    recording = generate_long_recording(
        {k: v for k, v in groups.items() if k not in ("_silence_",)},
        noise,
        seconds,
        rng,
        unknown_percentage=args.unknown_percent,
        background_volume=args.background_volume,
    )
    write_wav(out / OUTPUT_FILES[0], recording.wave)
    write_labels_file(out / OUTPUT_FILES[1], recording.words)
    print(f"wrote {out / OUTPUT_FILES[0]} ({recording.seconds:.0f} s, {len(recording.words)} words) "
          f"and {out / OUTPUT_FILES[1]}", file=sys.stderr)

    engine, found, wall = run_stream(scorer, config, recording.wave)
    detections = [LabelledTime(d.label, window_start_ms(d.time, engine.window_seconds)) for d in found]
    write_labels_file(out / OUTPUT_FILES[2], [LabelledTime(d.label, 1000.0 * d.time) for d in found])
    stats = streaming_accuracy(recording.words, detections, args.tolerance_ms)
    delay = median_delay_ms(stats, [1000.0 * d.time for d in found], recording.onsets_ms)

    noise_seconds = 60.0 * (args.noise_minutes if args.noise_minutes is not None else args.minutes)
    noise_wave = noise_recording(noise, noise_seconds, rng, args.background_volume)
    _, false_alarms, noise_wall = run_stream(scorer, config, noise_wave)

    metrics = {
        **{k: round(v, 2) for k, v in stats.summary().items()},
        "false_alarms_per_hour": round(false_alarms_per_hour(len(false_alarms), noise_seconds), 2),
        "median_delay_ms": None if delay is None else round(delay, 1),
        "words": stats.words,
        "detections": len(found),
        "stream_seconds": round(recording.seconds, 1),
        "noise_seconds": round(noise_seconds, 1),
        "false_alarms": len(false_alarms),
        "tolerance_ms": args.tolerance_ms,
        "real_time_factor": round((recording.seconds + noise_seconds) / max(wall + noise_wall, 1e-9), 1),
        "windows_gated_percent": round(100.0 * engine.windows_gated / max(1, engine.windows_gated + engine.windows_scored), 1),
        "model": str(args.model),
        "backend": getattr(scorer, "backend", args.backend),
        "seed": args.seed,
        "hop_ms": args.hop_ms,
        "threshold": args.threshold,
        "gate_db": args.gate_db,
    }
    print(f"streaming accuracy on {recording.seconds / 60:.1f} min ({stats.words} words, "
          f"{int(args.unknown_percent)}% _unknown_), tolerance {args.tolerance_ms:g} ms:")
    print(f"  matched        {metrics['matched']:6.1f} %")
    print(f"  correct        {metrics['correct']:6.1f} %")
    print(f"  wrong          {metrics['wrong']:6.1f} %")
    print(f"  false positive {metrics['false_positive']:6.1f} %")
    print(f"  false alarms   {metrics['false_alarms_per_hour']:6.1f} per hour ({len(false_alarms)} in "
          f"{noise_seconds / 60:.1f} min of noise)")
    shown = "n/a" if delay is None else f"{delay:.0f} ms"
    print(f"  median delay   {shown:>8} (speech onset -> detection)")
    print(f"  speed          {metrics['real_time_factor']:.0f}x real time")
    if args.json_file is not None:
        with args.json_file.open("x", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json_file}", file=sys.stderr)
    return 0
