"""Running a scorer over labelled clips: predictions in batches, batch-1 latency, clean and noisy results.

A scorer is :class:`speech.runtime.scorers.TorchScorer` or :class:`speech.runtime.scorers.OnnxScorer` (``labels``,
``scores(waves)``). Waveforms are ``(clips, samples)`` at 16 kHz, float32 in [-1, 1] or int16.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from speech.audio.io import pcm_to_float
from speech.evaluation.errors import EvaluationError
from speech.evaluation.metrics import Metrics, confusion_matrix, metrics_from_confusion
from speech.evaluation.noise import DEFAULT_NOISE_SEED, NoiseMix, noise_mixes
from speech.utils.timing import Stopwatch, call_times_ms


@dataclass
class Latency:
    """Measured on the evaluation run: batch-1 latency (median/p90 over ``clips`` single-clip calls) and the
    throughput of the batched evaluation itself, all in milliseconds per 1 s clip."""

    median_ms: float
    p90_ms: float
    clips: int
    batch_ms_per_clip: float
    batch_size: int
    threads: int  # CPU threads the scorer ran on (torch: torch.get_num_threads(); ONNX: intra-op threads)

    def to_dict(self) -> dict:
        return vars(self).copy()


@dataclass
class Result:
    """One scorer on one set of clips (optionally with noise at ``snr_db``)."""

    metrics: Metrics
    targets: np.ndarray  # (N,) int64
    predictions: np.ndarray  # (N,) int64
    seconds: float  # wall time of the scoring
    snr_db: float | None = None
    latency: Latency | None = None
    noisy: list[Result] = field(default_factory=list)  # the same set with noise, one per SNR

    @property
    def accuracy(self) -> float:
        return self.metrics.accuracy

    @property
    def macro_f1(self) -> float:
        return self.metrics.macro_f1


def predict(scorer, waves: np.ndarray, batch_size: int = 256, noise: NoiseMix | None = None) -> np.ndarray:
    """Class probabilities ``(N, C)`` float32 for ``waves`` ``(N, samples)`` (int16 or float), in batches."""
    if waves.ndim != 2:
        raise EvaluationError(f"expected waves shaped (clips, samples), got {waves.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    for start in range(0, waves.shape[0], batch_size):
        batch = pcm_to_float(waves[start : start + batch_size])
        if noise is not None:
            batch = noise.apply(batch, start)
        out.append(np.asarray(scorer.scores(batch), dtype=np.float32))
    if not out:
        return np.zeros((0, len(scorer.labels)), np.float32)
    return np.concatenate(out)


def measure_latency(scorer, waves: np.ndarray, clips: int = 20, warmup: int = 3) -> tuple[float, float, int]:
    """Batch-1 latency of ``scorer.scores`` over ``clips`` calls, cycling through the first ``clips`` clips:
    ``(median_ms, p90_ms, calls)``."""
    take = [pcm_to_float(waves[i : i + 1]) for i in range(min(clips, len(waves)))]
    if not take:
        return float("nan"), float("nan"), 0
    turn = iter(range(clips + warmup))
    times = call_times_ms({"scores": lambda: scorer.scores(take[next(turn) % len(take)])}, clips, warmup)["scores"]
    return float(np.median(times)), float(np.percentile(times, 90)), len(times)


def evaluate_waves(
    scorer,
    waves: np.ndarray,
    targets: np.ndarray,
    labels: list[str] | None = None,
    *,
    batch_size: int = 256,
    noise: NoiseMix | None = None,
    latency_clips: int = 0,
    top_pairs: int = 10,
) -> Result:
    """Score ``waves`` ``(N, samples)`` (float32 or int16) against ``targets`` ``(N,)`` (indices into ``labels``).

    ``labels`` defaults to ``scorer.labels`` and must equal it (the checkpoint's classes decide).
    ``latency_clips`` > 0 also measures batch-1 latency on that many clips. Deterministic: the same scorer and
    clips give the same result.
    """
    labels = list(scorer.labels if labels is None else labels)
    if labels != list(scorer.labels):
        raise EvaluationError(
            f"the targets are labelled {labels} but the model's classes are {list(scorer.labels)}; "
            "index the data with the model's own label list"
        )
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) != len(waves):
        raise EvaluationError(f"{len(waves)} clips but {len(targets)} targets")
    if len(targets) == 0:
        raise EvaluationError("no clips to evaluate")
    with Stopwatch() as watch:
        probs = predict(scorer, waves, batch_size, noise)
    seconds = watch.seconds
    predictions = probs.argmax(axis=1).astype(np.int64)
    metrics = metrics_from_confusion(confusion_matrix(targets, predictions, len(labels)), labels, top_pairs)
    latency = None
    if latency_clips > 0:
        median, p90, measured = measure_latency(scorer, waves, latency_clips)
        threads = getattr(scorer, "intra_op_threads", None) or torch.get_num_threads()
        latency = Latency(median, p90, measured, 1e3 * seconds / len(targets), batch_size, int(threads))
    return Result(metrics, targets, predictions, seconds, None if noise is None else noise.snr_db, latency)


def evaluate_with_noise(
    scorer,
    waves: np.ndarray,
    targets: np.ndarray,
    noise: np.ndarray,
    snrs: list[float],
    *,
    batch_size: int = 256,
    seed: int = DEFAULT_NOISE_SEED,
    top_pairs: int = 10,
) -> list[Result]:
    """:func:`evaluate_waves` once per SNR (dB) with ``noise`` mixed in (seeded offsets; see :class:`NoiseMix`)."""
    mixes = noise_mixes(waves, targets, list(scorer.labels), noise, snrs, seed)
    return [
        evaluate_waves(scorer, waves, targets, batch_size=batch_size, noise=mix, top_pairs=top_pairs)
        for mix in mixes
    ]


