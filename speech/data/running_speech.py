"""Running speech: a LibriSpeech-style folder of transcribed sentences, the non-keyword speech of issue #18.

Layout (LibriSpeech's): ``<reader>/<chapter>/<reader>-<chapter>-<n>.flac|ogg|wav`` plus one
``<reader>-<chapter>.trans.txt`` per chapter, a line ``<utterance id> <WORDS ...>`` per sentence. Transcripts
are found anywhere below the root; each names audio files beside it.

* :func:`read_running_speech` reads the transcripts and checks every named file's header (the rule of the clip
  scan, :func:`speech.audio.io.audio_problem`). A line naming a missing file, an unreadable file, an unreadable
  transcript: skipped and listed in :attr:`RunningSpeech.bad_files` (as the clip scan does); a folder that does not
  exist, holds no transcript or no usable sentence: :class:`~speech.data.errors.DatasetError`, one line naming it.
* :func:`split_readers`: a seeded, reader-disjoint split into ``train`` / ``calibration`` / ``test``
  (:class:`ReaderSplit`, recorded in the model's data record so later commands use the same one).
* :func:`training_windows`: ``_unknown_`` windows (the model's window length) cut at random places from the
  sentences that say none of the model's keywords, one sentence decoded at a time, cached as int16 like the clip
  cache.

Words are compared upper-case; a transcript word counts as a keyword only when it is that word exactly
(``UPON`` is not ``UP``), which is what a listener hears too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from speech.audio.io import AudioError, audio_problem
from speech.data.errors import DatasetError
from speech.errors import SettingError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".flac", ".ogg", ".wav")
TRANSCRIPT_SUFFIX = ".trans.txt"
READER_PARTS = ("train", "calibration", "test")
CALIBRATION_PERCENT = 25.0  # of the readers
TEST_PERCENT = 33.0
SPLIT_SEED = 0
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Utterance:
    """One transcribed sentence: its ``id`` (``reader-chapter-n``), ``reader``, ``chapter``, audio ``path`` and
    upper-case ``words``."""

    id: str
    reader: str
    chapter: str
    path: str
    words: tuple[str, ...]

    def count(self, word: str) -> int:
        """How often ``word`` is said in the sentence (whole words, any case)."""
        return self.words.count(word.upper())

    def says_any(self, words: Iterable[str]) -> bool:
        return any(self.count(w) for w in words)


@dataclass
class RunningSpeech:
    """What :func:`read_running_speech` found: the usable ``utterances`` (sorted by id) and the skipped
    ``bad_files`` as ``(path, reason)``."""

    root: Path
    utterances: list[Utterance]
    bad_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def readers(self) -> list[str]:
        return sorted({u.reader for u in self.utterances})

    def of_readers(self, readers: Iterable[str]) -> list[Utterance]:
        wanted = set(readers)
        return [u for u in self.utterances if u.reader in wanted]


def _transcripts(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if f.endswith(TRANSCRIPT_SUFFIX) and not f.startswith(".")]
    return found


def _audio_for(folder: Path, utterance_id: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        path = folder / f"{utterance_id}{suffix}"
        if path.is_file():
            return path
    return None


def check_running_root(root: str | Path) -> Path:
    """``root`` if it is a folder, else :class:`DatasetError` naming it (a quick check before any long work)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: running-speech folder does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: expected a running-speech folder, found a file")
    return root


