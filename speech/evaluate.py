"""Evaluation: a scorer on labelled 1 s clips -> confusion matrix, accuracy, macro-F1, per-class metrics.

The maths (confusion matrix, precision/recall/F1, most confused pairs, noise mixing at a given SNR) are pure
functions on arrays. :func:`evaluate_waves` runs a scorer (:class:`speech.inference.TorchScorer` or
:class:`speech.export.OnnxScorer`) over waveforms in batches, optionally with background noise mixed in;
:func:`evaluate_dataset` does the same for a data folder read through :mod:`speech.data`.

Conventions: waveforms are ``(clips, samples)`` at 16 kHz, float32 in [-1, 1] or int16 (divided by 32768);
confusion matrices are ``(classes, classes)`` int64 with rows = true class, columns = predicted class.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speech.activity import active_speech_power
from speech.audio import pcm_to_float
from speech.data.labels import SILENCE_LABEL
from speech.timing import call_times_ms

log = logging.getLogger(__name__)

DEFAULT_NOISE_SEED = 0


class EvaluationError(ValueError):
    """An evaluation that cannot be run as asked (empty split, labels that do not fit, bad shapes)."""


# --------------------------------------------------------------------------------------------- metrics


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts; row = true class, column = predicted class."""
    targets = np.asarray(targets, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    if targets.shape != predictions.shape:
        raise ValueError(f"targets {targets.shape} and predictions {predictions.shape} differ in length")
    for name, values in (("targets", targets), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), found {values.min()}..{values.max()}")
    flat = np.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


@dataclass
class ClassMetrics:
    """One class: precision, recall and F1 in [0, 1] (0 when undefined), support = true clips of the class."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int  # clips predicted as this class


@dataclass
class ConfusedPair:
    """``count`` clips of class ``true`` predicted as ``predicted`` (``fraction`` of the true class's clips)."""

    true: str
    predicted: str
    count: int
    fraction: float


@dataclass
class Metrics:
    """Everything derived from one confusion matrix."""

    labels: list[str]
    confusion: np.ndarray  # (C, C) int64, rows = true
    accuracy: float  # trace / sum, in [0, 1]
    macro_f1: float  # torchmetrics' macro F1 (classes with clips or predictions)
    per_class: list[ClassMetrics]
    confused_pairs: list[ConfusedPair]

    @property
    def num_clips(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "clips": self.num_clips,
            "per_class": [vars(c).copy() for c in self.per_class],
            "confused_pairs": [vars(p).copy() for p in self.confused_pairs],
            "confusion": {"labels": list(self.labels), "matrix": self.confusion.tolist()},
        }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = num.astype(np.float64), den.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def most_confused_pairs(confusion: np.ndarray, labels: list[str], top: int = 10) -> list[ConfusedPair]:
    """The ``top`` largest off-diagonal cells, biggest first (ties: by true then predicted class index)."""
    c = np.asarray(confusion)
    support = c.sum(axis=1)
    cells = [
        (int(c[i, j]), i, j) for i in range(c.shape[0]) for j in range(c.shape[1]) if i != j and c[i, j] > 0
    ]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [ConfusedPair(labels[i], labels[j], n, n / int(support[i])) for n, i, j in cells[:top]]


def classification_scores(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict[str, object]:
    """Accuracy, macro-F1 and per-class precision/recall/F1 from torchmetrics, the definitions training logs
    (``val/acc`` is micro accuracy, ``val/f1`` macro F1).

    Macro-F1 follows torchmetrics: classes with neither clips nor predictions are left out of the mean, a class
    predicted but absent from the data counts with F1 0. Undefined per-class values are 0.
    """
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    preds = torch.as_tensor(np.asarray(predictions, dtype=np.int64))
    target = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    return {
        "accuracy": float(multiclass_accuracy(preds, target, num_classes, average="micro")),
        "macro_f1": float(multiclass_f1_score(preds, target, num_classes, average="macro")),
        "precision": multiclass_precision(preds, target, num_classes, average="none").numpy().astype(np.float64),
        "recall": multiclass_recall(preds, target, num_classes, average="none").numpy().astype(np.float64),
        "f1": multiclass_f1_score(preds, target, num_classes, average="none").numpy().astype(np.float64),
    }


def metrics_from_confusion(confusion: np.ndarray, labels: list[str], top_pairs: int = 10) -> Metrics:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the most confused pairs.

    The scores come from torchmetrics (:func:`classification_scores`) on the clips the matrix counts, so they
    are the numbers training logs for the same predictions.
    """
    c = np.asarray(confusion, dtype=np.int64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] != len(labels):
        raise ValueError(f"confusion matrix of shape {c.shape} does not fit {len(labels)} labels")
    total = int(c.sum())
    if total == 0:
        raise EvaluationError("no clips were evaluated (the confusion matrix is empty)")
    n = len(labels)
    cells = np.repeat(np.arange(n * n), c.ravel())
    scores = classification_scores(cells // n, cells % n, n)
    support = c.sum(axis=1)
    predicted = c.sum(axis=0)
    per_class = [
        ClassMetrics(
            labels[i],
            float(scores["precision"][i]),
            float(scores["recall"][i]),
            float(scores["f1"][i]),
            int(support[i]),
            int(predicted[i]),
        )
        for i in range(n)
    ]
    return Metrics(
        labels=list(labels),
        confusion=c,
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        per_class=per_class,
        confused_pairs=most_confused_pairs(c, labels, top_pairs),
    )


# ------------------------------------------------------------------------------------------ noise mixing


def noise_offsets(
    num_clips: int, noise_samples: int, clip_samples: int, seed: int = DEFAULT_NOISE_SEED
) -> np.ndarray:
    """Start sample of each clip's noise segment: ``(num_clips,)`` int64, seeded, in ``[0, noise - clip]``."""
    if noise_samples < clip_samples:
        raise ValueError(f"noise of {noise_samples} samples is shorter than one {clip_samples}-sample clip")
    rng = np.random.default_rng(seed)
    return rng.integers(0, noise_samples - clip_samples + 1, size=num_clips, dtype=np.int64)


def mix_at_snr(
    clean: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    offsets: np.ndarray,
    signal_power: np.ndarray,
) -> np.ndarray:
    """Add ``noise[offsets[i] : offsets[i] + samples]`` to clip ``i``, scaled so that
    ``10 * log10(signal_power[i] / noise_power) == snr_db`` (noise power = mean square of the scaled segment).

    ``clean``: ``(N, samples)`` float32; ``noise``: 1-D float32; ``signal_power``: ``(N,)`` (see
    :func:`active_speech_power`). A clip whose ``signal_power`` is 0, or whose noise segment is all zeros, is
    returned unchanged. The result is clipped to [-1, 1] like a real recording; float32 ``(N, samples)``.
    """
    clean = pcm_to_float(clean)
    n, samples = clean.shape
    offsets = np.asarray(offsets, dtype=np.int64)
    signal_power = np.asarray(signal_power, dtype=np.float64)
    if offsets.shape != (n,) or signal_power.shape != (n,):
        raise ValueError(
            f"need one offset and one signal power per clip ({n}), got {offsets.shape}, {signal_power.shape}"
        )
    segments = np.asarray(noise, dtype=np.float32)[offsets[:, None] + np.arange(samples)[None, :]].astype(
        np.float64
    )
    noise_power = (segments**2).mean(axis=1)
    target = signal_power / 10.0 ** (snr_db / 10.0)
    scale = np.sqrt(np.divide(target, noise_power, out=np.zeros_like(target), where=noise_power > 0))
    mixed = clean.astype(np.float64) + segments * scale[:, None]
    return np.clip(mixed, -1.0, 1.0).astype(np.float32)


@dataclass
class NoiseMix:
    """Background noise at ``snr_db`` for a whole evaluation set.

    ``offsets[i]`` picks clip ``i``'s noise segment (the same offsets for every SNR, so only the level changes);
    ``reference_power`` is the signal power used for clips without speech (``_silence_`` clips, all-zero
    clips): the median active-speech power of the set's speech clips, so silence clips get noise at the level
    the words do.
    """

    noise: np.ndarray
    snr_db: float
    offsets: np.ndarray
    reference_power: float
    no_speech: np.ndarray  # (N,) bool: clips whose signal power is the reference

    def apply(self, clean: np.ndarray, start: int) -> np.ndarray:
        """Mix the noise into clips ``start .. start + len(clean)`` of the set."""
        stop = start + clean.shape[0]
        power = active_speech_power(clean)
        power = np.where(self.no_speech[start:stop] | (power <= 0), self.reference_power, power)
        return mix_at_snr(clean, self.noise, self.snr_db, self.offsets[start:stop], power)


def reference_speech_power(waves: np.ndarray, no_speech: np.ndarray, batch_size: int = 1024) -> float:
    """Median active-speech power over the clips that have speech (``~no_speech`` and non-zero); 1e-2 if none."""
    powers = []
    for start in range(0, len(waves), batch_size):
        p = active_speech_power(waves[start : start + batch_size])
        keep = ~no_speech[start : start + batch_size] & (p > 0)
        powers.append(p[keep])
    allp = np.concatenate(powers) if powers else np.zeros(0)
    return float(np.median(allp)) if allp.size else 1e-2


def noise_mixes(
    waves: np.ndarray,
    targets: np.ndarray,
    labels: list[str],
    noise: np.ndarray,
    snrs: list[float],
    seed: int = DEFAULT_NOISE_SEED,
) -> list[NoiseMix]:
    """One :class:`NoiseMix` per SNR for the evaluation set ``waves`` (shared offsets and reference power)."""
    targets = np.asarray(targets)
    silence = labels.index(SILENCE_LABEL) if SILENCE_LABEL in labels else -1
    no_speech = targets == silence
    offsets = noise_offsets(len(waves), len(noise), waves.shape[1], seed)
    reference = reference_speech_power(waves, no_speech)
    noise = np.ascontiguousarray(noise, dtype=np.float32)
    return [NoiseMix(noise, float(snr), offsets, reference, no_speech) for snr in snrs]


# ------------------------------------------------------------------------------------------- evaluation


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
    started = time.perf_counter()
    probs = predict(scorer, waves, batch_size, noise)
    seconds = time.perf_counter() - started
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


# ------------------------------------------------------------------------------------------ data folders


@dataclass
class EvalSet:
    """Decoded clips of one split of a data folder, labelled with a model's classes."""

    root: Path
    split: str  # test | validation | train | all
    split_rule: str  # the rule actually used (lists | hash | speaker)
    layout: str
    labels: list[str]
    waves: np.ndarray  # int16 (N, 16000), memory-mapped
    targets: np.ndarray  # (N,) int64
    examples: list  # speech.data.Example, same order
    noise: np.ndarray | None = None  # filled in by load_eval_set(with_noise=True)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): bad files of the folder
    split_settings: dict = field(default_factory=dict)  # how the split was built (rule, percents, seed, source)
    trained_clips: int = 0  # clips whose speaker the model was trained on (only when explicitly allowed)

    @property
    def num_speakers(self) -> int:
        return len({ex.speaker for ex in self.examples if ex.speaker})

    @property
    def num_clips(self) -> int:
        return len(self.targets)

    def describe(self) -> dict:
        return {
            "root": str(self.root),
            "split": self.split,
            "split_rule": self.split_rule,
            "layout": self.layout,
            "clips": self.num_clips,
            "clips_per_label": {
                label: int(n)
                for label, n in zip(
                    self.labels, np.bincount(self.targets, minlength=len(self.labels)), strict=True
                )
            },
            "skipped_files": len(self.skipped),
            "speakers": self.num_speakers,
            "split_settings": dict(self.split_settings),
            "clips_of_training_speakers": self.trained_clips,
        }


def load_eval_set(
    root: str | Path,
    labels: list[str],
    split: str = "test",
    split_rule: str = "auto",
    cache_dir: str | Path | None = None,
    with_noise: bool = False,
    progress: bool = False,
    **index_options,
) -> EvalSet:
    """Index ``root`` with the model's ``labels`` (see :func:`speech.data.build_index`), decode the ``split``
    (``test``/``validation``/``train``/``all``) through the waveform cache and return it.

    ``index_options`` go to :func:`~speech.data.build_index` (``validation_percent``, ``testing_percent``,
    ``seed``, ...), so the split a model was trained with can be reproduced. Whether the clips are unseen by a
    model is checked by the caller with :func:`speech.data.record.check_held_out` (one data set may serve
    several models).
    Raises :class:`speech.data.DatasetError` when the folder lacks a label (the message names the missing labels
    and the folder) and :class:`EvaluationError` when the chosen split is empty.
    """
    from speech.data import build_index, cached_waveforms, load_noise
    from speech.data.cache import default_cache_dir
    from speech.data.splits import SPLITS, partition_splits

    index = build_index(root, labels=list(labels), split=split_rule, **index_options)
    if list(index.labels) != list(labels):  # build_index keeps an explicit list as given; guard anyway
        raise EvaluationError(f"{index.root}: indexed labels {index.labels} differ from the model's {labels}")
    names = list(partition_splits(split))
    examples = [example for name in names for example in index.splits[name]]
    if not examples:
        counts = {name: len(index.splits[name]) for name in SPLITS}
        raise EvaluationError(
            f"{index.root}: the {split!r} split is empty with split rule {split_rule!r} (used: {index.split_method}); "
            f"clips per split: {counts}. Pick another --split or --split-rule (e.g. 'speaker')"
        )
    elsewhere = sum(len(index.splits[name]) for name in SPLITS) - len(examples)
    if index.layout == "test_set" and split == "test" and elsewhere:
        log.info(
            "%s: test-set layout, but %d clip(s) fall outside the %r split under rule %r (clips without a speaker, "
            "such as _silence_, are split by file name); --split all evaluates every clip",
            index.root,
            elsewhere,
            split,
            index.split_method,
        )
    cached = cached_waveforms(examples, cache_dir or default_cache_dir(), progress=progress)
    if len(cached) == 0:
        raise EvaluationError(
            f"{index.root}: none of the {len(examples)} clips of the {split!r} split could be decoded"
        )
    noise = load_noise(index) if with_noise else None
    return EvalSet(
        root=index.root,
        split=split,
        split_rule=index.split_method,
        layout=index.layout,
        labels=list(index.labels),
        waves=cached.waves,
        targets=np.asarray(cached.labels, dtype=np.int64),
        examples=cached.examples,
        noise=noise,
        skipped=list(index.bad_files) + list(cached.bad_files),  # the scan's verdict, as in 'speech data summary'
        split_settings={"split_rule": split_rule, **index_options},
    )


def evaluate_set(
    scorer,
    data: EvalSet,
    *,
    snrs: list[float] | None = None,
    batch_size: int = 256,
    latency_clips: int = 20,
    noise_seed: int = DEFAULT_NOISE_SEED,
    top_pairs: int = 10,
) -> Result:
    """Clean evaluation (with latency) plus, when ``snrs`` is given, one noisy evaluation per SNR in ``noisy``."""
    if list(data.labels) != list(scorer.labels):
        raise EvaluationError(
            f"the data set was indexed for labels {data.labels}, the model has {scorer.labels}"
        )
    result = evaluate_waves(
        scorer,
        data.waves,
        data.targets,
        batch_size=batch_size,
        latency_clips=latency_clips,
        top_pairs=top_pairs,
    )
    if snrs:
        if data.noise is None:
            raise EvaluationError("noise evaluation needs the data set's noise: load it with with_noise=True")
        result.noisy = evaluate_with_noise(
            scorer,
            data.waves,
            data.targets,
            data.noise,
            snrs,
            batch_size=batch_size,
            seed=noise_seed,
            top_pairs=top_pairs,
        )
    return result


def parse_snrs(text: str) -> list[float]:
    """``"20,10,5,0"`` -> ``[20.0, 10.0, 5.0, 0.0]`` (dB; duplicates rejected)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--snr {text!r}: expected comma-separated numbers in dB, e.g. 20,10,5,0") from None
    if not values:
        raise ValueError(f"--snr {text!r}: no SNR given")
    if len(set(values)) != len(values):
        raise ValueError(f"--snr {text!r}: repeated values")
    if not all(np.isfinite(values)):
        raise ValueError(f"--snr {text!r}: SNRs must be finite")
    return values
