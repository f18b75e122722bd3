"""Train/validation/test assignment: TensorFlow's hash rule, the official lists, or a seeded speaker split.

All functions are pure (no file access) except :func:`read_split_lists`.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from speech.errors import SettingError

SPLITS = ("training", "validation", "testing")
SPLIT_METHODS = ("auto", "lists", "hash", "speaker")  # the rules of SplitSettings.rule
# the partitions a user scores (``evaluate``/``stream-test`` ``--split``), each a tuple of splits
PARTITIONS = {"test": ("testing",), "validation": ("validation",), "train": ("training",), "all": SPLITS}
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, TensorFlow's constant
DEFAULT_SEED = 59185  # TensorFlow's RANDOM_SEED: the default seed of every split and of label sampling
_NOHASH = re.compile(r"_nohash_.*$")


@dataclass(frozen=True)
class SplitSettings:
    """How a data folder is split and filled: the one bundle the CLI, the library and the model's record share.

    ``rule``: ``"auto"`` (official lists when present, else the hash rule), ``"lists"``, ``"hash"`` (TensorFlow's
    ``which_set`` on the speaker id) or ``"speaker"`` (seeded speaker-disjoint split, percentages of clips).
    ``validation_percent`` / ``testing_percent``: split sizes (hash and speaker rules). ``silence_percent`` /
    ``unknown_percent``: ``_silence_`` / ``_unknown_`` examples added per split, in percent of its keyword clips.
    ``seed``: of the speaker rule and of the ``_unknown_`` / ``_silence_`` sampling.
    """

    rule: str = "auto"
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    silence_percent: float = 10.0
    unknown_percent: float = 10.0
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        for name in ("validation_percent", "testing_percent", "silence_percent", "unknown_percent"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "seed", int(self.seed))

    def updated(self, **values: object) -> SplitSettings:
        """These settings with each of ``values`` that is not None put in (None: left as it is)."""
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    def check(self) -> None:
        """:class:`ValueError` for an unknown rule, :class:`~speech.errors.SettingError` for bad percentages."""
        if self.rule not in SPLIT_METHODS:
            raise ValueError(f"split must be one of {SPLIT_METHODS}, got {self.rule!r}")
        check_percentages(self.validation_percent, self.testing_percent, self.silence_percent, self.unknown_percent)
        if self.validation_percent + self.testing_percent > 100.0:
            raise SettingError("validation_percent + testing_percent must not exceed 100", param="split")

    # a model's data record (every checkpoint since records began) spells the rule ``split_rule``
    def to_record(self) -> dict:
        """The record's spelling: ``split_rule``, the four percentages and ``seed``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"split_rule": values.pop("rule"), **values}

    @classmethod
    def from_record(cls, values: dict) -> SplitSettings:
        """The settings of a stored record (:meth:`to_record`); missing keys take the defaults."""
        known = {f.name for f in fields(cls)} - {"rule"}
        settings = {key: value for key, value in values.items() if key in known}
        if "split_rule" in values:
            settings["rule"] = values["split_rule"]
        return cls(**settings)


def speaker_key(filename: str) -> str:
    """TensorFlow's hash key: the base file name with ``_nohash_`` and everything after it removed."""
    return _NOHASH.sub("", os.path.basename(filename))


def hash_percentage(key: str) -> float:
    """Where ``key`` falls in [0, 100] under TensorFlow's SHA-1 bucket rule."""
    hashed = hashlib.sha1(key.encode("utf-8")).hexdigest()
    return (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)


def split_of_percentage(percentage: float, validation_percent: float, testing_percent: float) -> str:
    if percentage < validation_percent:
        return "validation"
    if percentage < testing_percent + validation_percent:
        return "testing"
    return "training"


def which_set(
    filename: str,
    validation_percent: float = SplitSettings.validation_percent,
    testing_percent: float = SplitSettings.testing_percent,
) -> str:
    """TensorFlow's ``which_set`` (speech_commands/input_data.py), exactly.

    The speaker id (base name with ``_nohash_.*`` removed) is SHA-1 hashed into [0, 100];
    below ``validation_percent`` -> ``"validation"``, below ``validation_percent + testing_percent`` ->
    ``"testing"``, else ``"training"``. All clips of one speaker therefore land in the same set.
    """
    return split_of_percentage(hash_percentage(speaker_key(filename)), validation_percent, testing_percent)


def read_split_lists(root: Path) -> dict[str, set[str]] | None:
    """Read ``validation_list.txt`` / ``testing_list.txt`` (relative ``word/file.wav`` lines) from ``root``.

    Returns ``{"validation": set, "testing": set}`` (a missing file gives an empty set), or None when neither
    file exists.
    """
    found: dict[str, set[str]] = {}
    for name in ("validation", "testing"):
        path = root / f"{name}_list.txt"
        if path.is_file():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            found[name] = {line.strip().replace("\\", "/") for line in lines if line.strip()}
    if not found:
        return None
    return {"validation": found.get("validation", set()), "testing": found.get("testing", set())}


def speaker_split(
    group_sizes: dict[str, int],
    validation_percent: float = SplitSettings.validation_percent,
    testing_percent: float = SplitSettings.testing_percent,
    seed: int = SplitSettings.seed,
) -> dict[str, str]:
    """A seeded, group-disjoint split: ``{group: split}``.

    ``group_sizes`` maps a group (a speaker) to its number of clips. Groups are sorted, shuffled with
    ``random.Random(seed)`` and walked in that order; a group goes to validation while the clips already
    placed are below ``validation_percent`` of the total, then to testing while below
    ``validation_percent + testing_percent``, then to training. Percentages are therefore of clips, to within
    one group.
    """
    groups = sorted(group_sizes)
    random.Random(seed).shuffle(groups)
    total = sum(group_sizes.values()) or 1
    placed = 0
    result: dict[str, str] = {}
    for group in groups:
        result[group] = split_of_percentage(100.0 * placed / total, validation_percent, testing_percent)
        placed += group_sizes[group]
    return result


def keep_speakers(examples: list, percent: float, seed: int = SplitSettings.seed) -> list:
    """The ``examples`` of a seeded ``percent`` share of their speakers (whole speakers, at least one), plus every
    example without a speaker (silence); 100 keeps them all. For learning curves: how figures grow with speakers."""
    if not 0.0 < percent <= 100.0:
        raise SettingError(f"the share of training speakers must be in (0, 100] percent, got {percent}",
                           param="training_speakers_percent")
    speakers = sorted({ex.speaker for ex in examples if ex.speaker})
    if percent == 100.0 or not speakers:
        return list(examples)
    random.Random(seed).shuffle(speakers)
    kept = set(speakers[: max(1, round(len(speakers) * percent / 100.0))])
    return [ex for ex in examples if not ex.speaker or ex.speaker in kept]


def sample_size(set_size: int, percent: float) -> int:
    """TensorFlow's count of added silence/unknown examples: ``ceil(set_size * percent / 100)``."""
    return int(math.ceil(set_size * percent / 100))


def check_percentages(*percents: float) -> None:
    for value in percents:
        if not 0.0 <= value <= 100.0:
            raise SettingError(f"percentages must be in [0, 100], got {value}", param="split")


def partition_splits(partition: str) -> tuple[str, ...]:
    """The splits of ``partition`` (a key of :data:`PARTITIONS`); :class:`ValueError` for another name."""
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {tuple(PARTITIONS)}, got {partition!r}")
    return PARTITIONS[partition]
