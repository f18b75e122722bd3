"""Fast folder scan (``os.scandir``, one ``stat`` per file, no decoding) and layout detection."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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


def _list_audio(folder: str, bad: list[tuple[str, str]]) -> list[str]:
    """Sorted audio file names in ``folder``; empty files go to ``bad`` instead."""
    names: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        bad.append((folder, f"cannot list folder ({exc.strerror or exc})"))
        return names
    for entry in entries:
        name = entry.name
        if name.startswith(".") or not name.lower().endswith(AUDIO_EXTENSIONS):
            continue
        try:
            if not entry.is_file():
                continue
            size = entry.stat().st_size
        except OSError as exc:
            bad.append((entry.path, f"cannot stat ({exc.strerror or exc})"))
            continue
        if size == 0:
            bad.append((entry.path, "empty file (0 bytes)"))
            continue
        names.append(name)
    names.sort()
    return names


def scan_folder(root: str | Path) -> FolderScan:
    """Scan ``root`` one level deep and detect its layout.

    * ``"full"``: the Speech Commands training archive: word folders plus ``_background_noise_/`` and/or
      ``validation_list.txt`` / ``testing_list.txt``;
    * ``"test_set"``: the official test-set archive: label folders including ``_unknown_`` and/or ``_silence_``;
    * ``"folders"``: any ``<label>/*.wav|flac|ogg`` tree.

    Raises :class:`DatasetError` naming ``root`` when it is missing, not a folder, or holds no label subfolder
    with audio.
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
    stray = 0
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            subdirs.append(entry.name)
            names = _list_audio(entry.path, bad)
            if entry.name == BACKGROUND_NOISE_DIR:
                noise = [Path(entry.path) / name for name in names]
            elif names:
                clips[entry.name] = names
        elif is_audio_name(entry.name):
            stray += 1
    if not clips:
        found = f"subfolders {subdirs[:10]}" if subdirs else "no subfolders"
        if stray:
            found += f" and {stray} audio file(s) directly inside it"
        raise DatasetError(
            f"{root}: expected label subfolders holding audio (<label>/*.wav|flac|ogg), as in the Speech Commands "
            f"archive, its test-set archive or a custom keyword set; found {found} with no audio in them"
        )
    has_lists = any((root / name).is_file() for name in LIST_FILES)
    if (root / BACKGROUND_NOISE_DIR).is_dir() or has_lists:
        layout = "full"
    elif UNKNOWN_LABEL in clips or SILENCE_LABEL in clips:
        layout = "test_set"
    else:
        layout = "folders"
    return FolderScan(root=root, layout=layout, clips=clips, noise_files=noise, bad_files=bad)
