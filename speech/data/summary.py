"""What is in a data set: clips per split and label, speakers, skipped files, durations from file headers.

Bad files are the ones the scan found (:func:`speech.audio.io.audio_problem`); they are in no split, so the
tables sum to the usable clips and ``bad_files.count`` is the number every other command reports too.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from speech.audio.io import read_header
from speech.data.index import DatasetIndex
from speech.data.splits import SPLITS

log = logging.getLogger(__name__)


def header_info(path: str) -> tuple[float, int, int] | str:
    """``(seconds, sample_rate, channels)`` from the file header (no decoding), or the reason it is unreadable."""
    header = read_header(path)
    if isinstance(header, str):
        return header
    return header.frames / header.samplerate, int(header.samplerate), int(header.channels)


def duration_stats(paths: list[str], workers: int = 4) -> tuple[dict, list[tuple[str, str]]]:
    """Duration statistics (seconds) over ``paths`` from their headers, and ``(path, reason)`` for headers
    soundfile cannot read (none for files that passed the scan, unless they changed since)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        infos = list(pool.map(header_info, paths, chunksize=256))
    good = [info for info in infos if not isinstance(info, str)]
    bad = [(path, info) for path, info in zip(paths, infos, strict=True) if isinstance(info, str)]
    seconds = [info[0] for info in good]
    stats: dict = {"files": len(good)}
    if seconds:
        stats.update(
            min_s=round(min(seconds), 4),
            max_s=round(max(seconds), 4),
            mean_s=round(statistics.fmean(seconds), 4),
            median_s=round(statistics.median(seconds), 4),
            total_hours=round(sum(seconds) / 3600, 3),
            not_1s=sum(1 for s in seconds if abs(s - 1.0) > 1e-3),
            sample_rates={str(rate): n for rate, n in sorted(Counter(info[1] for info in good).items())},
            channels={str(ch): n for ch, n in sorted(Counter(info[2] for info in good).items())},
        )
    return stats, bad


def summarize(index: DatasetIndex, *, durations: bool = True, max_bad: int = 5) -> dict:
    """A JSON-ready summary of ``index``.

    Keys: root, layout, split_method, labels, clips ({split: {label: n}}), totals ({split: n}),
    speakers ({split: n}), silence_examples ({split: n} generated all-zero examples), noise_files,
    silence_files, bad_files ({count, first: [[path, reason], ...]}: the files the scan skipped),
    durations (header statistics over the distinct clip files, when ``durations``).
    """
    summary: dict = {
        "root": str(index.root),
        "layout": index.layout,
        "split_method": index.split_method,
        "labels": list(index.labels),
        "clips": {split: index.label_counts(split) for split in SPLITS},
        "totals": {split: len(index.splits[split]) for split in SPLITS},
        "speakers": {split: len(index.speakers(split)) for split in SPLITS},
        "silence_examples": {
            split: sum(1 for e in index.splits[split] if e.path is None) for split in SPLITS
        },
        "noise_files": len(index.noise_files),
        "silence_files": len(index.silence_files),
    }
    bad = list(index.bad_files)
    if durations:
        paths = sorted({e.path for split in SPLITS for e in index.splits[split] if e.path is not None})
        summary["durations"], header_bad = duration_stats(paths)
        for path, reason in header_bad:  # changed since the scan: say so, but count bad files in one place only
            log.warning("%s: %s (no duration)", path, reason)
        if header_bad:
            summary["durations"]["unreadable"] = len(header_bad)
    summary["bad_files"] = {"count": len(bad), "first": [[path, reason] for path, reason in bad[:max_bad]]}
    return summary
