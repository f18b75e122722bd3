"""Fast folder scan and layout detection.

``os.scandir`` plus one header check per file (:func:`speech.audio.io.audio_problem`: the first bytes of a WAV,
about 13 us; no decoding). This is where the project decides, once, which files are bad: empty, not audio,
header only, truncated. They are left out of every split and listed in :attr:`FolderScan.bad_files`, so
``speech data summary``, training and ``speech evaluate`` count the same files and the same bad files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from speech.audio.io import audio_problem
from speech.data.errors import DatasetError
from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
BACKGROUND_NOISE_DIR = "_background_noise_"
LIST_FILES = ("validation_list.txt", "testing_list.txt")
LAYOUTS = ("full", "test_set", "folders")


@dataclass
class FolderScan:
    """What :func:`scan_folder` found: ``clips[folder]`` = sorted file names of audio clips in that folder."""

    root: Path
    layout: str
    clips: dict[str, list[str]]
    noise_files: list[Path] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)


def is_audio_name(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith(".")


def _list_audio(folder: str, bad: list[tuple[str, str]]) -> tuple[list[str], int]:
    """Sorted names of the usable audio files in ``folder`` and the number of other (non-audio) files.

    Files with an audio name that fail :func:`speech.audio.io.audio_problem` go to ``bad`` as ``(path, reason)``.
    """
    names: list[str] = []
    other = 0
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        bad.append((folder, f"cannot list folder ({exc.strerror or exc})"))
        return names, other
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        try:
            if not entry.is_file():
                continue
        except OSError as exc:
            bad.append((entry.path, f"cannot stat ({exc.strerror or exc})"))
            continue
        if not name.lower().endswith(AUDIO_EXTENSIONS):
            other += 1
            continue
        problem = audio_problem(entry.path)
        if problem is not None:
            bad.append((entry.path, problem))
            continue
        names.append(name)
    names.sort()
    return names, other


def _nothing_usable(root: Path, subdirs: list[str], stray: int, loose: int, other: int, bad: list) -> str:
    """The message for a folder with no usable clip: what was found and what is expected."""
    expected = (
        "expected one subfolder per label holding its clips (<label>/*.wav|flac|ogg), as in the Speech Commands "
        "archive, its test-set archive or a folder written by 'speech synth'"
    )
    if bad:
        shown = "; ".join(f"{path}: {reason}" for path, reason in bad[:3])
        return (
            f"{root}: none of its {len(bad)} audio file(s) is readable ({shown}"
            + ("; ..." if len(bad) > 3 else "")
            + "); "
            + expected
        )
    if not subdirs:
        if stray:
            return f"{root}: holds {stray} audio file(s) directly and no label subfolders; {expected}"
        if loose:
            return f"{root}: holds {loose} file(s) but no subfolders; {expected}"
        return f"{root}: the folder is empty; {expected}"
    shown = ", ".join(subdirs[:10]) + (", ..." if len(subdirs) > 10 else "")
    what = f"{other} non-audio file(s)" if other else "no files"
    return f"{root}: its subfolders ({shown}) hold {what} and no audio; {expected}"


def scan_folder(root: str | Path) -> FolderScan:
    """Scan ``root`` one level deep and detect its layout.

    * ``"full"``: the Speech Commands training archive: word folders plus ``_background_noise_/`` and/or
      ``validation_list.txt`` / ``testing_list.txt``;
    * ``"test_set"``: the official test-set archive: label folders including ``_unknown_`` and/or ``_silence_``;
    * ``"folders"``: any ``<label>/*.wav|flac|ogg`` tree.

    Every audio file's header is checked (:func:`speech.audio.io.audio_problem`); bad ones are skipped and listed
    in ``bad_files``. Raises :class:`DatasetError` naming ``root`` when it is missing, not a folder, or holds no
    label subfolder with a usable clip (the message says what it found instead).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: data folder does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: expected a data folder, found a file")
    root = root.resolve()
    bad: list[tuple[str, str]] = []
    clips: dict[str, list[str]] = {}
    noise: list[Path] = []
    subdirs: list[str] = []
    stray = loose = other = 0
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            subdirs.append(entry.name)
            names, others = _list_audio(entry.path, bad)
            other += others
            if entry.name == BACKGROUND_NOISE_DIR:
                noise = [Path(entry.path) / name for name in names]
            elif names:
                clips[entry.name] = names
        elif is_audio_name(entry.name):
            stray += 1
        else:
            loose += 1
    bad.sort()
    if not clips:
        raise DatasetError(_nothing_usable(root, subdirs, stray, loose, other, bad))
    has_lists = any((root / name).is_file() for name in LIST_FILES)
    if (root / BACKGROUND_NOISE_DIR).is_dir() or has_lists:
        layout = "full"
    elif UNKNOWN_LABEL in clips or SILENCE_LABEL in clips:
        layout = "test_set"
    else:
        layout = "folders"
    return FolderScan(root=root, layout=layout, clips=clips, noise_files=noise, bad_files=bad)


def clip_names_fingerprint(root: str | Path) -> str:
    """What a data folder holds, whatever its path: SHA-256 (first 16 hex digits) of the sorted ``label/file``
    names of its audio files one level deep (``_background_noise_`` left out). Names only, no header check (about
    0.2 s for 100k files), so a copy of a folder elsewhere (another disk, machine, colleague) has the same
    fingerprint; an added, removed or renamed clip changes it. ``""`` for a path that is not a folder."""
    import hashlib

    root = Path(root).expanduser()
    if not root.is_dir():
        return ""
    names = []
    for entry in os.scandir(root):
        if entry.name.startswith(".") or entry.name == BACKGROUND_NOISE_DIR or not entry.is_dir():
            continue
        try:
            names += [entry.name + "/" + name for name in os.listdir(entry.path) if is_audio_name(name)]
        except OSError:
            continue
    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8", errors="surrogateescape")).hexdigest()[:16]
