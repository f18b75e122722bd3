"""What a model was trained on: the data settings and the training speakers, recorded in every checkpoint.

A :class:`DataRecord` travels in the checkpoint (and its ONNX export) under ``metadata["data"]``. It lets
``speech evaluate`` and ``speech stream-test`` rebuild the exact split a model was trained with, default to its
held-out part, and refuse to score a clip whose speaker (or, for speakerless clips such as ``_silence_``
files, whose file) was trained on. All functions here are pure: no file access beyond path resolution.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speech.data.index import DatasetIndex, Example
from speech.data.splits import SplitSettings
from speech.errors import SpeechError

RECORD_VERSION = 1


def speakers_hash(speakers: list[str] | set[str]) -> str:
    """SHA-256 (hex, first 16 characters) of the sorted, newline-joined speaker ids."""
    return hashlib.sha256("\n".join(sorted(speakers)).encode("utf-8")).hexdigest()[:16]


def relative_name(path: str, root: str | Path) -> str:
    """``label/file.wav`` for a clip path under ``root`` (the last two path parts when it lies elsewhere)."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        parts = Path(path).parts
        return "/".join(parts[-2:])


@dataclass
class DataRecord:
    """The data a model was trained with.

    ``root`` is the resolved data folder; ``labels`` the label spec given; ``split`` the settings asked for
    (stored flat, in :meth:`SplitSettings.to_record`'s spelling) and ``split_method`` the rule used.
    ``training_speakers`` lists every speaker id of the training split (extra roots included) and
    ``training_files`` the training clips that have no speaker (``_silence_`` files), as ``label/file`` names.
    ``clips`` and ``speakers`` count each split.
    """

    root: str
    layout: str
    labels: str | list[str]
    split: SplitSettings
    split_method: str
    training_speakers: list[str] = field(default_factory=list)
    training_files: list[str] = field(default_factory=list)
    speakers_hash: str = ""
    clips: dict[str, int] = field(default_factory=dict)
    speakers: dict[str, int] = field(default_factory=dict)
    extra_roots: list[str] = field(default_factory=list)
    running_speech: dict | None = None  # speech.data.running_windows.RunningSpeechSource.describe (issue #18)
    version: int = RECORD_VERSION

    @classmethod
    def from_index(
        cls,
        index: DatasetIndex,
        *,
        labels: str | list[str],
        split: SplitSettings,
        training: list[Example] | None = None,
        extra_roots: list[str | Path] = (),
        running_speech: dict | None = None,
    ) -> DataRecord:
        """Describe ``index`` as built with these settings; ``training`` (default: the index's training split)
        may hold more clips, e.g. from extra roots."""
        training = index.splits["training"] if training is None else training
        speakers = sorted({ex.speaker for ex in training if ex.speaker})
        files = sorted({relative_name(ex.path, index.root) for ex in training if ex.path and not ex.speaker})
        return cls(
            root=str(Path(index.root).resolve()),
            layout=index.layout,
            labels=labels if isinstance(labels, str) else list(labels),
            split=split,
            split_method=index.split_method,
            training_speakers=speakers,
            training_files=files,
            speakers_hash=speakers_hash(speakers),
            clips={"training": len(training)} | {s: len(index.splits[s]) for s in ("validation", "testing")},
            speakers={"training": len(speakers)} | {s: len(index.speakers(s)) for s in ("validation", "testing")},
            extra_roots=[str(Path(r).resolve()) for r in extra_roots],
            running_speech=running_speech,
        )

    def to_dict(self) -> dict:
        """The stored form: the split settings flat beside the rest (as every record has been written)."""
        values = asdict(self)
        del values["split"]
        return {**self.split.to_record(), **values}

    @classmethod
    def from_dict(cls, values: dict | None) -> DataRecord | None:
        """The record stored in a model's metadata, or None for a model trained before records existed."""
        if not isinstance(values, dict):
            return None
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and k != "split"}
        try:
            return cls(split=SplitSettings.from_record(values), **known)
        except (TypeError, ValueError):
            return None

    def training_readers(self) -> set[str]:
        """The running-speech readers (:mod:`speech.data.running_speech`) whose sentences were trained on."""
        return set((self.running_speech or {}).get("training_readers") or [])

    def same_root(self, root: str | Path) -> bool:
        """Whether ``root`` is the folder this model was trained on (or one of its extra roots)."""
        resolved = os.path.realpath(root)
        return resolved in {os.path.realpath(self.root), *map(os.path.realpath, self.extra_roots)}

    def held_out_split(self) -> str:
        """The partition to score by default: ``"test"`` when the recorded test split has clips, else
        ``"validation"``."""
        return "test" if self.clips.get("testing", 0) > 0 else "validation"

    def trained_on(self, examples: list[Example], root: str | Path) -> list[Example]:
        """The examples whose speaker is a training speaker, or whose speakerless file was a training file.

        Speakerless files only count when ``root`` is the recorded folder (file names repeat across folders).
        """
        speakers = set(self.training_speakers)
        files = set(self.training_files) if self.same_root(root) else set()
        return [
            ex
            for ex in examples
            if (ex.speaker and ex.speaker in speakers)
            or (not ex.speaker and ex.path and relative_name(ex.path, root) in files)
        ]


class SpeakerLeakError(SpeechError, ValueError):
    """Scoring would include clips whose speakers the model was trained on."""

    def __init__(self, message: str, *, param: str | None = "allow_trained_speakers") -> None:
        super().__init__(message, param=param)


def check_held_out(
    record: DataRecord | None, examples: list[Example], root: str | Path, *, allow: bool = False
) -> list[Example]:
    """The examples of ``examples`` the model was trained on; raises :class:`SpeakerLeakError` when there are
    any and ``allow`` is false. Without a record nothing can be checked and ``[]`` is returned."""
    if record is None:
        return []
    leaked = record.trained_on(examples, root)
    if leaked and not allow:
        speakers = sorted({ex.speaker for ex in leaked if ex.speaker})
        raise SpeakerLeakError(
            f"{root}: {len(leaked)} of the {len(examples)} clips to score were trained on "
            f"({len(speakers)} training speaker(s), e.g. {', '.join(speakers[:3]) or 'speakerless files'}); "
            "scores on them would be inflated. Score the held-out split (the default when the folder is the one "
            "the model was trained on) or allow it explicitly"
        )
    return leaked


@dataclass
class SplitChoice:
    """The resolved split: ``partition`` to score, the ``settings`` for :func:`speech.data.build_index`, and
    ``source`` (``"model record"`` or ``"defaults"``) for the report."""

    partition: str
    settings: SplitSettings
    source: str

    def describe(self) -> dict:
        """The reports' ``split_settings``: partition, source, ``split`` (the rule), percentages and seed."""
        settings = asdict(self.settings)
        return {"partition": self.partition, "source": self.source, "split": settings.pop("rule"), **settings}


def choose_split(
    record: DataRecord | None, root: str | Path, partition: str | None = None, **settings: object
) -> SplitChoice:
    """The split of ``root`` to score: each :class:`SplitSettings` field given in ``settings`` (None: unset) wins;
    the rest come from ``record`` when ``root`` is the folder it describes (so the training split is rebuilt
    exactly), else from the defaults. ``partition`` (default: the record's held-out one, else ``"test"``)."""
    own = record is not None and record.same_root(root)
    chosen = (record.split if own else SplitSettings()).updated(**settings)
    return SplitChoice(partition or (record.held_out_split() if own else "test"), chosen, "model record" if own else "defaults")
