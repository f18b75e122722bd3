"""Download and safely extract the official Speech Commands archives, and LibriSpeech parts (running speech).

``download_dataset("v0.02", "data/")`` fetches ``speech_commands_v0.02.tar.gz`` (and, by default, the official
``speech_commands_test_set_v0.02.tar.gz``) from ``http://download.tensorflow.org/data/``, resuming an
interrupted download (HTTP ``Range`` on a ``.part`` file), checking the SHA-256 when one is known, and extracts
each into ``<root>/<archive name without .tar.gz>/`` refusing absolute paths, ``..`` components, links that
point outside the target and special files.

Known SHA-256 checksums: v0.02 and its test set from TensorFlow Datasets
(``tensorflow_datasets/url_checksums/speech_commands.txt``), v0.01 from torchaudio's ``SPEECHCOMMANDS``. No
published checksum was found for ``speech_commands_test_set_v0.01.tar.gz``: it is downloaded unverified (with a
warning) unless one is given.

``download_librispeech("train-clean-100", "data/")`` fetches a part of LibriSpeech (Panayotov et al. 2015, CC BY
4.0) from ``https://www.openslr.org/resources/12/`` into ``<root>/librispeech-<part>/``: transcribed running read
speech of other people, the non-keyword speech of ``--data.running_speech`` (``configs/live.yaml``) and of the
false-accept tests. Known SHA-256 checksums of its seven parts: torchaudio's ``LIBRISPEECH``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from speech.errors import SpeechError
from speech.utils.progress import ProgressCallback, Step, reporter

log = logging.getLogger(__name__)

DEFAULT_URL_BASE = "http://download.tensorflow.org/data/"
VERSIONS = ("v0.01", "v0.02")
KNOWN_SHA256 = {
    "speech_commands_v0.01.tar.gz": "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    "speech_commands_v0.02.tar.gz": "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    "speech_commands_test_set_v0.02.tar.gz": "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
}
LIBRISPEECH_URL_BASE = "https://www.openslr.org/resources/12/"
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
LIBRISPEECH_PARTS = tuple(LIBRISPEECH_SHA256)
KNOWN_SIZES = {  # bytes, from TensorFlow Datasets
    "speech_commands_v0.02.tar.gz": 2_428_923_189,
    "speech_commands_test_set_v0.02.tar.gz": 112_563_277,
}
_CHUNK = 1 << 20


class DownloadError(SpeechError, RuntimeError):
    """A download or extraction that failed; the message names the URL or file and what went wrong."""

    exit_code = 1


class TransferInterrupted(DownloadError):
    """A transfer that broke part-way; what arrived is kept in the ``.part`` file and can be resumed."""


def archive_names(version: str, test_set: bool = True) -> list[str]:
    """File names of the archives of ``version`` ("v0.01" | "v0.02"): the data set, then its test set."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    names = [f"speech_commands_{version}.tar.gz"]
    if test_set:
        names.append(f"speech_commands_test_set_{version}.tar.gz")
    return names


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _fetch_once(url: str, part: Path, progress: ProgressCallback, timeout: float) -> None:
    """One HTTP transfer into ``part``, resuming from its current size. Raises on a short or failed transfer."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "speech-data/1"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left past what we have: the .part is complete
            log.info("%s: server reports %s already complete (%d bytes)", url, part.name, have)
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from None
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        if have and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise DownloadError(f"{url}: asked for bytes {have}- but got Content-Range {content_range!r}")
            size_text = content_range.rsplit("/", 1)[-1]
            total = int(size_text) if size_text.isdigit() else None
            mode = "ab"
            log.info("%s: resuming at byte %d", url, have)
        else:
            if have:
                log.info("%s: server ignored the Range request; starting again from byte 0", url)
            have, mode = 0, "wb"
            total = int(length) if length and length.isdigit() else None
        expected_body = int(length) if length and length.isdigit() else None
        received = 0
        what = part.name.removesuffix(".part")
        with open(part, mode) as out:
            progress(Step(what, have, total, "bytes"))
            while True:
                try:
                    block = response.read(_CHUNK)
                except Exception as exc:  # OSError, http.client.IncompleteRead, ...
                    raise TransferInterrupted(
                        f"{url}: transfer broke after {have + received} bytes ({exc!r})"
                    ) from None
                if not block:
                    break
                out.write(block)
                received += len(block)
                progress(Step(what, have + received, total, "bytes"))
        if expected_body is not None and received < expected_body:
            raise TransferInterrupted(
                f"{url}: connection closed after {have + received} of {have + expected_body} bytes "
                "(run again to resume)"
            )


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    progress: ProgressCallback | bool | None = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed with HTTP Range), then verify and rename.

    ``sha256``: the expected hex digest; when None the known one for the file name (:data:`KNOWN_SHA256`) is
    used, and when none is known the file is kept unverified with a warning giving its digest. An existing
    ``dest`` is checked, not fetched again. A checksum mismatch deletes the ``.part`` and raises
    :class:`DownloadError`. Broken transfers are resumed up to ``retries`` times.
    """
    dest = Path(dest)
    expected = (sha256 or KNOWN_SHA256.get(dest.name) or "").lower() or None
    if dest.exists():
        if expected and sha256_of(dest) != expected:
            raise DownloadError(
                f"{dest}: exists but its SHA-256 is not the expected {expected}; move it away"
            )
        log.info("%s: already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, reporter(progress), timeout)
            break
        except TransferInterrupted as exc:
            if attempt == retries:
                raise
            log.warning("%s; resuming (%d/%d)", exc, attempt + 1, retries)
            time.sleep(0.1 * 2**attempt)
    digest = sha256_of(part)
    if expected is None:
        log.warning(
            "%s: no known checksum; not verified (SHA-256 %s)", dest.name, digest
        )
    elif digest != expected:
        part.unlink()
        raise DownloadError(
            f"{url}: SHA-256 {digest} does not match the expected {expected}; the download was deleted"
        )
    else:
        log.info("%s: SHA-256 verified", dest.name)
    os.replace(part, dest)
    return dest


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be extracted (None when it is safe)."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = posixpath.normpath(name.replace("\\", "/")).split("/")
    if ".." in name.replace("\\", "/").split("/") or parts[0] == "..":
        return "path with '..'"
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
            return f"link to an absolute path ({member.linkname})"
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            return f"link pointing outside the archive ({member.linkname})"
    elif not (member.isfile() or member.isdir()):
        return "special file (device, fifo)"
    return None


def safe_extract(archive: str | Path, dest: str | Path, *, progress: ProgressCallback | bool | None = True) -> Path:
    """Extract ``archive`` into the new folder ``dest``, refusing it whole if any member is unsafe.

    Unsafe: absolute paths, ``..`` components, symlinks/hard links resolving outside ``dest``, device files.
    Extraction goes to ``dest.partial`` and is renamed to ``dest`` when complete; an archive whose only entry
    is one folder has that folder's contents placed in ``dest``. ``dest`` must not exist yet.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists; refusing to extract {archive.name} over it")
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DownloadError(f"{archive}: not a readable tar archive ({exc})") from None
    partial = dest.with_name(dest.name + ".partial")
    with tar:
        members = tar.getmembers()
        unsafe = [(m.name, why) for m in members if (why := _member_problem(m))]
        if unsafe:
            shown = "; ".join(f"{name!r}: {why}" for name, why in unsafe[:5])
            raise DownloadError(
                f"{archive}: refusing to extract an unsafe archive ({len(unsafe)} bad entries: {shown})"
            )
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        try:
            report, what, total, done = reporter(progress), f"extracting {archive.name}", sum(m.size for m in members), 0
            report(Step(what, 0, total, "bytes"))
            for member in members:
                tar.extract(member, partial, filter="data")
                done += member.size
                report(Step(what, done, total, "bytes"))
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise DownloadError(f"{archive}: extraction failed ({exc})") from None
    entries = [p for p in partial.iterdir()]
    source = entries[0] if len(entries) == 1 and entries[0].is_dir() else partial
    os.replace(source, dest)
    if source != partial:
        with contextlib.suppress(OSError):
            partial.rmdir()
    return dest


def _fetch_and_extract(url: str, archive: Path, folder: Path, *, sha256: str | None,
                       progress: ProgressCallback | bool | None, keep_archive: bool) -> Path:
    """``url`` downloaded to ``archive`` (:func:`download_file`) and extracted into ``folder``; a folder already
    extracted is left as it is."""
    if folder.is_dir():
        log.info("%s: already extracted", folder)
        return folder
    download_file(url, archive, sha256=sha256, progress=progress)
    safe_extract(archive, folder, progress=progress)
    if not keep_archive:
        archive.unlink()
    return folder


@contextlib.contextmanager
def _download_root(root: str | Path) -> Iterator[Path]:
    """``root`` made for a download (checked writable first, before any transfer); the folders this call made are
    removed again when the download fails and leaves them empty (no server, a bad part, Ctrl-C), so a failed
    first try leaves nothing behind. A partial download in them stays, to be resumed."""
    from speech.utils.files import check_can_create

    root = Path(root).expanduser()
    check_can_create(root, "download folder", param="root")  # a read-only place: now, before any transfer
    made = [folder for folder in (root, *root.parents) if not folder.exists()]  # deepest first
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):  # not empty: keep it (and its parents)
                folder.rmdir()
        raise


def download_dataset(
    version: str,
    root: str | Path,
    *,
    url_base: str = DEFAULT_URL_BASE,
    test_set: bool = True,
    sha256: dict[str, str] | None = None,
    progress: ProgressCallback | bool | None = True,
    keep_archives: bool = True,
) -> dict[str, Path]:
    """Fetch and extract the archives of ``version`` into ``root``; return ``{archive name: extracted folder}``.

    Folders: ``<root>/speech_commands_<version>/`` and ``<root>/speech_commands_test_set_<version>/``. An
    already extracted folder is left as it is. ``sha256`` maps archive names to expected digests (overriding
    the known ones). Archives are kept in ``root`` unless ``keep_archives`` is False.
    """
    base = url_base if url_base.endswith("/") else url_base + "/"
    with _download_root(root) as root:
        return {
            name: _fetch_and_extract(base + name, root / name, root / name.removesuffix(".tar.gz"),
                                     sha256=(sha256 or {}).get(name), progress=progress, keep_archive=keep_archives)
            for name in archive_names(version, test_set)
        }


def download_librispeech(
    part: str,
    root: str | Path,
    *,
    url_base: str = LIBRISPEECH_URL_BASE,
    sha256: str | None = None,
    progress: ProgressCallback | bool | None = True,
    keep_archive: bool = True,
) -> Path:
    """Fetch and extract the LibriSpeech ``part`` (one of :data:`LIBRISPEECH_PARTS`) into
    ``<root>/librispeech-<part>/`` and return that folder: the archive's ``LibriSpeech/`` (``SPEAKERS.TXT`` ...,
    ``<part>/<reader>/<chapter>/`` with the FLAC sentences and their ``.trans.txt``), the layout
    ``--data.running_speech`` reads. ``sha256``: the expected digest (default: the known one of the part)."""
    from speech.errors import SettingError

    if part not in LIBRISPEECH_PARTS:
        raise SettingError(f"LibriSpeech part must be one of {', '.join(LIBRISPEECH_PARTS)}, got {part!r}",
                           param="part")
    base = url_base if url_base.endswith("/") else url_base + "/"
    with _download_root(root) as root:
        return _fetch_and_extract(base + f"{part}.tar.gz", root / f"librispeech-{part}.tar.gz",
                                  root / f"librispeech-{part}", sha256=sha256 or LIBRISPEECH_SHA256[part],
                                  progress=progress, keep_archive=keep_archive)
