"""``speech plot RUN [RUN ...]``: the learning curve (validation accuracy and training loss per epoch) of
training runs, from their ``metrics.csv``. ``speech train`` writes one into every run folder at its end."""

from __future__ import annotations

import argparse
from pathlib import Path

from speech.errors import SettingError
from speech.training.runs import (
    CURVE_FILE,
    check_curve_output,
    epoch_metrics,
    free_curve_name,
    plot_learning_curve,
)

FLAG_HINTS = {"out": "--out", "overwrite": "pass --overwrite to replace it"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (runs/<name>/version_<N>)")
    parser.add_argument(
        "--out", type=Path, help=f"PNG (or .svg, .pdf) to write (default for one run: RUN/{CURVE_FILE}, or a new "
        "RUN/learning_curve-N.png when that exists; needed for several runs)"
    )
    parser.add_argument("--label", action="append", help="legend name per run, repeatable (default: the folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    if args.out is None and len(args.runs) > 1:
        raise SettingError("--out FILE.png is needed for several runs")
    for run_dir in args.runs:  # every input and the output checked before drawing anything
        epoch_metrics(run_dir)
    out = check_curve_output(args.out, args.overwrite) if args.out is not None else free_curve_name(args.runs[0])
    written = plot_learning_curve(args.runs, out, args.label, overwrite=args.overwrite)
    print(f"wrote {written}")
    return 0
