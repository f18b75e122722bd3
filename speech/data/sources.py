"""Extra data sources in one training run (issue #34): more folders beside the main one, each split by speaker.

An extra folder (``--data.extra_roots``) is read with its own label folders, split by speaker with its own shares
(``extra_validation_percent`` / ``extra_testing_percent``, seeded like the main split; 0 / 0: every clip trains,
as extra roots always did), and its clips are relabelled with the model's labels: a word the model lacks becomes
``_unknown_`` or is skipped (``other_words``), a warning names them. Its held-out parts join the run's validation
and test splits; its folder, fingerprint, split and sizes go into the model's data record
(:class:`speech.data.record.FolderRecord`), so ``evaluate``, ``stream-test`` and ``calibrate`` rebuild its test part
and refuse its training speakers. :func:`check_disjoint` refuses a run where a speaker is both trained on and held
out (the same speaker ids in two folders).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from speech.data.errors import DatasetError
from speech.data.index import DatasetIndex, Example, build_index
from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL
from speech.data.record import FolderRecord
from speech.data.splits import SPLITS, SplitSettings, keep_speakers
from speech.errors import SettingError

log = logging.getLogger(__name__)

OTHER_WORDS = ("unknown", "skip")  # what becomes of an extra folder's words the model has no class for


def remap_examples(examples: list[Example], source_labels: list[str], target_labels: list[str],
                   other_words: str = "unknown") -> list[Example]:
    """Re-express examples labelled in ``source_labels`` in ``target_labels``.

    Words missing from the target become ``_unknown_`` when ``other_words`` is ``"unknown"`` and the target has
    it, else they are dropped; ``_silence_`` clips are dropped when the target has no ``_silence_`` class.
    """
    target = {label: i for i, label in enumerate(target_labels)}
    unknown = target.get(UNKNOWN_LABEL) if other_words == "unknown" else None
    out = []
    for ex in examples:
        name = source_labels[ex.label]
        index = target.get(name, None if name == SILENCE_LABEL else unknown)
        if index is not None:
            out.append(Example(ex.path, index, ex.speaker, ex.word))
    return out


def extra_split(validation_percent: float, testing_percent: float, seed: int) -> SplitSettings:
    """An extra folder's split: seeded by speaker, nothing sampled (its clips are taken as they are)."""
    settings = SplitSettings("speaker", validation_percent, testing_percent, 0.0, 0.0, seed)
    settings.check()
    return settings


@dataclass
class ExtraSource:
    """One extra folder read for a model: its ``index`` (own labels), ``settings``, and ``parts``: the examples of
    each split in the model's labels (training: the kept share of its speakers)."""

    root: Path
    index: DatasetIndex
    settings: SplitSettings
    parts: dict[str, list[Example]]
    training_speakers_percent: float = 100.0

    def record(self) -> FolderRecord:
        return FolderRecord.of_parts(self.index.root, self.settings, self.parts, self.training_speakers_percent)


def read_extra_source(root: str | Path, labels: list[str], settings: SplitSettings, *, other_words: str = "unknown",
                      training_speakers_percent: float = 100.0) -> ExtraSource:
    """``root`` split with ``settings`` and relabelled with the model's ``labels`` (see the module docstring)."""
    if other_words not in OTHER_WORDS:
        raise SettingError(f"extra_other_words must be one of {OTHER_WORDS}, got {other_words!r}",
                           param="extra_other_words")
    index = build_index(root, "all", settings)
    foreign = [label for label in index.labels if label not in labels and label != SILENCE_LABEL]
    if foreign:
        becomes = ("_unknown_ clips" if other_words == "unknown" and UNKNOWN_LABEL in labels
                   else "skipped (the model has no _unknown_ class)" if other_words == "unknown" else "skipped")
        log.warning("%s: label folder(s) %s are not among the model's labels: %s", index.root, foreign, becomes)
    parts = {part: remap_examples(index.splits[part], index.labels, labels, other_words) for part in SPLITS}
    parts["training"] = keep_speakers(parts["training"], training_speakers_percent, settings.seed)
    if not any(parts.values()):
        raise DatasetError(f"{index.root}: none of its label folders {index.labels} is one of the model's labels "
                           f"{labels}", param="extra_roots")
    return ExtraSource(Path(index.root), index, settings, parts, float(training_speakers_percent))


def check_disjoint(folders: dict[str, dict[str, list[Example]]]) -> None:
    """Refuse (:class:`DatasetError`, exit 2) a run where a speaker is trained on in one folder and held out
    (validation or test) in the same or another: ``folders`` maps a folder's name to its parts."""
    trained: dict[str, str] = {}
    for name, parts in folders.items():
        for ex in parts.get("training", []):
            if ex.speaker:
                trained.setdefault(ex.speaker, name)
    for name, parts in folders.items():
        for part in ("validation", "testing"):
            shared = sorted({ex.speaker for ex in parts.get(part, []) if ex.speaker in trained})
            if shared:
                where = trained[shared[0]]
                raise DatasetError(
                    f"{name}: {len(shared)} speaker(s) of its {part} part are trained on in {where} (e.g. "
                    f"{', '.join(shared[:3])}); a held-out speaker must not be trained on: split the folders so "
                    "their speakers do not overlap, or drop that folder",
                    param="extra_roots",
                )
