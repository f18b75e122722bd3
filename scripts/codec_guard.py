#!/usr/bin/env python
"""Does a model hear the codec? Score held-out clips as they are and after an Opus round trip (issue #34).

  python scripts/codec_guard.py MODEL [MODEL ...] --data DIR [--split test] [--words yes,no,up,down]

Every clip of ../shared/data/sc-v2-train-4words is Opus-coded and says one of four words, so a model trained on it
may take the codec itself for those words. For the clips of the other classes (held out, by the model's record),
this prints how often the top answer changes when the clip is Opus-coded, how often it moves into ``--words`` and
out of them, the mean probability the words get before and after, and the accuracy both ways. A codec cue shows as
answers moving into the words more than out of them, and the words' probability rising.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from speech.data.codec import opus_round_trip
from speech.data.record import DataRecord, check_held_out, choose_split
from speech.evaluation.eval_set import load_eval_set
from speech.evaluation.scoring import predict
from speech.runtime.scorers import load_scorer


def codec_shift(path: str, data: str, split: str | None, words: list[str]) -> dict:
    """The figures of one model (see the module docstring)."""
    scorer = load_scorer(path)
    record = DataRecord.from_dict(scorer.metadata.get("data"))
    choice = choose_split(record, data, split)
    clips = load_eval_set(data, scorer.labels, split=choice.partition, settings=choice.settings,
                          samples=scorer.frontend.config.window_samples)
    check_held_out(record, clips.examples, clips.root)
    in_words = np.array([label in words for label in scorer.labels])
    keep = ~in_words[clips.targets]
    waves = np.asarray(clips.waves[np.flatnonzero(keep)], dtype=np.float32) / 32768.0
    targets = clips.targets[keep]
    coded = np.stack([opus_round_trip(w) for w in waves])
    before, after = predict(scorer, waves), predict(scorer, coded)
    top_before, top_after = before.argmax(1), after.argmax(1)
    return {
        "model": path, "clips": int(len(targets)), "split": choice.partition,
        "accuracy": float((top_before == targets).mean()), "accuracy_coded": float((top_after == targets).mean()),
        "changed": float((top_before != top_after).mean()),
        "into_words": float((~in_words[top_before] & in_words[top_after]).mean()),
        "out_of_words": float((in_words[top_before] & ~in_words[top_after]).mean()),
        "words_probability": float(before[:, in_words].sum(1).mean()),
        "words_probability_coded": float(after[:, in_words].sum(1).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="checkpoints (.ckpt) or exported models (.onnx)")
    parser.add_argument("--data", required=True, help="the data folder whose held-out clips are scored")
    parser.add_argument("--split", default=None, help="partition (default: the model's held-out one)")
    parser.add_argument("--words", default="yes,no,up,down", help="the labels whose clips were all coded")
    args = parser.parse_args(argv)
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    rows = []
    for path in args.models:
        try:
            rows.append(codec_shift(path, args.data, args.split, words))
        except Exception as exc:  # a benchmark script: one line per failure, no traceback
            print(f"codec_guard: error: {path}: {exc}", file=sys.stderr)
            return 2
    print(f"{'model':<44} {'clips':>5} {'split':<10} {'acc':>6} {'acc coded':>9} {'changed':>7} {'into words':>10} "
          f"{'out of words':>12} {'P(words)':>8} {'coded':>6}")
    for r in rows:
        print(f"{r['model'][-44:]:<44} {r['clips']:>5} {r['split']:<10} {100 * r['accuracy']:>5.1f}% "
              f"{100 * r['accuracy_coded']:>8.1f}% {100 * r['changed']:>6.1f}% {100 * r['into_words']:>9.1f}% "
              f"{100 * r['out_of_words']:>11.1f}% {r['words_probability']:>8.4f} {r['words_probability_coded']:>6.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
