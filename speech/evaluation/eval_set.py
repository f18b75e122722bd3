"""Evaluation sets: one split of a data folder, decoded and labelled with a model's classes, and its evaluation
(clean, with latency, and optionally with background noise)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speech.data.splits import SplitSettings
from speech.evaluation.errors import EvaluationError
from speech.evaluation.noise import DEFAULT_NOISE_SEED
from speech.evaluation.scoring import Result, evaluate_waves, evaluate_with_noise
from speech.utils.progress import ProgressCallback

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    """Decoded clips of one split of a data folder, labelled with a model's classes."""

    root: Path
    split: str  # test | validation | train | all
    split_rule: str  # the rule actually used (lists | hash | speaker)
    layout: str
    labels: list[str]
    waves: np.ndarray  # int16 (N, samples: the model's window), memory-mapped
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

    @property
    def labels_without_clips(self) -> list[str]:
        """The model's labels this split has no clip of (a folder that holds some of the model's labels)."""
        counts = np.bincount(self.targets, minlength=len(self.labels))
        return [label for label, n in zip(self.labels, counts, strict=True) if n == 0]

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
            "labels_without_clips": self.labels_without_clips,
            "generated_silence_clips": sum(1 for ex in self.examples if ex.path is None),
        }


def partition_examples(index, partition: str) -> list:
    """The examples of ``partition`` (``test``/``validation``/``train``/``all``) of a :class:`speech.data.DatasetIndex`;
    :class:`EvaluationError` (``param`` ``"split"``) when it holds none."""
    from speech.data.splits import SPLITS, partition_splits

    examples = [example for name in partition_splits(partition) for example in index.splits[name]]
    if not examples:
        counts = {name: len(index.splits[name]) for name in SPLITS}
        raise EvaluationError(
            f"{index.root}: the {partition!r} split is empty with split rule {index.split_method!r}; clips per "
            f"split: {counts}. Choose another split or split rule (e.g. 'speaker')",
            param="split",
        )
    return examples


def load_eval_set(
    root: str | Path,
    labels: list[str],
    split: str = "test",
    settings: SplitSettings | None = None,
    cache_dir: str | Path | None = None,
    with_noise: bool = False,
    progress: ProgressCallback | bool | None = False,
    samples: int = 16_000,
) -> EvalSet:
    """Index ``root`` with the model's ``labels`` (see :func:`speech.data.build_index`), decode the ``split``
    (``test``/``validation``/``train``/``all``) through the waveform cache, each clip zero-padded or centre-cropped to
    ``samples`` (the model's window), and return it.

    ``settings`` (:class:`~speech.data.SplitSettings`, default: the defaults) go to
    :func:`~speech.data.build_index`, so the split a model was trained with can be reproduced. ``progress``: decoding progress
    (see :mod:`speech.utils.progress`). Whether the clips are unseen by a
    model is checked by the caller with :func:`speech.data.record.check_held_out` (one data set may serve
    several models).
    The folder may hold some of the model's labels only (e.g. four of its ten keywords): every clip is scored over
    all of the model's labels, and :attr:`EvalSet.labels_without_clips` names the others.
    Raises :class:`speech.data.DatasetError` when the folder holds none of the model's words (the message names them
    and the folder) and :class:`EvaluationError` when the chosen split is empty.
    """
    from speech.data import build_index, cached_waveforms, load_noise
    from speech.data.cache import default_cache_dir
    from speech.data.splits import SPLITS

    settings = SplitSettings() if settings is None else settings
    index = build_index(root, labels=list(labels), split=settings, allow_missing_labels=True)
    if list(index.labels) != list(labels):  # build_index keeps an explicit list as given; guard anyway
        raise EvaluationError(f"{index.root}: indexed labels {index.labels} differ from the model's {labels}")
    examples = partition_examples(index, split)
    elsewhere = sum(len(index.splits[name]) for name in SPLITS) - len(examples)
    if index.layout == "test_set" and split == "test" and elsewhere:
        log.info(
            "%s: test-set layout, but %d clip(s) fall outside the %r split under rule %r (clips without a speaker, "
            "such as _silence_, are split by file name); the split 'all' evaluates every clip",
            index.root,
            elsewhere,
            split,
            index.split_method,
        )
    cached = cached_waveforms(examples, cache_dir or default_cache_dir(), samples=samples, progress=progress)
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
        split_settings=settings.to_record(),
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


