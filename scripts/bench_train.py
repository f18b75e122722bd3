#!/usr/bin/env python
"""Training throughput: a plain per-file DataLoader vs what ``speech train`` runs (cached, batched on the device).

Same clips (the training split of ``SpeechCommandsDataModule``), same device, one run. Prints clips/s and memory:
  (a) per-file: a Dataset that decodes each WAV with soundfile, augments it (shift + noise) and computes
      its MFCC in DataLoader workers, then a plain classifier step (the default BiGRU, AdamW) on the device;
  (b) cached: the real training path, a Lightning ``Trainer.fit`` of ``speech.training.module.KeywordModule`` (code
      defaults, EMA of the weights as configs/default.yaml, bf16-mixed on CUDA) on
      ``speech.data.datamodule.SpeechCommandsDataModule``: int16 batches sliced from the memory-mapped waveform
      cache, moved to the device and augmented there (``on_after_batch_transfer``), then MFCC, SpecAugment, loss,
      AdamW + schedule and the EMA update of ``KeywordModule``, Lightning's loop included.
The first steps of each path are warm-up and not timed. Memory is reported as peak anonymous RSS (process heap,
excluding the page cache that maps the cache file) and peak total RSS, in MB.

  python scripts/bench_train.py --data ../shared/data/sc-v2-test-fit --steps 30
  python scripts/bench_train.py --synthetic 105829 --steps 200 --device cuda     # full-size synthetic set
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset

from speech.audio.io import load_audio, write_wav
from speech.classifiers.recurrent import RecurrentClassifier
from speech.cli.train import quiet_lightning
from speech.data import LABELS_12
from speech.data.datamodule import SpeechCommandsDataModule
from speech.frontend.features import FrontEnd
from speech.training.module import KeywordModule

WARMUP_STEPS = 2  # untimed steps at the start of each path (first batches, allocator, worker start-up)
FULL_EPOCH_CLIPS = 84_843  # training clips of Speech Commands v0.02


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


class StepClock:
    """Clips per second over ``steps`` training steps, not counting the first ``WARMUP_STEPS`` (at least one
    step is timed). CUDA work is synchronised where the clock starts and stops."""

    def __init__(self, device: torch.device, steps: int) -> None:
        self.device, self.steps = device, steps
        self.warmup = max(0, min(WARMUP_STEPS, steps - 1))
        self.seen = self.clips = 0
        self.started = self.stopped = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def step_start(self) -> None:
        if self.seen == self.warmup:
            self.started = self._now()

    def step_end(self, clips: int) -> None:
        self.seen += 1
        if self.seen > self.warmup:
            self.clips += clips
        if self.seen == self.steps:
            self.stopped = self._now()

    @property
    def done(self) -> bool:
        return self.seen >= self.steps

    @property
    def rate(self) -> float:
        """Timed clips per second."""
        if not self.stopped:
            raise RuntimeError(f"only {self.seen} of {self.steps} steps ran")
        return self.clips / (self.stopped - self.started)


class ClockCallback(L.Callback):
    """Drives a :class:`StepClock` from a Lightning fit's training batches."""

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.clock.step_start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.clock.step_end(len(batch[1]))


