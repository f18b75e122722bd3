"""The data-set index: which clip goes to which split with which label. Built from file names only (no decoding).

``build_index`` reproduces TensorFlow's ``prepare_data_index`` (speech_commands/input_data.py): known words are
split by the official lists or the SHA-1 speaker hash, then each split gets ``ceil(set_size * silence%/100)``
silence examples (``path=None``, an all-zero waveform) and ``ceil(set_size * unknown%/100)`` clips of the other
words as ``_unknown_``, drawn from a ``random.Random(seed)`` stream, and is finally shuffled with it.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from speech.data.errors import DatasetError
from speech.data.labels import SILENCE_LABEL, SPECIAL_LABELS, UNKNOWN_LABEL, parse_label_spec, resolve_labels
from speech.data.scan import FolderScan, scan_folder
from speech.data.splits import (
    SPLITS,
    SplitSettings,
    hash_percentage,
    read_split_lists,
    sample_size,
    speaker_split,
    split_of_percentage,
)

log = logging.getLogger(__name__)

_UNKNOWN_NAME = re.compile(r"^([^_]+)_(.+?)_nohash_")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled clip.

    ``path`` is None for a pure-silence example (an all-zero waveform, as TensorFlow does for ``_silence_``).
    ``label`` indexes :attr:`DatasetIndex.labels`; ``speaker`` is "" for silence / noise clips; ``word`` is the
    original word (folder name, or the word prefix of a test-set ``_unknown_`` file; ``"_silence_"`` for silence).
    """

    path: str | None
    label: int
    speaker: str
    word: str


@dataclass
class DatasetIndex:
    """Everything :func:`build_index` found: labels, the three splits, noise sources and skipped files."""

    root: Path
    layout: str  # "full" | "test_set" | "folders"
    labels: list[str]
    splits: dict[str, list[Example]]  # keys exactly "training", "validation", "testing"
    noise_files: list[Path] = field(default_factory=list)  # _background_noise_/*.wav (full layout)
    silence_files: list[Path] = field(default_factory=list)  # _silence_/*.wav clips usable as noise
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) skipped during the scan
    split_method: str = "hash"  # the method actually used: "lists" | "hash" | "speaker"

    def label_counts(self, split: str) -> dict[str, int]:
        """``{label: clips}`` for one split, in label order (zeros included)."""
        counts = Counter(example.label for example in self.splits[split])
        return {label: counts.get(i, 0) for i, label in enumerate(self.labels)}

    def speakers(self, split: str) -> set[str]:
        """Speaker ids in a split (silence/noise clips, whose speaker is "", are left out)."""
        return {example.speaker for example in self.splits[split] if example.speaker}


@dataclass(frozen=True, slots=True)
class _Clip:
    rel: str  # "folder/name", as in the official list files
    path: str
    folder: str
    word: str
    speaker: str

    @property
    def group(self) -> str:
        """What must not straddle two splits: the speaker, or the clip itself when it has none."""
        return self.speaker or "\0" + self.rel


def parse_clip_name(folder: str, name: str) -> tuple[str, str]:
    """``(word, speaker)`` for the file ``name`` in label folder ``folder``.

    * ``_unknown_/<word>_<speaker>_nohash_<n>.wav.wav`` (test-set layout) -> (word, speaker);
    * ``_silence_/<n>.wav`` -> ("_silence_", "");
    * ``<word>/<speaker>_nohash_<n>.wav`` -> (word, speaker); a name without ``_nohash_`` -> (word, file stem).
    """
    if folder == SILENCE_LABEL:
        return SILENCE_LABEL, ""
    if folder == UNKNOWN_LABEL:
        match = _UNKNOWN_NAME.match(name)
        if match:
            return match.group(1), match.group(2)
    cut = name.find("_nohash_")
    if cut > 0:
        return folder, name[:cut]
    stem = name.split(".", 1)[0] or name
    return folder, stem


def _clips(scan: FolderScan) -> list[_Clip]:
    root = str(scan.root)
    clips = []
    for folder, names in scan.clips.items():
        base = root + os.sep + folder + os.sep  # plain concatenation: os.path.join costs ~1 s per 100k files
        for name in names:
            word, speaker = parse_clip_name(folder, name)
            clips.append(_Clip(folder + "/" + name, base + name, folder, word, speaker))
    return clips


def _assign_splits(
    clips: list[_Clip],
    scan: FolderScan,
    settings: SplitSettings,
) -> tuple[list[str], str]:
    """The split of every clip (same order) and the method actually used.

    With ``"auto"``, a folder in the official test-set layout is the test set: every clip goes to
    "testing" (its speakers all hash there anyway, and its speakerless ``_silence_`` clips belong there too).
    """
    method = settings.rule
    if method == "auto" and scan.layout == "test_set":
        return ["testing"] * len(clips), "test_set"
    lists = read_split_lists(scan.root) if method in ("auto", "lists") else None
    if method == "lists" and lists is None:
        raise DatasetError(
            f"{scan.root}: split='lists' needs validation_list.txt / testing_list.txt there; none found "
            "(use split='hash' or 'speaker')"
        )
    if lists is not None:
        return [
            "validation"
            if c.rel in lists["validation"]
            else "testing"
            if c.rel in lists["testing"]
            else "training"
            for c in clips
        ], "lists"
    if method == "speaker":
        sizes = Counter(c.group for c in clips)
        of_group = speaker_split(
            dict(sizes), settings.validation_percent, settings.testing_percent, settings.seed
        )
        return [of_group[c.group] for c in clips], "speaker"
    memo: dict[str, str] = {}
    result = []
    for c in clips:
        key = c.speaker or c.rel.rsplit("/", 1)[-1]
        split = memo.get(key)
        if split is None:
            split = memo[key] = split_of_percentage(
                hash_percentage(key), settings.validation_percent, settings.testing_percent
            )
        result.append(split)
    return result, "hash"


