"""Running speech in training: the datamodule's ``running_speech`` option (issue #18).

:class:`RunningSpeechSource` reads the folder once (:func:`speech.data.running_speech.read_running_speech`), splits
its readers (:func:`~speech.data.running_speech.split_readers`) and cuts ``windows`` windows (of the model's
length, 1 s by default) from the sentences
of the *train* readers that say none of the model's keywords (``sentences="all"``: from every sentence of theirs, as
a keyword said inside a sentence is not a command and should be ignored too); they join the training split as ``_unknown_``
examples and then go through the clips' augmentation (speed, shift, noise; the placement rule of
:mod:`speech.data.windows` leaves them where they are, as their speech fills the window). What was used (folder,
reader split, train readers, counts) goes into the model's data record, so the stream commands score only the
other readers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from speech.data.cache import CachedSplit
from speech.data.errors import DatasetError
from speech.data.index import Example
from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL
from speech.data.running_speech import (
    ReaderSplit,
    RunningSpeech,
    check_running_root,
    keyword_free,
    read_running_speech,
    split_readers,
    training_windows,
)
from speech.errors import SettingError

log = logging.getLogger(__name__)


def model_keywords(labels: list[str]) -> list[str]:
    return [label for label in labels if label not in (SILENCE_LABEL, UNKNOWN_LABEL)]


SENTENCES = ("keyword_free", "all")


class RunningSpeechSource:
    """``windows`` training windows of the keyword-free sentences (``sentences="all"``: of every sentence) of
    ``root``'s train readers (split ``seed``)."""

    def __init__(self, root: str | Path, windows: int = 1500, seed: int = 0, hard_negatives: str | None = None,
                 hard_negatives_repeat: int = 4, samples: int = 16_000, sentences: str = "keyword_free") -> None:
        if windows < 0:
            raise SettingError(f"running_speech_windows must be 0 or more, got {windows}")
        if sentences not in SENTENCES:
            raise SettingError(f"running_speech_sentences must be one of {', '.join(SENTENCES)}, got {sentences!r}")
        self.which = sentences
        self.root = check_running_root(root)  # a wrong path: one line now, not after the clip caches are built
        self.hard_negatives = Path(hard_negatives).expanduser() if hard_negatives else None
        if self.hard_negatives is not None and not self.hard_negatives.is_file():
            raise DatasetError(f"{hard_negatives}: no such hard-negatives file; expected the .npy that "
                               "speech hard-negatives wrote")
        if hard_negatives_repeat < 1:
            raise SettingError(f"running_speech_hard_negatives_repeat must be 1 or more, got {hard_negatives_repeat}")
        self.repeat = int(hard_negatives_repeat)
        self._mined: tuple[np.ndarray, dict] | None = None
        self.count = int(windows)
        self.seed = int(seed)
        self.samples = int(samples)
        self._speech: RunningSpeech | None = None
        self._windows: np.ndarray | None = None

    @property
    def speech(self) -> RunningSpeech:
        if self._speech is None:
            self._speech = read_running_speech(self.root)
        return self._speech

    @property
    def split(self) -> ReaderSplit:
        return split_readers(self.speech.readers, seed=self.seed)

    def sentences(self, labels: list[str]):
        """The train readers' sentences the windows are cut from: those free of the keywords, or all of them."""
        sentences = self.speech.of_readers(self.split.readers("train"))
        return sentences if self.which == "all" else keyword_free(sentences, model_keywords(labels))

    def windows(self, labels: list[str], cache_dir: str | Path | None) -> np.ndarray:
        if self._windows is None:
            if UNKNOWN_LABEL not in labels:  # e.g. cpu-small.yaml's default with one's own keywords and no _unknown_
                log.warning("running speech %s not used: it becomes _unknown_ windows, but the labels %s have no "
                            "_unknown_ class", self.root, labels)
                self._windows = np.zeros((0, self.samples), np.int16)
                return self._windows
            sentences = self.sentences(labels)
            if self.count and not sentences:
                raise DatasetError(f"{self.root}: the train readers have no sentence free of the keywords" if
                                   self.which == "keyword_free" else f"{self.root}: the train readers have no sentence")
            self._windows = training_windows(sentences, self.count, self.seed, cache_dir, self.samples)
            if self.hard_negatives is not None:
                mined = np.repeat(self.mined()[0], self.repeat, axis=0)  # each copy gets its own augmentation
                self._windows = np.concatenate([np.asarray(self._windows), mined])
            log.info("running speech: %d _unknown_ windows from %d sentences (%s) of %d train readers of %s",
                     len(self._windows), len(sentences),
                     "keyword-free" if self.which == "keyword_free" else "all, those that say a keyword too",
                     len(self.split.readers("train")), self.speech.root)
        return self._windows

    def mined(self) -> tuple[np.ndarray, dict]:
        """The hard negatives (:mod:`speech.evaluation.streams.hard_negatives`): windows and their ``.json`` description, which
        must name only train readers of this folder's split."""
        if self._mined is None:
            path = self.hard_negatives
            try:
                windows = np.load(path)
                info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DatasetError(f"{path}: cannot read the hard negatives and their .json ({exc})") from exc
            if windows.dtype != np.int16 or windows.ndim != 2 or windows.shape[1] != self.samples:
                raise DatasetError(f"{path}: expected int16 windows shaped (n, {self.samples}) (the model's window), "
                                   f"got {windows.dtype} {windows.shape}")
            others = set(info.get("readers") or []) - set(self.split.readers("train"))
            if others:
                raise DatasetError(f"{path}: mined from readers that are not train readers of {self.root} "
                                   f"({', '.join(sorted(others)[:3])}); they are held out for calibration/test")
            self._mined = (windows, info)
        return self._mined

    def add_to(self, data: CachedSplit, labels: list[str], cache_dir: str | Path | None) -> CachedSplit:
        """``data`` (the training split) with the windows appended as ``_unknown_`` examples."""
        windows = self.windows(labels, cache_dir)
        if not len(windows):
            return data
        unknown = labels.index(UNKNOWN_LABEL)
        waves = np.concatenate([np.asarray(data.waves), np.asarray(windows)])
        extra = [Example(None, unknown, "", "_running_speech_")] * len(windows)
        return CachedSplit(waves, np.concatenate([data.labels, np.full(len(windows), unknown, np.int64)]),
                           list(data.examples) + extra, data.bad_files, data.path)

    def describe(self, labels: list[str]) -> dict | None:
        """What goes into the data record: the folder, the reader split and the train readers, the counts."""
        if UNKNOWN_LABEL not in labels:
            return None  # not used (see windows)
        split, used = self.split, self.sentences(labels)
        return {
            "root": str(self.speech.root),
            "reader_split": split.to_dict(),
            "training_readers": split.readers("train"),
            "windows": self.count,
            "keyword_free_sentences": len(keyword_free(used, model_keywords(labels))),
            "sentences": self.which,
            "sentences_used": len(used),
            "bad_files": len(self.speech.bad_files),
            "hard_negatives": None if self.hard_negatives is None else {
                "file": str(self.hard_negatives.resolve()), "windows": int(len(self.mined()[0])), "repeat": self.repeat,
                "readers": self.mined()[1].get("readers"), "model": self.mined()[1].get("model"),
                "threshold": self.mined()[1].get("threshold")},
        }
