#!/usr/bin/env python
"""Repeated commands: the same keyword said again after a short pause ("up ... up ... up"), how many are detected.

A long window (``--model.frontend.window_ms``) still holds the last word while the next one is said, and the
detector re-arms a keyword only once its score has fallen (docs/streaming.md, the repeat rule). This script
measures that cost: ``--clips`` one-second clips of ``--word`` (sorted file names of ``DATA/WORD``) are joined
with ``PAUSE`` seconds of silence between them, for each pause of ``--pauses``, and streamed through the model
with ``speech.load(MODEL).stream`` (its calibrated thresholds, else 0.7; ``--threshold`` overrides) in 100 ms
chunks. The longest pause (3 s by default) is the reference: there every word stands alone, so a model that
misses a clip there misses it for what it heard, not because of the repeat.

    .venv/bin/python scripts/bench_repeats.py MODEL                       # "yes" x 20, pauses 3, 1, 0.5 s
    .venv/bin/python scripts/bench_repeats.py MODEL --word up --pauses 3,2,1 --json repeats.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SC_V2_TEST = REPO.parent / "shared" / "data" / "sc-v2-test-fit"
HOP = 1_600  # samples fed per call: 100 ms at 16 kHz


def repeated(clips: list[np.ndarray], pause_s: float, sample_rate: int) -> np.ndarray:
    """``clips`` joined with ``pause_s`` of silence before, between and after them."""
    silence = np.zeros(int(round(pause_s * sample_rate)), dtype=np.float32)
    parts = [silence]
    for clip in clips:
        parts += [clip, silence]
    return np.concatenate(parts)


def count(model, wave: np.ndarray, word: str, threshold: float | None) -> tuple[int, int]:
    """Detections of ``word`` and of any other label when ``wave`` is streamed through ``model``."""
    chunks = (wave[i:i + HOP] for i in range(0, len(wave), HOP))
    labels = [d.label for d in model.stream(chunks, sample_rate=model.sample_rate, threshold=threshold)]
    same = sum(label == word for label in labels)
    return same, len(labels) - same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a .ckpt or .onnx model file")
    parser.add_argument("--data", default=str(SC_V2_TEST), help="a <word>/*.wav folder (%(default)s)")
    parser.add_argument("--word", default="yes", help="the keyword to repeat (yes)")
    parser.add_argument("--clips", type=int, default=20, help="how many times it is said (20)")
    parser.add_argument("--pauses", default="3,1,0.5", help="seconds of silence between the words (3,1,0.5)")
    parser.add_argument("--threshold", type=float, help="one threshold for every keyword (default: the model's)")
    parser.add_argument("--json", help="also write the figures here (refuses an existing file)")
    args = parser.parse_args(argv)
    if args.json and Path(args.json).exists():
        print(f"{args.json} exists; refusing to overwrite it", file=sys.stderr)
        return 2
    try:
        pauses = [float(p) for p in args.pauses.split(",")]
    except ValueError:
        print(f"--pauses: expected seconds separated by commas, got {args.pauses!r}", file=sys.stderr)
        return 2
    if args.clips < 1 or any(p < 0 for p in pauses):
        print("--clips must be >= 1 and every pause >= 0 seconds", file=sys.stderr)
        return 2

    import speech
    from speech.audio.io import load_audio

    model = speech.load(args.model)
    if args.word not in model.labels:
        print(f"{args.model}: {args.word!r} is not one of its labels {model.labels}", file=sys.stderr)
        return 2
    files = sorted((Path(args.data) / args.word).glob("*.wav"))[: args.clips]
    if len(files) < args.clips:
        print(f"{Path(args.data) / args.word}: expected {args.clips} .wav clips, found {len(files)}", file=sys.stderr)
        return 2
    clips = [load_audio(f, model.sample_rate) for f in files]

    rows = []
    print(f"{args.model}: {args.clips} x {args.word!r} from {Path(args.data) / args.word}, "
          f"{model.window_samples / model.sample_rate:g} s window")
    print("| pause between words | said | detected as the word | other detections |")
    print("|---|---:|---:|---:|")
    for pause in sorted(pauses, reverse=True):
        same, other = count(model, repeated(clips, pause, model.sample_rate), args.word, args.threshold)
        rows.append({"pause_s": pause, "said": args.clips, "detected": same, "other": other})
        print(f"| {pause:g} s | {args.clips} | {same} | {other} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": str(args.model), "word": args.word, "data": str(args.data), "threshold": args.threshold,
            "window_s": model.window_samples / model.sample_rate, "machine": platform.processor() or platform.machine(),
            "rows": rows,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
