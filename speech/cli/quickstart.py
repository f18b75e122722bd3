"""``speech quickstart``: the whole pipeline offline (synthetic data -> train -> evaluate -> export -> stream-test)."""

from __future__ import annotations

import argparse
import sys

from speech.quickstart import SHARED_REAL, next_steps, quickstart


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="quickstart", help="output folder (default ./quickstart)")
    parser.add_argument("--per-word", type=int, default=120, help="synthetic clips per keyword (default 120)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--stream-minutes", type=float, default=3.0, help="length of the streaming test (default 3)")
    parser.add_argument("--seed", type=int, default=0,
                        help="one seed for every step: synthesis (synth --seed), training (--seed_everything) and "
                        "the streaming test (--stream-seed); default 0")
    parser.add_argument("--real-data", default=str(SHARED_REAL),
                        help="also evaluate on this folder of real clips when it exists (default: the shared test portion)")


def run(args: argparse.Namespace) -> int:
    try:
        result = quickstart(args.out, args.per_word, args.epochs, args.stream_minutes, args.seed, args.real_data,
)
    except (RuntimeError, ValueError, OSError) as exc:  # a step that failed (espeak-ng missing, training, ...)
        print(f"speech quickstart: error: {exc}", file=sys.stderr)
        return 1
    print(next_steps(result))
    return 0
