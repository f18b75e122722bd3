"""What a model was trained on: the data settings and the training speakers, recorded in every checkpoint.

A :class:`DataRecord` travels in the checkpoint (and its ONNX export) under ``metadata["data"]``. It lets
``speech evaluate`` and ``speech stream-test`` rebuild the exact split a model was trained with, default to its
held-out part, and refuse to score a clip whose speaker (or, for speakerless clips such as ``_silence_``
files, whose file) was trained on.

A run reads one main folder and any number of extra sources (``--data.extra_roots``, issue #34), each with a
split of its own (:class:`FolderRecord`). A recorded folder is recognised by its path or, when it has moved (another
disk, machine, a colleague's copy), by what it holds: the fingerprint of its clip names
(:func:`speech.data.scan.clip_names_fingerprint`, read only when the path differs).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speech.data.index import DatasetIndex, Example
from speech.data.splits import SPLITS, SplitSettings
from speech.errors import SpeechError

RECORD_VERSION = 2  # 2: fingerprints and extra sources with splits of their own (issue #34)


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
class FolderRecord:
    """One data folder of a run: where it was (``root``, resolved), what it holds (``fingerprint``, "" in records
    older than fingerprints), how it was split (``split``), and ``clips`` / ``speakers`` per split (training
    counts what was trained on). ``training_speakers_percent``: the share of its training speakers used."""

    root: str
    fingerprint: str
    split: SplitSettings
    clips: dict[str, int] = field(default_factory=dict)
    speakers: dict[str, int] = field(default_factory=dict)
    training_speakers_percent: float = 100.0

    def held_out_split(self) -> str:
        """The partition to score by default: ``"test"`` when the recorded test split has clips, else
        ``"validation"``."""
        return "test" if self.clips.get("testing", 0) > 0 else "validation"

    def to_dict(self) -> dict:
        values = asdict(self)
        values["split"] = self.split.to_record()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> FolderRecord:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and k != "split"}
        return cls(split=SplitSettings.from_record(values.get("split") or {}), **known)

    @classmethod
    def of_parts(cls, root: str | Path, split: SplitSettings, parts: dict[str, list[Example]],
                 training_speakers_percent: float = 100.0) -> FolderRecord:
        """The folder ``root``, split with ``split`` into ``parts`` (training: what was trained on)."""
        from speech.data.scan import clip_names_fingerprint

        return cls(
            root=str(Path(root).resolve()),
            fingerprint=clip_names_fingerprint(root),
            split=split,
            clips={name: len(parts.get(name, [])) for name in SPLITS},
            speakers={name: len({ex.speaker for ex in parts.get(name, []) if ex.speaker}) for name in SPLITS},
            training_speakers_percent=float(training_speakers_percent),
        )

    def holds(self, root: str | Path, fingerprints: dict[str, str] | None = None) -> bool:
        """Whether ``root`` is this folder: the same path, or a folder with the same clip names (``fingerprints``
        caches the fingerprint of each path asked about)."""
        resolved = os.path.realpath(root)
        if resolved == os.path.realpath(self.root):
            return True
        if not self.fingerprint:
            return False
        from speech.data.scan import clip_names_fingerprint

        cache = {} if fingerprints is None else fingerprints
        if resolved not in cache:
            cache[resolved] = clip_names_fingerprint(resolved)
        return cache[resolved] == self.fingerprint


@dataclass
class DataRecord:
    """The data a model was trained with.

    ``root`` is the resolved main data folder and ``fingerprint`` what it holds; ``labels`` the label spec given;
    ``split`` the settings asked for (stored flat, in :meth:`SplitSettings.to_record`'s spelling) and
    ``split_method`` the rule used. ``training_speakers`` lists every speaker id trained on (extra sources included)
    and ``training_files`` the training clips that have no speaker (``_silence_`` files), as ``label/file`` names.
    ``clips`` and ``speakers`` count each split of the main folder (training: everything trained on).
    ``sources``: the extra folders (:class:`FolderRecord`, each with its own split); ``extra_roots`` their paths
    (in records older than sources, extra folders whose every clip was trained on).
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
    fingerprint: str = ""
    training_speakers_percent: float = 100.0
    sources: list[FolderRecord] = field(default_factory=list)
    version: int = RECORD_VERSION

    @classmethod
    def from_index(
        cls,
        index: DatasetIndex,
        *,
        labels: str | list[str],
        split: SplitSettings,
        training: list[Example] | None = None,
        sources: list[FolderRecord] = (),
        running_speech: dict | None = None,
        training_speakers_percent: float = 100.0,
    ) -> DataRecord:
        """Describe ``index`` as built with these settings; ``training`` (default: the index's training split)
        is everything trained on, the clips of the extra ``sources`` included."""
        from speech.data.scan import clip_names_fingerprint

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
            extra_roots=[source.root for source in sources],
            running_speech=running_speech,
            fingerprint=clip_names_fingerprint(index.root),
            training_speakers_percent=float(training_speakers_percent),
            sources=list(sources),
        )

    def to_dict(self) -> dict:
        """The stored form: the split settings flat beside the rest (as every record has been written)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("split", "sources")}
        values = {key: (list(value) if isinstance(value, list) else value) for key, value in values.items()}
        return {**self.split.to_record(), **values, "sources": [source.to_dict() for source in self.sources]}

    @classmethod
    def from_dict(cls, values: dict | None) -> DataRecord | None:
        """The record stored in a model's metadata, or None for a model trained before records existed."""
        if not isinstance(values, dict):
            return None
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and k not in ("split", "sources")}
        try:
            sources = [FolderRecord.from_dict(s) for s in values.get("sources") or []]
            return cls(split=SplitSettings.from_record(values), sources=sources, **known)
        except (TypeError, ValueError, AttributeError):
            return None

    def training_readers(self) -> set[str]:
        """The running-speech readers (:mod:`speech.data.running_speech`) whose sentences were trained on."""
        return set((self.running_speech or {}).get("training_readers") or [])

    def main_folder(self) -> FolderRecord:
        """The main data folder as a :class:`FolderRecord`."""
        return FolderRecord(self.root, self.fingerprint, self.split, dict(self.clips), dict(self.speakers),
                            self.training_speakers_percent)

    def folders(self) -> list[FolderRecord]:
        """Every folder the run read: the main one, the extra sources, and (older records) extra roots whose every
        clip was trained on."""
        known = [self.main_folder(), *self.sources]
        paths = {os.path.realpath(folder.root) for folder in known}
        legacy = [FolderRecord(root, "", self.split, {"training": 1}) for root in self.extra_roots
                  if os.path.realpath(root) not in paths]
        return known + legacy

    def folder(self, root: str | Path) -> FolderRecord | None:
        """The recorded folder ``root`` is (by path, else by what it holds), or None."""
        fingerprints: dict[str, str] = {}
        return next((folder for folder in self.folders() if folder.holds(root, fingerprints)), None)

    def held_out_split(self) -> str:
        """The main folder's partition to score by default (see :meth:`FolderRecord.held_out_split`)."""
        return self.main_folder().held_out_split()

    def trained_on(self, examples: list[Example], root: str | Path) -> list[Example]:
        """The examples whose speaker is a training speaker, or whose speakerless file was a training file.

        Speakerless files only count when ``root`` is a recorded folder (file names repeat across folders).
        """
        speakers = set(self.training_speakers)
        files = set(self.training_files) if self.folder(root) is not None else set()
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
    exactly), else from the defaults. ``partition`` (default: the record's held-out one, else ``"test"``).
    ``root`` may be the main folder or an extra source, at its recorded path or moved (see :class:`FolderRecord`)."""
    folder = record.folder(root) if record is not None else None
    chosen = (folder.split if folder is not None else SplitSettings()).updated(**settings)
    return SplitChoice(partition or (folder.held_out_split() if folder is not None else "test"), chosen,
                       "model record" if folder is not None else "defaults")
