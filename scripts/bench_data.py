#!/usr/bin/env python
"""Benchmark the data layer: index build (scan + split), cache build and cached-epoch read speed.

Runs on the shared data folders and on a generated full-layout tree of ``--files`` tiny WAVs (hard links of one
file, built in a temporary folder and removed afterwards). Every data set is measured in its own child
process so that its peak RSS is its own. Prints a table (and JSON with ``--json``).

    .venv/bin/python scripts/bench_data.py                 # shared data + 105,829-file tree
    .venv/bin/python scripts/bench_data.py --files 20000   # smaller generated tree

Epoch reads take shuffled batches of 256 rows from the largest split's memmap: the first epoch in a fresh
process (pages faulted into the mapping), then the median of later epochs as int16 (what the DataModule
copies) and converted to float32. Peak RSS includes the file-backed pages of the memory-mapped cache that the epoch read touched (they are page
cache, reclaimable, not private memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATASETS = {  # name -> (folder, labels, split)
    "sc-v1-sample": (SHARED / "sc-v1-sample", "all", "auto"),
    "sc-v2-test-fit": (SHARED / "sc-v2-test-fit", "12", "speaker"),
    "fsdd (8 kHz)": (SHARED / "fsdd", "all", "speaker"),
}


def measure(
    root: str, labels: str, split: str, cache_dir: str, workers: int | None, read_seconds: float
) -> dict:
    """All three measurements for one folder (run in a child process)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from speech.audio.io import pcm_to_float
    from speech.data import SplitSettings, build_index, cached_waveforms

    started = time.perf_counter()
    index = build_index(root, labels, split=SplitSettings(rule=split))
    scan_s = time.perf_counter() - started
    files = sum(1 for split_examples in index.splits.values() for e in split_examples if e.path)

    started = time.perf_counter()
    cached = {
        name: cached_waveforms(examples, cache_dir, progress=False, num_workers=workers)
        for name, examples in index.splits.items()
        if examples
    }
    build_s = time.perf_counter() - started
    clips = sum(len(c) for c in cached.values())

    started = time.perf_counter()
    reopened = {name: cached_waveforms(index.splits[name], cache_dir, progress=False) for name in cached}
    reopen_s = time.perf_counter() - started

    waves = max(reopened.values(), key=len).waves
    rng = np.random.default_rng(0)

    def epoch_rate(convert: bool) -> float:
        order = rng.permutation(len(waves))
        started = time.perf_counter()
        for s in range(0, len(order), 256):
            batch = waves[order[s : s + 256]]  # what the DataModule does: one fancy-indexed int16 batch
            if convert:
                batch = pcm_to_float(batch)
        return len(order) / (time.perf_counter() - started)

    first = epoch_rate(False)  # fresh process: the mapping's pages are faulted in (file in page cache)
    steady, floats, started = [], [], time.perf_counter()
    while not steady or time.perf_counter() - started < read_seconds:
        steady.append(epoch_rate(False))
        floats.append(epoch_rate(True))
    return {
        "files": files,
        "examples": sum(len(v) for v in index.splits.values()),
        "scan_s": round(scan_s, 3),
        "scan_files_per_s": round(files / scan_s),
        "cache_clips": clips,
        "cache_build_s": round(build_s, 2),
        "cache_build_clips_per_s": round(clips / build_s),
        "cache_reopen_s": round(reopen_s, 3),
        "read_split_clips": len(waves),
        "read_epochs": 1 + 2 * len(steady),
        "first_epoch_clips_per_s": round(first),
        "read_clips_per_s": round(float(np.median(steady))),
        "read_float_clips_per_s": round(float(np.median(floats))),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run_child(name: str, root: Path, labels: str, split: str, args, tmp: Path) -> dict:
    cache_dir = tmp / f"cache-{abs(hash(name))}"
    command = [sys.executable, __file__, "--child", str(root), labels, split, str(cache_dir),
               str(args.workers or 0), str(args.read_seconds)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    shutil.rmtree(cache_dir, ignore_errors=True)
    return {"dataset": name, **json.loads(out.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=105_829, help="files in the generated tree (0: none)")
    parser.add_argument("--skip-shared", action="store_true", help="only the generated tree")
    parser.add_argument("--workers", type=int, default=None, help="cache decode threads (default: CPU count)")
    parser.add_argument("--read-seconds", type=float, default=2.0, help="minimum time of the epoch-read test")
    parser.add_argument(
        "--tmp", default=None, help="where to build the tree and caches (default: system tmp)"
    )
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, labels, split, cache_dir, workers, read_seconds = args.child
        print(json.dumps(measure(root, labels, split, cache_dir, int(workers) or None, float(read_seconds))))
        return 0

    sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the speech package, and the tests' data-tree helpers
    from rich.console import Console
    from rich.table import Table
    from synthetic_data import tiny_wav_tree

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_", dir=args.tmp))
    try:
        if not args.skip_shared:
            for name, (root, labels, split) in DATASETS.items():
                if root.is_dir():
                    rows.append(run_child(name, root, labels, split, args, tmp))
        if args.files:
            started = time.perf_counter()
            tree = tiny_wav_tree(tmp / "tree", args.files)
            made = time.perf_counter() - started
            row = run_child(f"generated {args.files:,} (0.1 s WAVs)", tree, "all", "auto", args, tmp)
            row["tree_build_s"] = round(made, 1)
            rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"data layer benchmark ({os.cpu_count()} CPUs)")
    columns = [
        ("dataset", "dataset"),
        ("files", "files"),
        ("scan+split s", "scan_s"),
        ("scan files/s", "scan_files_per_s"),
        ("cache build s", "cache_build_s"),
        ("build clips/s", "cache_build_clips_per_s"),
        ("reopen s", "cache_reopen_s"),
        ("1st epoch clips/s", "first_epoch_clips_per_s"),
        ("epoch int16 clips/s", "read_clips_per_s"),
        ("epoch float32 clips/s", "read_float_clips_per_s"),
        ("peak RSS MB", "peak_rss_mb"),
    ]
    for title, _ in columns:
        table.add_column(title, justify="left" if title == "dataset" else "right")
    for row in rows:
        table.add_row(
            *(f"{row[key]:,}" if isinstance(row[key], int) else str(row[key]) for _, key in columns)
        )
    Console(width=max(160, shutil.get_terminal_size().columns)).print(table)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