def per_file_rate(batches: Iterable, classifier: torch.nn.Module, device: torch.device, steps: int) -> float:
    """Clips/s of a plain loop: ``(features, labels)`` batches to the device, cross-entropy, AdamW step."""
    optimiser = torch.optim.AdamW(classifier.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    clock = StepClock(device, steps)
    while not clock.done:  # more epochs when the data has fewer than ``steps`` batches
        for feats, labels in batches:
            clock.step_start()
            feats, labels = feats.to(device), labels.to(device)
            loss = loss_fn(classifier(feats), labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            clock.step_end(len(labels))
            if clock.done:
                break
    return clock.rate


def cached_rate(data: SpeechCommandsDataModule, device: torch.device, steps: int, ema_decay: float) -> float:
    """Clips/s of ``speech train``'s own fit: ``KeywordModule`` on the data module, ``steps`` optimiser steps."""
    torch.manual_seed(0)
    model = KeywordModule(data.labels, ema_decay=ema_decay)
    clock = StepClock(device, steps)
    trainer = L.Trainer(
        accelerator=device.type,
        devices=[device.index or 0] if device.type == "cuda" else 1,
        precision="bf16-mixed" if device.type == "cuda" else "32-true",
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ClockCallback(clock)],
    )
    trainer.fit(model, datamodule=data)
    return clock.rate


def measure(name: str, run: Callable[[], float]) -> tuple[str, float, float, float]:
    """``(name, clips/s, peak RssAnon MB, peak RSS MB)`` of one path."""
    with MemoryWatch() as mem:
        rate = run()
    return name, rate, mem.peak_anon, mem.peak_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="data folder (any layout); default: the shared v0.02 portion")
    parser.add_argument("--synthetic", type=int, default=0, help="generate this many clips instead of --data")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help=f"training steps per path ({WARMUP_STEPS} not timed)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-file path")
    parser.add_argument("--ema-decay", type=float, default=0.999,
                        help="KeywordModule's weight averaging in the cached path (configs/default.yaml; 0: off)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--skip-per-file", action="store_true")
    args = parser.parse_args()
    quiet_lightning()
    device = torch.device(args.device)
    console = Console()
    tmp = tempfile.TemporaryDirectory(prefix="bench-train-")
    cache_dir = Path(args.cache_dir or Path(tmp.name) / "cache")
    if args.synthetic:
        root = Path(tmp.name) / "synthetic"
        t0 = time.perf_counter()
        make_synthetic_tree(root, args.synthetic)
        console.print(f"generated {args.synthetic} clips in {time.perf_counter() - t0:.0f} s")
        split = {"split_rule": "hash"}
    else:
        root = Path(args.data or Path(__file__).resolve().parents[2] / "shared" / "data" / "sc-v2-test-fit")
        split = {"split_rule": "speaker", "validation_percent": 0.0, "testing_percent": 0.0}
    data = SpeechCommandsDataModule(str(root), labels="12", cache_dir=str(cache_dir), batch_size=args.batch_size,
                                    **split)
    t0 = time.perf_counter()
    data.setup("fit")  # the waveform caches and the training noise; the fit below reuses both
    build_s = time.perf_counter() - t0
    training = data.data["training"]
    rows = []

    if not args.skip_per_file:
        frontend = FrontEnd()
        frontend.fit_normaliser(data.normaliser_waves())
        noise = data.augment.noise.numpy()
        dataset = PerFileDataset([ex.path for ex in training.examples], training.labels, noise, frontend)
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                            persistent_workers=args.workers > 0, worker_init_fn=one_thread)
        torch.manual_seed(0)
        classifier = RecurrentClassifier(frontend.config.n_mfcc, len(data.labels)).to(device)
        rows.append(measure("(a) per-file decode + MFCC in workers",
                            lambda: per_file_rate(loader, classifier, device, args.steps)))

    rows.append(measure("(b) cached int16 memmap, augment + MFCC on device (KeywordModule fit)",
                        lambda: cached_rate(data, device, args.steps, args.ema_decay)))

    table = Table(title=f"training throughput: {len(training.labels)} clips, batch {args.batch_size}, device {device}, "
                        f"{torch.get_num_threads()} threads (cache build {build_s:.1f} s)")
    for col in ("path", "clips/s", f"full v0.02 epoch ({FULL_EPOCH_CLIPS:,} clips)", "peak RssAnon MB", "peak RSS MB"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for name, rate, anon, total in rows:
        shown = f"{rate:,.0f}" if rate >= 100 else f"{rate:.2f}"  # a busy machine's few clips/s keep their digits
        table.add_row(name, shown, f"{FULL_EPOCH_CLIPS / rate:,.0f} s", f"{anon:,.0f}", f"{total:,.0f}")
    console.print(table)
    if len(rows) == 2:
        console.print(f"speed-up of the cached path: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
