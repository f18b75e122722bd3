"""Memory-mapped int16 waveform cache: one ``.npy`` per split plus a small JSON sidecar.

A split's cache is keyed by a SHA-256 of its file list (path, size, mtime of every clip, in order) and the
decode settings; a change to any of them gives a new key and therefore a new file, so a stale cache is never
read. The file is built once (parallel decode; progress through a :mod:`speech.utils.progress` callback), written to a
temporary name and renamed into place (atomic), and afterwards read through ``np.load(mmap_mode="r")``, so an epoch costs page-cache copies
only. Clips that fail to decode are dropped from the cache and reported in :attr:`CachedSplit.bad_files`.

Files: ``<cache_dir>/waves-<key20>.json`` (written first) and ``<cache_dir>/waves-<key20>.npy``. An existing
``.npy`` without our sidecar is somebody else's file: we refuse (:class:`CacheError`) instead of clobbering it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech.audio.io import AudioError
from speech.data.decode import decode_int16
from speech.data.errors import CacheError
from speech.data.index import Example
from speech.utils.files import write_text_atomically
from speech.utils.progress import ProgressCallback, Step, reporter
from speech.utils.timing import Stopwatch

log = logging.getLogger(__name__)

CACHE_FORMAT = "speech-waves-cache"
CACHE_VERSION = 2  # 2: float samples a little over full scale are clipped, not scaled (speech/audio/io.py)
_CHUNK = 256  # clips per decode task
_CROPS = ("center", "start", "end")


@dataclass
class CachedSplit:
    """A decoded split. ``waves[i]`` (int16, ``samples`` long) belongs to ``examples[i]``, label ``labels[i]``."""

    waves: np.ndarray  # read-only np.memmap int16, shape (N, samples)
    labels: np.ndarray  # int64, shape (N,)
    examples: list[Example]  # the N examples kept, same order
    bad_files: list[tuple[str, str]]  # (path, reason) of examples dropped because they failed to decode
    path: Path | None = None  # the .npy file

    def __len__(self) -> int:
        return len(self.examples)


def cache_key(examples: list[Example], sample_rate: int, samples: int, crop: str) -> str:
    """SHA-256 hex of the settings and every example's (path, size, mtime_ns); silence examples count too."""
    digest = hashlib.sha256()
    settings = {"version": CACHE_VERSION, "sample_rate": sample_rate, "samples": samples, "crop": crop}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    parts = []
    for example in examples:
        if example.path is None:
            parts.append("\0silence")
            continue
        try:
            stat = os.stat(example.path)
            parts.append(f"{example.path}\t{stat.st_size}\t{stat.st_mtime_ns}")
        except OSError:
            parts.append(f"{example.path}\tmissing")
    digest.update("\n".join(parts).encode("utf-8", errors="surrogateescape"))
    return digest.hexdigest()


def cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    """(``.npy``, ``.json``) paths of the cache with this key."""
    stem = f"waves-{key[:20]}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def _read_sidecar(path: Path) -> dict | None:
    """Our sidecar's contents, or None when ``path`` is missing; CacheError when it is not ours."""
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheError(
            f"{path}: exists but is not a readable waveform-cache sidecar ({exc}); move it away"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise CacheError(f"{path}: exists but is not a {CACHE_FORMAT} sidecar; refusing to overwrite it")
    return meta


def default_cache_dir() -> Path:
    """``$SPEECH_CACHE`` or ``~/.cache/speech``: data folders may be read-only, so caches live apart."""
    return Path(os.environ.get("SPEECH_CACHE", Path.home() / ".cache" / "speech"))


def _decode_chunk(
    rows: np.ndarray, examples: list[Example], start: int, sample_rate: int, samples: int, crop: str
) -> list[tuple[int, str]]:
    """Decode ``examples`` into ``rows[start : start + len(examples)]``; return ``(index, reason)`` failures."""
    bad = []
    for offset, example in enumerate(examples):
        i = start + offset
        if example.path is None:
            rows[i] = 0
            continue
        try:
            rows[i] = decode_int16(example.path, sample_rate, samples, crop)
        except AudioError as exc:
            bad.append((i, str(exc)))
        except Exception as exc:  # a cache build never dies on one file
            bad.append((i, f"{example.path}: {type(exc).__name__}: {exc}"))
    return bad


def _build(
    examples: list[Example],
    npy: Path,
    sample_rate: int,
    samples: int,
    crop: str,
    progress: ProgressCallback,
    num_workers: int,
) -> list[tuple[int, str]]:
    """Decode every example into a temporary .npy next to ``npy`` (bad rows removed) and rename it there."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{npy.stem}.", suffix=".npy.tmp", dir=npy.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    compact: Path | None = None
    try:
        rows = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=(len(examples), samples))
        bad: list[tuple[int, str]] = []
        what = f"decoding {len(examples)} clips -> {npy.name}"
        progress(Step(what, 0, len(examples), "clips"))
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            futures = {
                pool.submit(_decode_chunk, rows, examples[s : s + _CHUNK], s, sample_rate, samples, crop): s
                for s in range(0, len(examples), _CHUNK)
            }
            done = 0
            for future in as_completed(futures):
                bad += future.result()
                done += min(_CHUNK, len(examples) - futures[future])
                progress(Step(what, done, len(examples), "clips"))
        bad.sort()
        rows.flush()
        if bad:
            dropped = {i for i, _ in bad}
            keep = np.array([i for i in range(len(examples)) if i not in dropped], dtype=np.int64)
            fd, compact_name = tempfile.mkstemp(prefix=f".{npy.stem}.", suffix=".npy.tmp", dir=npy.parent)
            os.close(fd)
            compact = Path(compact_name)
            kept = np.lib.format.open_memmap(compact, mode="w+", dtype=np.int16, shape=(len(keep), samples))
            for s in range(0, len(keep), 4096):
                kept[s : s + 4096] = rows[keep[s : s + 4096]]
            kept.flush()
            del kept
            del rows
            tmp.unlink()
            tmp, compact = compact, None
        else:
            del rows
        os.replace(tmp, npy)
        return bad
    except BaseException:
        for leftover in (tmp, compact):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink()
        raise


def cached_waveforms(
    examples: list[Example],
    cache_dir: str | Path,
    *,
    sample_rate: int = 16000,
    samples: int = 16000,
    crop: str = "center",
    progress: ProgressCallback | bool | None = True,
    num_workers: int | None = None,
) -> CachedSplit:
    """Decode ``examples`` once into ``cache_dir`` and return them memory-mapped.

    ``waves`` is a read-only int16 memmap ``(N, samples)`` (divide by 32768 for float); silence examples
    (``path=None``) are zero rows. Clips that cannot be decoded are dropped (logged as warnings, listed in
    ``bad_files``). A later call with the same files (paths, sizes, mtimes) and settings reads the cache
    without decoding. ``num_workers``: decode threads (default: CPU count, at most 8). ``progress``: see
    :mod:`speech.utils.progress`.
    """
    if crop not in _CROPS:
        raise ValueError(f"crop must be one of {_CROPS}, got {crop!r}")
    if samples <= 0 or sample_rate <= 0:
        raise ValueError(f"samples and sample_rate must be positive, got {samples}, {sample_rate}")
    cache_dir = Path(cache_dir).expanduser()
    if cache_dir.exists() and not cache_dir.is_dir():
        raise CacheError(f"{cache_dir}: cache folder path exists and is not a folder")
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(examples, sample_rate, samples, crop)
    npy, sidecar = cache_paths(cache_dir, key)
    meta = _read_sidecar(sidecar)
    if meta is not None and meta.get("key") != key:
        raise CacheError(
            f"{sidecar}: belongs to another cache (key {meta.get('key')!r}); refusing to overwrite it"
        )
    if meta is None and npy.exists():
        raise CacheError(
            f"{npy}: exists without its sidecar {sidecar.name}; it is not ours, refusing to overwrite it"
        )

    bad_rows: list[tuple[int, str]] | None = None
    if meta is not None and npy.exists() and meta.get("bad") is not None:  # "bad" None: a build was cut short
        bad_rows = [(int(i), str(reason)) for i, reason in meta["bad"]]
        try:
            waves = np.load(npy, mmap_mode="r")
            expected = (len(examples) - len(bad_rows), samples)
            if waves.shape != expected or waves.dtype != np.int16:
                raise ValueError(f"shape {waves.shape} {waves.dtype}, expected {expected} int16")
        except ValueError as exc:
            log.warning("%s: damaged cache (%s); rebuilding it", npy, exc)
            bad_rows = None
    if bad_rows is None:
        workers = num_workers or min(8, os.cpu_count() or 1)
        meta = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "key": key,
            "sample_rate": sample_rate,
            "samples": samples,
            "crop": crop,
            "clips": len(examples),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "bad": None,  # filled in once the .npy is in place
        }
        write_text_atomically(sidecar, json.dumps(meta), overwrite=True)  # claims the name before the big file lands
        with Stopwatch() as watch:
            bad_rows = _build(examples, npy, sample_rate, samples, crop, reporter(progress), workers)
        meta["bad"] = [[i, reason] for i, reason in bad_rows]
        meta["build_seconds"] = round(watch.seconds, 3)
        write_text_atomically(sidecar, json.dumps(meta, indent=1), overwrite=True)
        log.info(
            "cached %d clips in %s (%.1f s, %d bad)",
            len(examples) - len(bad_rows),
            npy,
            meta["build_seconds"],
            len(bad_rows),
        )
        waves = np.load(npy, mmap_mode="r")
    dropped = {i for i, _ in bad_rows}
    kept = [example for i, example in enumerate(examples) if i not in dropped]
    bad_files = [(examples[i].path or "<silence>", reason) for i, reason in bad_rows]
    for path, reason in bad_files:
        log.warning("skipped %s: %s", path, reason)
    labels = np.fromiter((example.label for example in kept), dtype=np.int64, count=len(kept))
    return CachedSplit(waves=waves, labels=labels, examples=kept, bad_files=bad_files, path=npy)