def read_running_speech(root: str | Path, *, check_audio: bool = True) -> RunningSpeech:
    """Read a LibriSpeech-style folder (module docstring). ``check_audio``: check each file's header.

    Raises :class:`DatasetError` (one line naming ``root``) for a missing folder, one without ``*.trans.txt``
    transcripts, or one where no transcribed sentence has usable audio.
    """
    root = check_running_root(root).resolve()
    transcripts = _transcripts(root)
    if not transcripts:
        raise DatasetError(
            f"{root}: no transcripts found; expected LibriSpeech's layout, <reader>/<chapter>/<reader>-<chapter>"
            f".trans.txt beside the <reader>-<chapter>-<n>.flac|ogg|wav files it transcribes"
        )
    utterances: list[Utterance] = []
    bad: list[tuple[str, str]] = []
    for transcript in transcripts:
        try:
            lines = transcript.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            bad.append((str(transcript), f"cannot read the transcript ({getattr(exc, 'strerror', None) or exc})"))
            continue
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if not parts:
                continue
            uid, words = parts[0], tuple(w.upper() for w in parts[1:])
            pieces = uid.split("-")
            if len(pieces) < 3 or not words:
                bad.append((f"{transcript}:{number}", "not '<reader>-<chapter>-<n> WORDS...'"))
                continue
            audio = _audio_for(transcript.parent, uid)
            if audio is None:
                bad.append((str(transcript.parent / uid), f"named in {transcript.name} line {number}, but there is "
                            f"no {'/'.join(s[1:] for s in AUDIO_SUFFIXES)} file of that name"))
                continue
            problem = audio_problem(audio) if check_audio else None
            if problem is not None:
                bad.append((str(audio), problem))
                continue
            utterances.append(Utterance(uid, pieces[0], pieces[1], str(audio), words))
    if not utterances:
        shown = "; ".join(f"{p}: {r}" for p, r in bad[:2])
        raise DatasetError(f"{root}: none of the {len(bad)} transcribed sentence(s) is usable ({shown})")
    if bad:
        log.warning("%s: skipped %d bad file(s) or line(s), e.g. %s: %s", root, len(bad), *bad[0])
    utterances.sort(key=lambda u: u.id)
    return RunningSpeech(root, utterances, sorted(bad))


@dataclass
class ReaderSplit:
    """A reader-disjoint split: ``parts`` maps each reader to ``train``/``calibration``/``test``; the percents
    (of the readers) and ``seed`` it was drawn with."""

    parts: dict[str, str]
    calibration_percent: float = CALIBRATION_PERCENT
    test_percent: float = TEST_PERCENT
    seed: int = SPLIT_SEED

    def readers(self, part: str) -> list[str]:
        if part not in (*READER_PARTS, "all"):
            raise SettingError(f"reader part must be one of {(*READER_PARTS, 'all')}, got {part!r}")
        return sorted(r for r, p in self.parts.items() if part == "all" or p == part)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ReaderSplit:
        return cls(dict(values["parts"]), float(values["calibration_percent"]), float(values["test_percent"]),
                   int(values["seed"]))


def split_readers(readers: Sequence[str], *, calibration_percent: float = CALIBRATION_PERCENT,
                  test_percent: float = TEST_PERCENT, seed: int = SPLIT_SEED) -> ReaderSplit:
    """Readers sorted, shuffled with ``random.Random(seed)``; the first ``test_percent`` % (rounded, at least one
    when the percent is above 0) are ``test``, the next ``calibration_percent`` % ``calibration``, the rest
    ``train``. Raises :class:`ValueError` for percents outside [0, 100] or summing above 100."""
    if not (0 <= calibration_percent <= 100 and 0 <= test_percent <= 100) or calibration_percent + test_percent > 100:
        raise SettingError(f"reader percents must lie in [0, 100] and sum to at most 100, got calibration "
                         f"{calibration_percent}, test {test_percent}")
    order = sorted(set(readers))
    random.Random(seed).shuffle(order)

    def size(percent: float) -> int:
        return max(1, round(len(order) * percent / 100)) if percent > 0 and order else 0

    n_test = size(test_percent)
    n_cal = min(size(calibration_percent), max(0, len(order) - n_test))
    parts = {r: ("test" if i < n_test else "calibration" if i < n_test + n_cal else "train")
             for i, r in enumerate(order)}
    return ReaderSplit(parts, float(calibration_percent), float(test_percent), int(seed))


def keyword_free(utterances: Iterable[Utterance], keywords: Iterable[str]) -> list[Utterance]:
    """The sentences that say none of ``keywords``."""
    keywords = [k.upper() for k in keywords]
    return [u for u in utterances if not u.says_any(keywords)]


def load_sentence(path: str | Path) -> np.ndarray:
    """A whole sentence as float32 mono at 16 kHz."""
    from speech.audio.io import load_audio

    return load_audio(path, samples=None)


def _windows_key(utterances: list[Utterance], count: int, seed: int, samples: int) -> str:
    h = hashlib.sha256(f"running-speech-windows v2 {count} {seed} {samples}\n".encode())
    for u in utterances:
        stat = os.stat(u.path)
        h.update(f"{u.path} {stat.st_size} {int(stat.st_mtime)}\n".encode())
    return h.hexdigest()[:20]


TRIES = 10  # places drawn per window until one holds speech


