#!/usr/bin/env python
"""Running-speech DET curves of several models in one figure, from their stream-test JSON reports.

  python scripts/plot_det.py NAME=st.json [NAME=st2.json ...] --out det.png [--title TEXT] [--words yes,no]

Each report must come from ``speech stream-test MODEL --running-speech DIR --sweep --json st.json``: its
``running_speech.sweep`` rows give, per threshold (one for all keywords), the keyword recall on the keyword stream
and the false accepts per hour of the running speech. The figure draws missed-or-wrong keywords (100 - recall)
against those false accepts: each sweep's lower envelope (its DET curve, as ``speech stream-test`` draws it).
``--words`` scores a group of keywords only (issue #34's word groups): its recall per threshold is the mean of
those words' recall weighted by their words in the stream (the report's ``per_keyword``); the false accepts stay
those of every keyword. ``NAME=JSON@WORDS`` does the same for one curve (e.g. ``six=st.json@left,right,on``).
It also prints a table: each curve's recall at <= 0.5 / 1 / 2 / 5 false accepts per hour and the mean of the last
three. Refuses to overwrite ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speech.evaluation.streams.figures import det_axes, det_curve
from speech.utils.plots import new_figure


def det_rows(report_path: Path, words: list[str] | None = None) -> list[dict]:
    """The running-speech sweep rows of a stream-test JSON report (ValueError naming the file when it has none);
    with ``words``, each row's ``keyword_recall`` is that group's."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{report_path}: not a readable JSON report ({exc})") from None
    rows = (report.get("running_speech") or {}).get("sweep") if isinstance(report, dict) else None
    if not rows:
        raise ValueError(f"{report_path}: no running-speech sweep; make it with 'speech stream-test MODEL "
                         "--running-speech DIR --sweep --json FILE'")
    if words is None:
        return rows
    per_keyword = report.get("per_keyword") or {}
    counts = {w: per_keyword.get(w, {}).get("words", 0) for w in words}
    total = sum(counts.values())
    if not total or any("per_keyword_recall" not in r for r in rows):
        raise ValueError(f"{report_path}: no words of {','.join(words)} in its keyword stream, or a sweep without "
                         "per-keyword recall (made before it was reported); run stream-test again")
    return [{**r, "keyword_recall": sum(r["per_keyword_recall"].get(w, 0.0) * n for w, n in counts.items()) / total}
            for r in rows]


def word_list(text: str) -> list[str]:
    """``"yes, no,"`` -> ``["yes", "no"]``."""
    return [w.strip() for w in text.split(",") if w.strip()]


def recall_at(curve: list[dict], limit: float) -> float:
    """The highest recall of the DET curve at <= ``limit`` false accepts per hour of running speech (0 if none)."""
    return max((r["keyword_recall"] for r in curve if r["running_false_accepts_per_hour"] <= limit), default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", metavar="NAME=JSON", help="a curve's name and its stream-test JSON")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write (must not exist)")
    parser.add_argument("--title", default="")
    parser.add_argument("--words", default=None, help="score these keywords only (comma-separated)")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"plot_det: error: {args.out} exists; refusing to overwrite it", file=sys.stderr)
        return 2
    words = word_list(args.words) if args.words else None
    curves = []
    for item in args.reports:
        name, sep, path = item.partition("=")
        path, at, own = path.partition("@")
        if not sep or not name or not path or (at and not word_list(own)):
            print(f"plot_det: error: {item!r}: expected NAME=JSON or NAME=JSON@WORD,WORD", file=sys.stderr)
            return 2
        try:
            curves.append((name, det_rows(Path(path), word_list(own) if at else words)))
        except ValueError as exc:
            print(f"plot_det: error: {exc}", file=sys.stderr)
            return 2
    fig = new_figure(6.4, 4.8, dpi=120)
    ax = fig.subplots()
    print("| curve | recall at <= 0.5 / 1 / 2 / 5 false accepts per hour | mean of <= 1, 2, 5 |")
    print("|---|---|---|")
    for name, rows in curves:
        curve = det_curve(rows, "running_false_accepts_per_hour")
        at = [recall_at(curve, limit) for limit in (0.5, 1.0, 2.0, 5.0)]
        print(f"| {name} | {' / '.join(f'{a:.1f}' for a in at)} % | {sum(at[1:]) / 3:.1f} % |")
        ax.plot([r["running_false_accepts_per_hour"] for r in curve], [100.0 - r["keyword_recall"] for r in curve],
                "-o", ms=2, lw=1.3, label=name)
    det_axes(ax, "false accepts per hour of running speech (word not in the sentence)", args.title)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
