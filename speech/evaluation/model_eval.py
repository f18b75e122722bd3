"""One model file scored on one split of a data folder: the clips it must not have trained on, its figures, and
what the report says about the data (:class:`ModelEvaluation`)."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from speech.evaluation.eval_set import EvalSet, evaluate_set, load_eval_set
from speech.evaluation.noise import DEFAULT_NOISE_SEED
from speech.evaluation.scoring import Result
from speech.utils.progress import ProgressCallback

if TYPE_CHECKING:
    from speech.data.record import SplitChoice

log = logging.getLogger(__name__)


@dataclass
class ModelEvaluation:
    """One evaluated model file: where it came from and its :class:`~speech.evaluation.Result`."""

    name: str  # short unique name used in tables and file names
    path: str
    backend: str  # "torch" | "onnx"
    num_parameters: int
    data: dict  # EvalSet.describe() plus the clip set's fingerprint ("clip_set")
    result: Result


def model_names(paths: list[str | Path]) -> list[str]:
    """Short, unique, file-name-safe names: ``runs/a/best.ckpt`` -> ``best-ckpt`` (``-2``, ``-3`` on clashes)."""
    names: list[str] = []
    for path in paths:
        p = Path(path)
        base = (
            re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem + ("-" + p.suffix.lstrip(".") if p.suffix else ""))
            or "model"
        )
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def clip_set_id(examples: list, labels: list[str], targets) -> str:
    """A fingerprint of the clips a model was scored on: SHA-256 (first 12 hex digits) of the sorted
    ``(file, true label name)`` pairs (``<silence>`` for generated silence). Two models share it exactly when
    they were scored on the same clips with the same answers, whatever their label order."""
    pairs = sorted(
        f"{example.path or '<silence>'}\t{labels[int(target)]}"
        for example, target in zip(examples, targets, strict=True)
    )
    return hashlib.sha256("\n".join(pairs).encode("utf-8", errors="surrogateescape")).hexdigest()[:12]


def evaluate_model(
    scorer,
    path: str | Path,
    data_root: str | Path,
    split: SplitChoice,
    *,
    name: str | None = None,
    cache_dir: str | Path | None = None,
    snrs: list[float] | None = None,
    batch_size: int = 256,
    latency_clips: int = 20,
    noise_seed: int = DEFAULT_NOISE_SEED,
    top_pairs: int = 10,
    allow_trained_speakers: bool = False,
    loaded: dict[tuple, EvalSet] | None = None,
    progress: ProgressCallback | bool | None = False,
) -> ModelEvaluation:
    """Score ``scorer`` (loaded from ``path``) on the ``split`` of ``data_root`` indexed with its own labels.

    ``split``: the resolved split (partition, :class:`~speech.data.SplitSettings` and where they came from;
    see :func:`speech.data.record.choose_split`). ``loaded`` caches decoded sets between models with the same
    classes and split. ``snrs`` (dB) adds one noisy evaluation per SNR. ``progress``: decoding progress (:mod:`speech.utils.progress`).
    Raises :class:`speech.data.record.SpeakerLeakError` when clips of training speakers would be scored and
    ``allow_trained_speakers`` is false, :class:`speech.data.DatasetError` when the folder lacks one of the
    model's labels, :class:`~speech.evaluation.EvaluationError` for an empty split.
    """
    from speech.data.record import DataRecord, check_held_out

    name = name or model_names([path])[0]
    loaded = {} if loaded is None else loaded
    record = DataRecord.from_dict(scorer.metadata.get("data"))
    window = scorer.frontend.config.window_samples
    key = (tuple(scorer.labels), split.partition, split.settings, bool(snrs), window)
    if key not in loaded:
        loaded[key] = load_eval_set(
            data_root,
            scorer.labels,
            split=split.partition,
            settings=split.settings,
            cache_dir=cache_dir,
            with_noise=bool(snrs),
            progress=progress,
            samples=window,
        )
    data = loaded[key]
    trained = check_held_out(record, data.examples, data.root, allow=allow_trained_speakers)
    data = replace(data, trained_clips=len(trained), split_settings=split.describe())
    if record is None:
        log.warning(
            "%s carries no record of its training data: cannot check that the scored speakers are unseen", name
        )
    log.info(
        "%s: %d %s clips of %d speakers in %s (split from the %s)",
        name,
        data.num_clips,
        split.partition,
        data.num_speakers,
        data.root,
        split.source,
    )
    result = evaluate_set(
        scorer,
        data,
        snrs=snrs,
        batch_size=batch_size,
        latency_clips=latency_clips,
        noise_seed=noise_seed,
        top_pairs=top_pairs,
    )
    described = data.describe() | {"clip_set": clip_set_id(data.examples, list(data.labels), data.targets)}
    return ModelEvaluation(name, str(path), scorer.backend, int(scorer.num_parameters), described, result)
