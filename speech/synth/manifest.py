"""The manifest (``synth.json``) of a synthetic data set: every file this tool wrote and the folders it created, so that
``overwrite`` removes only those."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

from speech.errors import OutputExistsError, SettingError

log = logging.getLogger(__name__)

MANIFEST = "synth.json"
MANIFEST_FORMAT = 2  # 2: "files" (path -> SHA-256, None while being written) and "created_folders"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_new(path: Path, data: bytes) -> str:
    """Write ``data`` to a file that must not exist yet (``x`` mode: never replaces anything); its SHA-256."""
    with open(path, "xb") as handle:
        handle.write(data)
    return _digest(data)



def read_manifest(out_dir: Path) -> dict | None:
    """The ``synth.json`` of ``out_dir`` as a dict, None when there is none; ValueError when unreadable."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingError(f"{path}: unreadable synth manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("generator") != "speech.synth":
        raise SettingError(f"{path}: not a speech synth manifest")
    return manifest


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    """Replace ``synth.json`` atomically (a crash leaves the old or the new one, never half of one)."""
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST)


def _files_of_earlier_run(out_dir: Path, manifest: dict) -> tuple[list[Path], list[str]]:
    """(files an earlier run wrote that are still as it wrote them, folders it created), from its manifest."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise OutputExistsError(
            f"{out_dir / MANIFEST}: written by an older speech synth that kept no list of its files, so its clips "
            "cannot be told apart from your own recordings; move them away (or use a new folder) and run again", param="overwrite")
    ours, changed = [], []
    for rel, digest in files.items():
        path = out_dir / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not path.is_file():
            continue
        # None: planned by a run that was cut short; the file did not exist before that run
        if digest is None or _digest(path.read_bytes()) == digest:
            ours.append(path)
        else:
            changed.append(rel)
    if changed:
        log.warning(
            "%s: %d file(s) written by speech synth were changed since; keeping them: %s",
            out_dir,
            len(changed),
            ", ".join(changed[:5]),
        )
    folders = [f for f in manifest.get("created_folders", []) if isinstance(f, str) and "/" not in f]
    return ours, folders


def _prepare_output(out_dir: Path, planned: list[str], overwrite: bool) -> tuple[int, list[str], list[str]]:
    """Make ``out_dir`` ready for the ``planned`` files (paths relative to it).

    A non-empty folder is refused unless ``overwrite``. With ``overwrite`` only the files the previous run's
    manifest lists (and unchanged since) are deleted, and only the label folders it created, once empty;
    everything else stays. Any planned file that already exists and is not one of those is refused before
    anything is deleted. Returns (files removed, files kept, label folders created by earlier runs that remain).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: output path exists and is not a folder", param="overwrite")
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        return 0, [], []
    entries = sorted(p.name for p in out_dir.iterdir())
    if not entries:
        return 0, [], []
    if not overwrite:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise OutputExistsError(
            f"{out_dir}: output folder is not empty ({len(entries)} entries: {shown}); choose an empty or new "
            "folder, or overwrite, which replaces only the clips an earlier 'speech synth' wrote there (nothing "
            "else is touched)", param="overwrite")
    try:
        manifest = read_manifest(out_dir)
    except ValueError as exc:
        raise OutputExistsError(f"{exc}; cannot tell which files speech synth wrote, so none is replaced", param="overwrite") from None
    ours, created = _files_of_earlier_run(out_dir, manifest) if manifest else ([], [])
    mine = {p.resolve() for p in ours}
    clashes = [rel for rel in planned if (out_dir / rel).exists() and (out_dir / rel).resolve() not in mine]
    if clashes:
        raise OutputExistsError(
            f"{out_dir}: {len(clashes)} file(s) this run would write exist and were not written by speech synth "
            f"(e.g. {', '.join(clashes[:3])}); nothing was changed. Move them, or choose another folder or seed", param="overwrite")
    for path in ours:
        path.unlink()
    remaining = []
    for folder in created:
        path = out_dir / folder
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        elif path.is_dir():
            remaining.append(folder)
    with contextlib.suppress(FileNotFoundError):
        (out_dir / MANIFEST).unlink()
    kept = sorted(
        str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    if kept:
        log.warning(
            "%s: left in place (not written by speech synth): %d file(s), e.g. %s",
            out_dir,
            len(kept),
            ", ".join(kept[:5]),
        )
    return len(ours), kept, remaining
