"""``speech plot RUN [RUN ...]``: the learning curve (validation accuracy and training loss per epoch) of
training runs, from their ``metrics.csv``. ``speech train`` writes one into every run folder at its end."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speech.runs import CURVE_FILE, RunFolderError, plot_learning_curve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (runs/<name>/version_<N>)")
    parser.add_argument(
        "--out", type=Path, help=f"PNG to write (default for one run: RUN/{CURVE_FILE}; needed for several)"
    )
    parser.add_argument("--label", action="append", help="legend name per run, repeatable (default: the folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    if args.out is None and len(args.runs) > 1:
        print("speech plot: error: --out FILE.png is needed for several runs", file=sys.stderr)
        return 2
    out = args.out or args.runs[0] / CURVE_FILE
    try:
        written = plot_learning_curve(args.runs, out, args.label, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"speech plot: error: {exc} (pass --overwrite)", file=sys.stderr)
        return 2
    except RunFolderError as exc:
        print(f"speech plot: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0