def cut_windows(lengths: Sequence[int], load: Callable[[int], np.ndarray | None], count: int,
                rng: np.random.Generator, samples: int = SAMPLE_RATE,
                min_level: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``count`` windows of ``samples`` cut at uniformly random places of the sentences ``0 .. len(lengths) - 1``
    (a sentence drawn in proportion to its length in ``lengths``, e.g. read from the headers), as int16
    ``(count, samples)``, and the index of the sentence each came from.

    ``load(i)`` decodes sentence ``i`` (float32, 16 kHz) or returns None when it cannot; each sentence is decoded
    once and let go, so memory holds one sentence and the windows, however long the running speech is (100 h of
    LibriSpeech would not fit decoded). The windows of a sentence that fails are drawn again from the others.
    A window whose RMS is below ``min_level`` x its sentence's RMS (a pause) is tried at another of its
    :data:`TRIES` places, so the windows hold speech, as a stream window over talk does; the words enter and leave
    at the edges, cut anywhere. A sentence shorter than a window is used whole, zero padded.
    """
    from speech.audio.io import float_to_int16

    if count <= 0 or not len(lengths):
        return np.zeros((0, samples), np.int16), np.zeros(0, np.int64)
    out = np.zeros((count, samples), np.int16)
    source = np.full(count, -1, np.int64)
    weights = np.array([max(int(n) - samples, 0) + 1 for n in lengths], dtype=np.float64)
    pending = np.arange(count)
    while len(pending) and weights.sum() > 0:
        source[pending] = rng.choice(len(weights), size=len(pending), p=weights / weights.sum())
        places = rng.random((len(pending), TRIES))  # where in the sentence, as a share of its room for a window
        failed = []
        order = np.argsort(source[pending], kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(source[pending][order])) + 1):
            sentence = int(source[pending[group[0]]])
            wave = load(sentence)
            if wave is None:
                weights[sentence] = 0.0
                failed += [int(pending[g]) for g in group]
                continue
            room = max(wave.shape[0] - samples, 0) + 1
            level = min_level * float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
            for g in group:
                for place in places[g]:
                    offset = int(place * room)
                    window = wave[offset : offset + samples]
                    if np.sqrt(np.mean(np.square(window, dtype=np.float64))) >= level:
                        break
                out[pending[g], : window.shape[0]] = float_to_int16(window)
        pending = np.array(sorted(failed), np.int64)
    if len(pending):
        raise DatasetError(f"none of the {len(lengths)} running-speech sentence(s) could be decoded")
    return out, source


def sentence_samples(path: str | Path) -> int:
    """A sentence's length in samples at 16 kHz, from its header (no decoding); 0 when the header is unreadable."""
    from speech.audio.io import read_header

    header = read_header(path)
    return 0 if isinstance(header, str) else round(header.frames * SAMPLE_RATE / header.samplerate)


def training_windows(utterances: list[Utterance], count: int, seed: int, cache_dir: str | Path | None = None,
                     samples: int = SAMPLE_RATE) -> np.ndarray:
    """``count`` int16 windows of ``utterances`` (:func:`cut_windows`, seeded), cached in ``cache_dir`` under a key
    of the files, ``count`` and ``seed``. A sentence that fails to decode is skipped with a warning."""
    if count <= 0 or not utterances:
        return np.zeros((0, samples), np.int16)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"running-{_windows_key(utterances, count, seed, samples)}.npy"
        if path.is_file():
            try:
                cached = np.load(path, mmap_mode="r")
                if cached.shape == (count, samples) and cached.dtype == np.int16:
                    return cached
            except (OSError, ValueError):
                pass

    def load(i: int) -> np.ndarray | None:
        try:
            return load_sentence(utterances[i].path)
        except AudioError as exc:  # a bad file is skipped and named, as the clip cache does
            log.warning("%s: cannot decode, skipped (%s)", utterances[i].path, exc)
            return None

    lengths = [sentence_samples(u.path) for u in utterances]
    windows, _ = cut_windows(lengths, load, count, np.random.default_rng(seed), samples)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, windows)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot cache the running-speech windows in %s (%s)", path, exc)
    return windows


__all__ = [
    "READER_PARTS",
    "ReaderSplit",
    "RunningSpeech",
    "Utterance",
    "cut_windows",
    "keyword_free",
    "read_running_speech",
    "split_readers",
    "training_windows",
]
