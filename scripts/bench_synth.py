"""Benchmark ``speech synth``: espeak-ng one call per word vs one call per round, then the whole pipeline.

    .venv/bin/python scripts/bench_synth.py [--per-word 100] [--jobs 1 2]

Prints words/s of the two espeak-ng strategies (single thread, no files) and clips/s of
``synthesize_dataset`` for the 10 Speech Commands keywords at each job count, with the load average
(other processes on the machine slow every number down).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from speech import synth
from speech.data.labels import COMMAND_WORDS_10


def _espeak_rates(rounds: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    voices = synth.voice_pool()
    settings = [(voices[int(rng.integers(len(voices)))], int(rng.integers(120, 231))) for _ in range(rounds)]
    start = time.perf_counter()
    for voice, speed in settings:
        for word in COMMAND_WORDS_10:
            synth.speak(word, voice, speed)
    single = rounds * len(COMMAND_WORDS_10) / (time.perf_counter() - start)
    start = time.perf_counter()
    for voice, speed in settings:
        synth.speak_many(COMMAND_WORDS_10, voice, speed)
    batched = rounds * len(COMMAND_WORDS_10) / (time.perf_counter() - start)
    return single, batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-word", type=int, default=100)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--rounds", type=int, default=20, help="rounds for the espeak-ng strategy comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{synth.espeak_version()}; {os.cpu_count()} CPUs; {len(synth.voice_pool())} voices")
    single, batched = _espeak_rates(args.rounds)
    print(f"espeak-ng + cut + resample, 1 thread: one call per word {single:.0f} words/s, "
          f"one call per round of {len(COMMAND_WORDS_10)} {batched:.0f} words/s ({batched / single:.1f}x)")
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            load = os.getloadavg()[0]
            summary = synth.synthesize_dataset(
                os.path.join(tmp, "set"), COMMAND_WORDS_10, per_word=args.per_word, jobs=jobs, progress=False
            )
            print(f"synthesize_dataset --per-word {args.per_word} --jobs {jobs}: {summary.clips} clips in "
                  f"{summary.seconds:.2f} s = {summary.clips_per_second:.0f} clips/s (load average before: {load:.1f})")


if __name__ == "__main__":
    main()