def build_index(
    root: str | Path,
    labels: str | list[str] = "auto",
    split: SplitSettings | None = None,
    *,
    allow_missing_labels: bool = False,
) -> DatasetIndex:
    """Scan ``root`` (layout detected automatically) and split and label its clips.

    ``labels``: ``"auto"`` (the folder's own labels, or the 12 Speech Commands classes for Speech Commands data),
    ``"12"``, ``"35"``, ``"all"`` or an explicit list (see :mod:`speech.data.labels`). Files the scan found bad
    are in no split (``bad_files``).
    ``split``: the :class:`~speech.data.splits.SplitSettings` (default: the defaults: ``"auto"``, official lists
    when present, else the hash rule; 10 % validation and testing). Every rule is speaker-disjoint.

    ``_silence_`` / ``_unknown_``, when in ``labels``: a ``_silence_`` / ``_unknown_`` folder (test-set layout)
    is taken as it is; otherwise they are sampled per split as TensorFlow does (``silence_percent`` and
    ``unknown_percent`` of the split's known-word clips; silence examples have ``path=None``). Deterministic
    for a given ``seed``. Nothing is decoded here.
    ``allow_missing_labels``: an explicit list may name words the folder lacks (their classes get no clips), as
    long as it holds at least one of them: for scoring a model on a folder that holds some of its labels.
    """
    split = SplitSettings() if split is None else split
    split.check()
    scan = scan_folder(root)
    clips = _clips(scan)
    words = sorted({c.word for c in clips} | set(scan.clips))
    parse_label_spec(labels)  # reject malformed specs before the "missing word" check
    try:
        label_list = resolve_labels(labels, words, folders=list(scan.clips), allow_missing=allow_missing_labels)
    except DatasetError as exc:
        raise DatasetError(f"{scan.root}: {exc}") from None
    index_of = {label: i for i, label in enumerate(label_list)}
    sample_silence = SILENCE_LABEL in index_of and SILENCE_LABEL not in scan.clips
    sample_unknown = UNKNOWN_LABEL in index_of and UNKNOWN_LABEL not in scan.clips

    of_clip, method = _assign_splits(clips, scan, split)
    known: dict[str, list[Example]] = {name: [] for name in SPLITS}
    unknown_pool: dict[str, list[Example]] = {name: [] for name in SPLITS}
    word_clips: Counter[str] = Counter()  # known-word clips per split (TensorFlow's set_size)
    for clip, split_name in zip(clips, of_clip, strict=True):
        if clip.word in index_of and clip.word not in SPECIAL_LABELS:
            known[split_name].append(Example(clip.path, index_of[clip.word], clip.speaker, clip.word))
            word_clips[split_name] += 1
        elif clip.folder in SPECIAL_LABELS and clip.folder in index_of:
            known[split_name].append(Example(clip.path, index_of[clip.folder], clip.speaker, clip.word))
        elif sample_unknown and clip.folder not in SPECIAL_LABELS:
            unknown_pool[split_name].append(
                Example(clip.path, index_of[UNKNOWN_LABEL], clip.speaker, clip.word)
            )

    rng = random.Random(split.seed)
    for split_name in ("validation", "testing", "training"):  # TensorFlow's order, for the random stream
        set_size = word_clips[split_name]
        if sample_silence:
            count = sample_size(set_size, split.silence_percent)
            known[split_name].extend([Example(None, index_of[SILENCE_LABEL], "", SILENCE_LABEL)] * count)
        if sample_unknown:
            pool = unknown_pool[split_name]
            rng.shuffle(pool)
            known[split_name].extend(pool[: sample_size(set_size, split.unknown_percent)])
    for split_name in ("validation", "testing", "training"):
        rng.shuffle(known[split_name])

    splits = {name: known[name] for name in SPLITS}
    # (the test-set layout under "auto" is all "testing" on purpose: it is for scoring; training says so itself)
    if not splits["training"] and split.validation_percent + split.testing_percent < 100.0 and method != "test_set":
        log.warning(
            "%s: the training split is empty with split=%r (method %s); for a folder whose speakers all hash into "
            "one bucket (e.g. a test-set portion) use split='speaker'",
            scan.root,
            split.rule,
            method,
        )
    silence_files = [scan.root / SILENCE_LABEL / name for name in scan.clips.get(SILENCE_LABEL, [])]
    for path, reason in scan.bad_files:
        log.warning("skipped %s: %s", path, reason)
    return DatasetIndex(
        root=scan.root,
        layout=scan.layout,
        labels=label_list,
        splits=splits,
        noise_files=scan.noise_files,
        silence_files=silence_files,
        bad_files=scan.bad_files,
        split_method=method,
    )
