"""``speech quickstart``: the whole pipeline offline (synthetic data -> train -> evaluate -> export -> stream-test)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from speech.cli.program import program
from speech.cli.threads import add_threads_argument, apply_threads
from speech.quickstart import SHARED_REAL, next_steps, quickstart

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="quickstart", help="output folder (default ./quickstart)")
    parser.add_argument("--per-word", type=int, default=120, help="synthetic clips per keyword (default 120)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--stream-minutes", type=float, default=3.0, help="length of the streaming test (default 3)")
    parser.add_argument("--seed", type=int, default=0,
                        help="one seed for every step: synthesis (synth --seed), training (--seed_everything) and "
                        "the streaming test (--stream-seed); default 0")
    parser.add_argument("--real-data", default=shown_path(SHARED_REAL),
                        help="also evaluate on this folder of real clips when it exists (default: the shared test portion)")
    add_threads_argument(parser, "PyTorch (training, evaluation)")


def shown_path(path: Path) -> str:
    """``path`` relative to the working folder when that is how a user would type it (e.g.
    ``../shared/data/sc-v2-test-fit`` in a checkout), else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return relative if relative.count("..") <= 2 else str(path)


def run(args: argparse.Namespace) -> int:
    from speech.cli.train import quiet_lightning

    quiet_lightning()  # training's Lightning lines once, without tips (as 'speech train' shows them)
    threads = apply_threads(args.threads)  # training and evaluation run in this process: PyTorch's threads, set once
    log.info("%d CPU thread(s) for PyTorch (--threads %s)", threads, args.threads)
    result = quickstart(args.out, args.per_word, args.epochs, args.stream_minutes, args.seed, args.real_data)
    print(next_steps(result, program()))
    return 0
