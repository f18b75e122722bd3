#!/usr/bin/env python
"""Where a stream test loses its keyword words: heard, but not sure enough, or not heard at all.

  python scripts/stream_misses.py MODEL DIR [--threshold 0.7] [--after-ms 1500] [--json OUT]

``DIR`` is the ``--out`` folder of ``speech stream-test MODEL ...`` (its ``streaming_test.wav`` and
``streaming_test_words.csv``); ``MODEL`` the model that test ran. The stream is scored again, window by window, as the
engine does (100 ms hop, energy gate, 500 ms average), and for each keyword word the windows ending between its speech
onset and ``--after-ms`` after its speech end are read: is its own label the top one in some window (the model
recognises the word, as the clip test asks), does its own score reach ``--threshold`` in some window, and does the
detector's average reach it. A table per keyword and for all words, and, for the words whose own score never reaches
0.5, the labels their windows leaned to instead. docs/more-speakers.md, "Where the stream loses its words", has the
figures of the recipe. Refuses to overwrite ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np


def read_words(folder: Path) -> list:
    """The keyword words of a stream-test folder (``_unknown_`` ones left out), as the stream test wrote them
    (:func:`speech.evaluation.streams.matching.read_words_file`); ValueError naming the file."""
    from speech.data.labels import UNKNOWN_LABEL
    from speech.evaluation.streams.matching import read_words_file
    from speech.evaluation.streams.testing import WORDS

    path = folder / WORDS
    try:
        words = [w for w in read_words_file(path) if w.label != UNKNOWN_LABEL]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc}); expected the --out folder of "
                         "'speech stream-test MODEL ... --out DIR'") from None
    if not words:
        raise ValueError(f"{path}: no keyword words")
    return words


def word_figures(times, scores, average, valid, labels, words, threshold: float, after_s: float) -> list[dict]:
    """Per word: own label top in some window, own raw score >= threshold in some window, own average >= threshold,
    and the label of the highest raw score over the word's windows."""
    out = []
    for w in words:
        k = labels.index(w.label)
        span = (times >= w.onset_ms / 1000) & (times <= w.end_ms / 1000 + after_s)
        raw = scores[span]
        avg = average[span & valid]
        out.append({
            "label": w.label,
            "top": bool(raw.size) and bool((raw.argmax(axis=1) == k).any()),
            "raw": float(raw[:, k].max()) if raw.size else 0.0,
            "average": float(avg[:, k].max()) if avg.size else 0.0,
            "leaned_to": labels[int(np.unravel_index(raw.argmax(), raw.shape)[1])] if raw.size else None,
        })
    return out


def summary(rows: list[dict], threshold: float) -> dict:
    n = len(rows)
    return {"words": n, "top_percent": 100.0 * sum(r["top"] for r in rows) / n,
            "raw_percent": 100.0 * sum(r["raw"] >= threshold for r in rows) / n,
            "average_percent": 100.0 * sum(r["average"] >= threshold for r in rows) / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the model the stream test ran: a .ckpt, .onnx or packaged name")
    parser.add_argument("folder", help="the stream test's --out folder")
    parser.add_argument("--threshold", type=float, default=0.7, help="the score a word must reach (0.7)")
    parser.add_argument("--after-ms", type=float, default=1500.0,
                        help="how long after a word's speech end its windows count (1500: a 1.5 s window)")
    parser.add_argument("--json", help="also write the figures here (refuses an existing file)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if args.json and Path(args.json).exists():
        print(f"{args.json} exists; refusing to overwrite it", file=sys.stderr)
        return 2
    if not 0.0 <= args.threshold <= 1.0 or args.after_ms < 0:
        print("--threshold must be in [0, 1] and --after-ms >= 0", file=sys.stderr)
        return 2
    try:
        words = read_words(folder)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    import speech
    from speech.audio.io import AudioError, load_audio
    from speech.evaluation.streams.build import score_stream
    from speech.streaming.detection import smooth_scores
    from speech.streaming.engine import StreamingConfig

    try:
        model = speech.load(args.model, threads=1)
        wave = load_audio(folder / "streaming_test.wav", 16_000, samples=None)
    except (speech.SpeechError, AudioError) as exc:
        print(exc, file=sys.stderr)
        return 2
    labels = list(model.labels)
    unknown = sorted({w.label for w in words} - set(labels))
    if unknown:
        print(f"{folder}: words {unknown} are not labels of {args.model} (a stream test of another model?)",
              file=sys.stderr)
        return 2
    config = StreamingConfig()
    scored = score_stream(model.scorer, config, wave, "keywords", [])
    smoothed = smooth_scores(scored.times, scored.scores, config.detector, labels)
    rows = word_figures(scored.times, scored.scores, smoothed.average, smoothed.valid, labels, words,
                        args.threshold, args.after_ms / 1000)
    groups = {"all": rows, **{k: [r for r in rows if r["label"] == k] for k in sorted({r["label"] for r in rows})}}
    table = {name: summary(group, args.threshold) for name, group in groups.items()}
    t = f"{args.threshold:g}"
    print(f"{args.model} on {folder}: {len(rows)} keyword words, windows from speech onset to {args.after_ms:g} ms "
          f"after its end ({config.detector.average_window_ms:g} ms average)")
    print(f"| words | count | own label on top in some window | own score >= {t} in some window | "
          f"its average >= {t} |")
    print("|---|---:|---:|---:|---:|")
    for name, s in table.items():
        print(f"| {name} | {s['words']} | {s['top_percent']:.1f} % | {s['raw_percent']:.1f} % | "
              f"{s['average_percent']:.1f} % |")
    unheard = [r for r in rows if r["raw"] < 0.5]
    leaned = Counter(r["leaned_to"] for r in unheard).most_common()
    print(f"own score never >= 0.5: {len(unheard)} words; their windows leaned to: "
          + (", ".join(f"{label} {n}" for label, n in leaned) or "-"))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": str(args.model), "folder": str(folder), "threshold": args.threshold, "after_ms": args.after_ms,
            "groups": table, "unheard_leaned_to": dict(leaned), "words": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
