"""What generated test streams are built from: the clips of one partition of a data folder, more non-keyword speech
from other folders, the background noise; clips of speakers the model was trained on are refused.

:class:`SourceOptions` says where to take them (the folder, the resolved split, the extra folders and which half
of their speakers); :func:`stream_source` gathers them into a :class:`StreamSource`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL
from speech.evaluation.errors import EvaluationError
from speech.evaluation.eval_set import partition_examples

if TYPE_CHECKING:
    from speech.data.record import SplitChoice

log = logging.getLogger(__name__)

STREAM_UNKNOWN_PERCENT = 100.0  # full layout: as many non-keyword clips as keyword clips in the split


@dataclass
class StreamClips:
    """The clips a partition offers for test streams: ``keywords`` (label -> paths), ``unknown`` (non-keyword
    word clips), ``silence`` (speech-free ``_silence_`` clips, for the background) and the ``speakers``;
    ``negatives``: more non-keyword clips from other folders, for the non-keyword stream only."""

    keywords: dict[str, list[str]]
    unknown: list[str]
    silence: list[str]
    speakers: set[str]
    examples: list = field(default_factory=list)  # speech.data.Example, all clips above
    negatives: list[str] = field(default_factory=list)

    @property
    def keyword_clips(self) -> int:
        return sum(len(v) for v in self.keywords.values())


def partition_clips(index, partition: str) -> StreamClips:
    """The clips of ``partition`` (``test``/``validation``/``train``/``all``) of a :class:`speech.data.DatasetIndex`
    (files only: generated silence has none); :class:`EvaluationError` for an empty partition."""
    keywords: dict[str, list[str]] = {}
    unknown, silence, examples, speakers = [], [], [], set()
    for ex in partition_examples(index, partition):
        if ex.path is None:
            continue
        label = index.labels[ex.label]
        examples.append(ex)
        if ex.speaker:
            speakers.add(ex.speaker)
        if label == UNKNOWN_LABEL:
            unknown.append(ex.path)
        elif label == SILENCE_LABEL:
            silence.append(ex.path)
        else:
            keywords.setdefault(label, []).append(ex.path)
    return StreamClips(keywords, unknown, silence, speakers, examples)


HALVES = ("a", "b", "all")


@dataclass
class NegativeClips:
    """Non-keyword speech from other folders: clip ``paths``, their ``speakers``, the ``roots`` and speaker
    ``half`` they came from, and how many clips were left out because their speaker was trained on."""

    paths: list[str]
    speakers: set[str]
    roots: list[str]
    half: str
    left_out_trained: int = 0

    def describe(self) -> dict:
        return {"roots": list(self.roots), "half": self.half, "clips": len(self.paths),
                "speakers": len(self.speakers), "clips_of_training_speakers_left_out": self.left_out_trained}


def speaker_half(speaker: str) -> str:
    """``"a"`` or ``"b"``: a fixed half of all speaker ids (TensorFlow's SHA-1 bucket below or above 50 %)."""
    from speech.data.splits import hash_percentage

    return "a" if hash_percentage(speaker) < 50.0 else "b"


def negative_clips(roots: list[str | Path], labels: list[str], half: str = "all",
                   training_speakers: set[str] | frozenset = frozenset()) -> NegativeClips:
    """Every clip under ``roots`` whose word is none of ``labels`` (``_unknown_`` clips of a test-set folder
    included, ``_silence_`` left out), of speakers in ``half`` (``a``/``b``: :func:`speaker_half`; ``all``) and
    not in ``training_speakers``. Clips without a speaker id are left out (they cannot be checked)."""
    from speech.data.index import parse_clip_name
    from speech.data.scan import scan_folder

    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    paths, speakers, trained = [], set(), 0
    for root in roots:
        scan = scan_folder(root)
        for folder, names in sorted(scan.clips.items()):
            if folder == SILENCE_LABEL:
                continue
            for name in names:
                word, speaker = parse_clip_name(folder, name)
                if word in labels or not speaker or (half != "all" and speaker_half(speaker) != half):
                    continue
                if speaker in training_speakers:
                    trained += 1
                    continue
                paths.append(str(Path(scan.root) / folder / name))
                speakers.add(speaker)
    if roots and not paths:
        raise EvaluationError(f"no non-keyword clips of unseen speakers in half {half!r} of {', '.join(map(str, roots))}",
                              param="negatives")
    return NegativeClips(paths, speakers, [str(Path(r).resolve()) for r in roots], half, trained)


@dataclass(frozen=True)
class SourceOptions:
    """Where the streams' clips come from: the ``root`` data folder and its resolved ``split`` (see
    :func:`speech.data.record.choose_split`; its ``unknown_percent`` is replaced by ``unknown_percent``), whether
    clips of training speakers may be used (``allow_trained_speakers``), and ``negatives``: folders of more
    non-keyword speech, of which the clips of speakers in ``negatives_half`` (``a``/``b``/``all``) and not trained
    on are used."""

    root: str | Path
    split: SplitChoice
    allow_trained_speakers: bool = False
    negatives: tuple[Path, ...] = ()
    negatives_half: str = "b"
    unknown_percent: float = STREAM_UNKNOWN_PERCENT


@dataclass
class StreamSource:
    """What the streams are built from: the partition's ``clips``, the background ``noise`` (1-D float32, 16 kHz)
    and ``info``, the description that goes into reports (split, speakers, clip counts, leak check)."""

    clips: StreamClips
    noise: np.ndarray
    info: dict

    @property
    def negative_speakers(self) -> set[str]:
        return set(self.info.get("negative_speaker_ids", []))


def stream_source(scorer, options: SourceOptions) -> StreamSource:
    """The held-out clips and noise ``options`` name, to build streams from.

    Raises :class:`speech.data.record.SpeakerLeakError` when clips of training speakers would be used without
    ``allow_trained_speakers``, :class:`EvaluationError` (``param`` ``"split"``) for an empty partition.
    """
    from speech.audio.io import load_audio
    from speech.data import build_index, load_noise
    from speech.data.record import DataRecord, check_held_out, speakers_hash

    split, negatives = options.split, options.negatives
    record = DataRecord.from_dict(scorer.metadata.get("data"))
    settings = replace(split.settings, unknown_percent=float(options.unknown_percent))
    index = build_index(options.root, labels=list(scorer.labels), split=settings, allow_missing_labels=True)
    clips = partition_clips(index, split.partition)
    trained = check_held_out(record, clips.examples, index.root, allow=options.allow_trained_speakers)
    if record is None:
        log.warning("the model carries no record of its training data: cannot check that the streams' speakers "
                    "are unseen")
    found = None
    if negatives:
        found = negative_clips(list(negatives), list(scorer.labels), options.negatives_half,
                               set(record.training_speakers) if record is not None else set())
        clips.negatives = found.paths
    if clips.silence:
        noise = np.concatenate([load_audio(p, samples=None) for p in clips.silence]).astype(np.float32)
        noise_what = f"{len(clips.silence)} _silence_ clips of the {split.partition} partition"
    else:
        noise = load_noise(index)
        noise_what = ("the data set's _background_noise_ files (training augmentation uses them too)"
                      if index.noise_files else "generated white + pink noise")
    info = {
        **split.describe(),
        "root": str(index.root),
        "split_method": index.split_method,
        "speakers": len(clips.speakers),
        "speakers_hash": speakers_hash(clips.speakers),
        "keyword_clips": clips.keyword_clips,
        "unknown_clips": len(clips.unknown),
        "noise": noise_what,
        "clips_of_training_speakers": len(trained),
        "training_record": record is not None,
        "negatives": None if found is None else found.describe(),
    }
    if found is not None:
        info["negative_speaker_ids"] = sorted(found.speakers)
    return StreamSource(clips, noise, info)
