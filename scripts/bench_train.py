#!/usr/bin/env python
"""Training throughput: a plain per-file DataLoader vs the project's cached, batched-on-device path.

Same model (the default BiGRU), same optimiser, same machine, one run. Prints clips/s and memory:
  (a) per-file: a Dataset that decodes each WAV with soundfile, augments it (shift + noise) and computes
      its MFCC in DataLoader workers, then the classifier step on the device;
  (b) cached: int16 batches sliced from the memory-mapped waveform cache, moved to the device, augmented
      and turned into MFCC there, batched.
Memory is reported as peak anonymous RSS (process heap, excluding the page cache that maps the cache
file) and peak total RSS.

  python scripts/bench_train.py --data ../shared/data/sc-v2-test-fit --steps 30
  python scripts/bench_train.py --synthetic 105829 --steps 200 --device cuda     # full-size synthetic set
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset

from speech.audio import load_audio, write_wav
from speech.data import LABELS_12, build_index, cached_waveforms, load_noise
from speech.data.augment import WaveAugment
from speech.data.datamodule import BatchedWaves
from speech.features import FrontEnd
from speech.model import BiGRUClassifier


class MemoryWatch:
    """Samples /proc/self/status in a thread; keeps the peaks of RssAnon and VmRSS (kB -> MB)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.peak_anon = self.peak_total = 0.0
        self.interval, self._stop = interval, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> tuple[float, float]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "VmRSS"):
                fields[key] = float(value.split()[0]) / 1024
        return fields.get("RssAnon", 0.0), fields.get("VmRSS", 0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            anon, total = self._read()
            self.peak_anon, self.peak_total = max(self.peak_anon, anon), max(self.peak_total, total)
            time.sleep(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class PerFileDataset(Dataset):
    """The usual baseline: decode + augment + MFCC per clip inside the worker."""

    def __init__(self, paths: list[str | None], labels: np.ndarray, noise: np.ndarray, frontend: FrontEnd) -> None:
        self.paths, self.labels, self.noise, self.frontend = paths, labels, noise, frontend
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        wave = load_audio(path) if path else np.zeros(16000, np.float32)
        shift = self.rng.integers(-1600, 1601)
        wave = np.roll(wave, shift)
        if shift > 0:
            wave[:shift] = 0
        elif shift < 0:
            wave[shift:] = 0
        if self.rng.random() < 0.8:
            start = self.rng.integers(0, len(self.noise) - 16000)
            wave = wave + self.rng.uniform(0, 0.1) * self.noise[start : start + 16000]
        with torch.no_grad():
            feats = self.frontend(torch.from_numpy(np.clip(wave, -1, 1).astype(np.float32))[None])[0]
        return feats, int(self.labels[i])


def one_thread(_worker: int) -> None:
    """DataLoader workers each use one torch thread (the usual setting; more threads only oversubscribe)."""
    torch.set_num_threads(1)


def make_synthetic_tree(root: Path, count: int, seed: int = 0) -> None:
    """``count`` 1 s clips of generated audio (tones + noise) in the full-dataset layout, 12 labels' words."""
    rng = np.random.default_rng(seed)
    words = LABELS_12[2:] + ["bed", "bird", "cat", "dog"]
    t = np.arange(16000) / 16000
    bases = [0.3 * np.sin(2 * np.pi * (200 + 60 * k) * t).astype(np.float32) for k in range(len(words))]
    for word in words:
        (root / word).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        k = i % len(words)
        wave = bases[k] + 0.05 * rng.standard_normal(16000).astype(np.float32)
        write_wav(root / words[k] / f"{i:08x}_nohash_0.wav", wave)


def train_steps(batches, classifier, optimiser, device, steps: int, prepare) -> tuple[int, float]:
    """Run up to ``steps`` optimiser steps; returns (clips, seconds) excluding the first two warm-up steps."""
    clips, start = 0, None
    loss_fn = torch.nn.CrossEntropyLoss()
    for step, batch in enumerate(batches):
        if step == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, clips = time.perf_counter(), 0
        feats, labels = prepare(batch)
        loss = loss_fn(classifier(feats), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        clips += len(labels)
        if step + 1 >= steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clips, time.perf_counter() - (start or time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="data folder (any layout); default: the shared v0.02 portion")
    parser.add_argument("--synthetic", type=int, default=0, help="generate this many clips instead of --data")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-file path")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--skip-per-file", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    console = Console()
    tmp = tempfile.TemporaryDirectory(prefix="bench-train-")
    if args.synthetic:
        root = Path(tmp.name) / "synthetic"
        t0 = time.perf_counter()
        make_synthetic_tree(root, args.synthetic)
        console.print(f"generated {args.synthetic} clips in {time.perf_counter() - t0:.0f} s")
        index = build_index(root, "12", split="hash")
    else:
        root = Path(args.data or Path(__file__).resolve().parents[2] / "shared" / "data" / "sc-v2-test-fit")
        index = build_index(root, "12", split="speaker", validation_percent=0.0, testing_percent=0.0)
    examples = index.splits["training"]
    cache_dir = Path(args.cache_dir or Path(tmp.name) / "cache")
    t0 = time.perf_counter()
    split = cached_waveforms(examples, cache_dir)
    build_s = time.perf_counter() - t0
    noise = load_noise(index)
    frontend = FrontEnd().to(device)
    frontend.fit_normaliser(torch.from_numpy(np.asarray(split.waves[:2048])).float() / 32768)
    rows = []

    def classifier_and_optimiser():
        torch.manual_seed(0)
        model = BiGRUClassifier(40, len(index.labels)).to(device)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    if not args.skip_per_file:
        cpu_frontend = FrontEnd()
        cpu_frontend.load_state_dict(frontend.state_dict())
        dataset = PerFileDataset([ex.path for ex in split.examples], split.labels, noise, cpu_frontend)
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                            persistent_workers=args.workers > 0, worker_init_fn=one_thread)
        model, opt = classifier_and_optimiser()
        with MemoryWatch() as mem:
            clips, secs = train_steps(loader, model, opt, device, args.steps,
                                      lambda b: (b[0].to(device), b[1].to(device)))
        rows.append(("(a) per-file decode + MFCC in workers", clips / secs, mem.peak_anon, mem.peak_total))

    augment = WaveAugment(torch.from_numpy(noise), silence_label=0).to(device)
    dataset = BatchedWaves(split.waves, split.labels)
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(dataset), args.batch_size, False)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=1, persistent_workers=True,
                        pin_memory=device.type == "cuda")

    def prepare(batch):
        waves, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        waves, labels = augment(waves.float() / 32768.0, labels)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return frontend(waves), labels

    model, opt = classifier_and_optimiser()
    with MemoryWatch() as mem:
        clips, secs = train_steps(loader, model, opt, device, args.steps, prepare)
    rows.append(("(b) cached int16 memmap, augment + MFCC on device", clips / secs, mem.peak_anon, mem.peak_total))

    table = Table(title=f"training throughput: {len(examples)} clips, batch {args.batch_size}, device {device}, "
                        f"{torch.get_num_threads()} threads (cache build {build_s:.1f} s)")
    for col in ("path", "clips/s", "full v0.02 epoch (84,843 clips)", "peak RssAnon MB", "peak RSS MB"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for name, rate, anon, total in rows:
        table.add_row(name, f"{rate:,.0f}", f"{84843 / rate:,.0f} s", f"{anon:,.0f}", f"{total:,.0f}")
    console.print(table)
    if len(rows) == 2:
        console.print(f"speed-up of the cached path: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
