#!/usr/bin/env python
"""Benchmark cutting the running-speech training windows: time and peak memory against the speech decoded.

``--data.running_speech`` cuts its ``_unknown_`` windows from the keyword-free sentences of the train readers of a
LibriSpeech-style folder, decoding one sentence at a time, so memory must stay flat however many hours the folder
holds (LibriSpeech's ``train-clean-100``: 100 h, which would need ~23 GB decoded at once). Each row runs in its own
child process (no cache), so its peak RSS is its own; "above start" is the peak minus the RSS after the imports and
the folder scan, i.e. the windows and the one sentence being cut. Prints a table (and JSON with ``--json``).

    .venv/bin/python scripts/bench_running_windows.py                        # librispeech-mini, 1,500 and 6,000
    .venv/bin/python scripts/bench_running_windows.py --root data/librispeech-train-clean-100 --windows 24000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(root: str, windows: int, window_ms: float) -> dict:
    """One row (run in a child process)."""
    from speech.data.labels import LABELS_12
    from speech.data.running_speech import sentence_samples, training_windows
    from speech.data.running_windows import RunningSpeechSource

    sentences = RunningSpeechSource(root).sentences(LABELS_12)  # what training cuts from, for a 12-label model
    hours = sum(sentence_samples(u.path) for u in sentences) / 16_000 / 3600
    start = _rss_mb()
    began = time.perf_counter()
    cut = training_windows(sentences, windows, seed=0, cache_dir=None, samples=round(window_ms * 16))
    seconds = time.perf_counter() - began
    return {"root": root, "windows": windows, "window_ms": window_ms, "sentences": len(sentences),
            "speech_hours": round(hours, 2), "seconds": round(seconds, 2),
            "windows_mb": round(cut.nbytes / 2**20, 1), "peak_rss_mb": round(_rss_mb(), 1),
            "above_start_mb": round(_rss_mb() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "librispeech-mini"))
    parser.add_argument("--windows", type=int, nargs="+", default=[1500, 6000])
    parser.add_argument("--window-ms", type=float, default=1500.0)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.root, args.windows[0], args.window_ms)))
        return 0
    rows = []
    for count in args.windows:
        out = subprocess.run([sys.executable, __file__, "--child", "--root", args.root, "--windows", str(count),
                              "--window-ms", str(args.window_ms)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| running speech | train readers' keyword-free speech | windows | time | windows' size | peak RSS | "
          "above start |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {Path(r['root']).name} | {r['speech_hours']} h ({r['sentences']} sentences) | {r['windows']:,} x "
              f"{r['window_ms']:.0f} ms | {r['seconds']:.1f} s | {r['windows_mb']:.0f} MB | {r['peak_rss_mb']:.0f} MB "
              f"| {r['above_start_mb']:.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
