"""Writing a user-visible file so that nothing is lost: a temporary file beside the target, renamed into place
only when it is complete."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from speech.errors import OutputExistsError, OutputPlaceError


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replaced_atomically(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder to write; on a clean exit rename it to ``target``.

    Refuses with :class:`FileExistsError` when ``target`` exists (also when it appeared while writing) unless
    ``overwrite``. On any error, Ctrl-C included, the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); the result is an ordinary file
    try:
        yield tmp
        if target.exists() and not overwrite:  # appeared while we were writing
            raise FileExistsError(f"{target} exists; refusing to overwrite it")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomically(target: str | Path, text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``target`` through :func:`replaced_atomically`; returns ``target``."""
    with replaced_atomically(target, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def check_can_create(path: str | Path, what: str, *, param: str | None = None) -> None:
    """Raise :class:`~speech.errors.OutputPlaceError` unless ``path`` (a file or folder to write) can be written:
    the folder itself when it exists, else its nearest existing ancestor, must be a folder we may write into.
    Every command calls it for its outputs before any long work starts. ``param``: the parameter naming ``path``.

    The permission bits are not enough: ``/proc`` and ``/sys`` look writable to root but take no new files, and a
    read-only mount or a full quota only shows when writing. So a hidden empty file is created in that folder and
    removed at once, as the real outputs will be created there."""
    path = Path(path)
    candidates = [path] if path.is_dir() else []
    target = next((p for p in [*candidates, *path.parents] if p.exists()), Path("."))
    if not target.is_dir():
        raise OutputPlaceError(f"{path}: cannot create the {what}: {target} is a file, not a folder", param=param)
    if not os.access(target, os.W_OK | os.X_OK):
        raise OutputPlaceError(f"{path}: cannot write the {what}: {target} is not writable", param=param)
    try:
        fd, probe = tempfile.mkstemp(prefix=".speech-write-check-", dir=target)
    except OSError as exc:
        raise OutputPlaceError(f"{path}: cannot write the {what}: {target} takes no new files "
                               f"({exc.strerror or exc})", param=param) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_new_file(path: str | Path, what: str, *, overwrite: bool = False, param: str | None = None,
                   example: str | None = None) -> Path:
    """Refuse an output file (the ``what``, named by the parameter ``param``) that is a folder, exists unless
    ``overwrite``, or cannot be created there; ``example``: a file name to suggest when a folder was given."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder; the {what} needs a file name"
                                + (f" (e.g. {path / example})" if example else ""), param=param)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it", param="overwrite")
    check_can_create(path, what, param=param)
    return path


def check_json_path(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse a JSON output that is a folder, or exists unless ``overwrite``, or cannot be created there."""
    return check_new_file(path, "JSON file", overwrite=overwrite, param="json_path")


def write_json(path: str | Path, data: dict, overwrite: bool = False) -> Path:
    """``data`` as indented JSON at ``path``; an existing file is refused unless ``overwrite`` (also one that
    appears between the check and the write)."""
    path = check_json_path(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w" if overwrite else "x", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    return path
