#!/usr/bin/env python
"""Running-speech DET curves of several models in one figure, from their stream-test JSON reports.

  python scripts/plot_det.py NAME=st.json [NAME=st2.json ...] --out det.png [--title TEXT]

Each report must come from ``speech stream-test MODEL --running-speech DIR --sweep --json st.json``: its
``running_speech.sweep`` rows give, per threshold (one for all keywords), the keyword recall on the keyword stream
and the false accepts per hour of the running speech. The figure draws missed-or-wrong keywords (100 - recall)
against those false accepts: each sweep's lower envelope (its DET curve, as ``speech stream-test`` draws it).
Refuses to overwrite ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speech.evaluation.streams.figures import det_axes, det_curve
from speech.plots import new_figure


def det_rows(report_path: Path) -> list[dict]:
    """The running-speech sweep rows of a stream-test JSON report (ValueError naming the file when it has none)."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{report_path}: not a readable JSON report ({exc})") from None
    rows = (report.get("running_speech") or {}).get("sweep") if isinstance(report, dict) else None
    if not rows:
        raise ValueError(f"{report_path}: no running-speech sweep; make it with 'speech stream-test MODEL "
                         "--running-speech DIR --sweep --json FILE'")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", metavar="NAME=JSON", help="a curve's name and its stream-test JSON")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write (must not exist)")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"plot_det: error: {args.out} exists; refusing to overwrite it", file=sys.stderr)
        return 2
    curves = []
    for item in args.reports:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            print(f"plot_det: error: {item!r}: expected NAME=JSON", file=sys.stderr)
            return 2
        try:
            curves.append((name, det_rows(Path(path))))
        except ValueError as exc:
            print(f"plot_det: error: {exc}", file=sys.stderr)
            return 2
    fig = new_figure(6.4, 4.8, dpi=120)
    ax = fig.subplots()
    for name, rows in curves:
        curve = det_curve(rows, "running_false_accepts_per_hour")
        ax.plot([r["running_false_accepts_per_hour"] for r in curve], [100.0 - r["keyword_recall"] for r in curve],
                "-o", ms=2, lw=1.3, label=name)
    det_axes(ax, "false accepts per hour of running speech (word not in the sentence)", args.title)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
