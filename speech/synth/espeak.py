"""espeak-ng itself: finding it, its voices, and speaking words (several per call, cut apart at the silences)."""

from __future__ import annotations

import functools
import logging
import math
import re
import shutil
import subprocess
from collections.abc import Sequence
from xml.sax.saxutils import escape

import numpy as np

from speech.audio.io import SAMPLE_RATE, pcm_to_float, resample
from speech.errors import SpeechError

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22_050  # Hz, what espeak-ng writes
INSTALL_HINT = (
    "install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu; `brew install espeak-ng` on macOS) "
    "or run the project's scripts/setup.sh"
)
# Variants left out of the voice pool, with the reason.
EXCLUDED_VARIANTS = {
    "RicishayMax2": "echo tail longer than the 1 s pause between batched words",
    "RicishayMax3": "echo tail longer than the 1 s pause between batched words",
    "fast": "espeak-ng's unstable 'fast_test' speed experiment",
}


# Cutting a batch apart (in espeak's 22.05 kHz int16 units / samples).
BREAK_MS = 1000  # SSML pause between the words of one espeak-ng call
SILENT_LEVEL = 32  # |sample| at or below this (-60 dBFS) counts as silence between words
MIN_GAP = int(0.3 * ESPEAK_RATE)  # a silent run this long separates two words
EDGE_MS = 5.0  # kept around each word when it is cut out
MAX_WORD_SECONDS = 0.97  # longer words are spoken again, faster


class EspeakError(SpeechError, RuntimeError):
    """espeak-ng failed or produced something unusable; the message says which voice and text."""

    exit_code = 1


class EspeakNotFoundError(EspeakError):
    """espeak-ng is not installed (not on PATH)."""

    exit_code = 2  # the setup to fix, like a missing input


# --------------------------------------------------------------------------------------------- espeak-ng


def find_espeak() -> str:
    """Absolute path of the ``espeak-ng`` program; :class:`EspeakNotFoundError` with install advice if absent."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise EspeakNotFoundError(f"{ESPEAK} was not found on PATH; {INSTALL_HINT}")
    return path


def _espeak_output(args: Sequence[str], what: str) -> bytes:
    command = [find_espeak(), *args]
    try:
        done = subprocess.run(command, capture_output=True, check=False)
    except OSError as exc:
        raise EspeakError(f"cannot run {command[0]} for {what}: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise EspeakError(f"{ESPEAK} failed (exit {done.returncode}) for {what}: {message}")
    return done.stdout


@functools.lru_cache(maxsize=4)
def _voice_table(kind: str) -> tuple[str, ...]:
    return tuple(_espeak_output([f"--voices={kind}"], f"--voices={kind}").decode().splitlines()[1:])


def list_languages(language: str = "en") -> list[str]:
    """espeak-ng's own voices for ``language`` (``--voices=en``), e.g. ``en-gb``, ``en-us``, ``en-029``.

    MBROLA voices (``mb/...`` files) are left out: they need the separate ``mbrola`` program.
    """
    found = set()
    for line in _voice_table(language):
        parts = line.split()
        if len(parts) >= 5 and parts[1] != "variant" and not parts[4].startswith("mb/"):
            found.add(parts[1])
    return sorted(found)


def list_variants() -> list[str]:
    """Voice variants (``--voices=variant``: m1..m8, f1..f5, croak, whisper, klatt, ...) usable as ``lang+variant``.

    Variants whose file name holds a space, and those in :data:`EXCLUDED_VARIANTS`, are left out.
    """
    found = {}
    for line in _voice_table("variant"):
        match = re.search(r"!v/(.+?)(?:\s{2,}|\s*$)", line)
        if match and re.fullmatch(r"[A-Za-z0-9-]+", match.group(1)) and match.group(1) not in EXCLUDED_VARIANTS:
            found.setdefault(match.group(1).lower(), match.group(1))  # speaker ids are lower case: keep one
    return sorted(found.values(), key=str.lower)


def voice_pool(language: str = "en") -> list[str]:
    """Every ``lang+variant`` voice for ``language``, sorted (``en-029+Alex`` ... ``en-us-nyc+zac``)."""
    return [f"{lang}+{variant}" for lang in list_languages(language) for variant in list_variants()]


def speaker_id(voice: str) -> str:
    """File-name-safe pseudo speaker for an espeak-ng voice: ``en-gb-x-rp+m3`` -> ``en-gb-x-rp-m3``.

    Lower case letters, digits and ``-`` only: never ``_``, so ``<speaker>_nohash_<n>`` parses unambiguously.
    """
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", voice.lower())).strip("-")


def _espeak_wave(text: str, voice: str, speed: int, pitch: int, amplitude: int) -> np.ndarray:
    """Speak SSML ``text``; int16 samples at :data:`ESPEAK_RATE`, shape ``(samples,)``."""
    what = f"voice {voice!r} (speed {speed}, pitch {pitch}, amplitude {amplitude}), text {text[:80]!r}"
    args = ["--stdout", "-m", "-z", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude), text]
    data = _espeak_output(args, what)
    # --stdout writes a streaming WAV header (its sizes are placeholders): take everything after "data"+size.
    at = data.find(b"data", 12)
    if not data.startswith(b"RIFF") or at < 0:
        raise EspeakError(f"{ESPEAK} wrote no WAV data for {what}")
    body = data[at + 8 :]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")


def find_word_segments(
    wave: np.ndarray, count: int, silent_level: float = SILENT_LEVEL, min_gap: int = MIN_GAP
) -> list[tuple[int, int]] | None:
    """Cut a recording of ``count`` words separated by long pauses into ``count`` ``(start, end)`` sample ranges.

    A sample is sound when ``|x| > silent_level``; words are separated by the ``count - 1`` longest runs of
    silence longer than ``min_gap`` samples (shorter runs, e.g. a stop closure, stay inside a word).
    Returns None when there are fewer such runs than needed (or no sound at all).
    """
    loud = np.flatnonzero(np.abs(wave.astype(np.float32)) > silent_level)
    if count < 1 or loud.size == 0:
        return None
    gaps = np.diff(loud)
    cuts = np.flatnonzero(gaps > min_gap)
    if cuts.size < count - 1:
        return None
    if cuts.size > count - 1:
        cuts = np.sort(cuts[np.argsort(gaps[cuts], kind="stable")[cuts.size - (count - 1) :]])
    starts = np.concatenate([loud[:1], loud[cuts + 1]])
    ends = np.concatenate([loud[cuts], loud[-1:]]) + 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _ssml(words: Sequence[str]) -> str:
    pause = f'<break time="{BREAK_MS}ms"/>'
    return "<speak>" + pause.join(f"{escape(word)}." for word in words) + "</speak>"


def _cut_words(wave22: np.ndarray, segments: list[tuple[int, int]]) -> list[np.ndarray]:
    """Cut out each ``(start, end)`` segment of an espeak recording (with :data:`EDGE_MS` around it) and
    resample it to 16 kHz float32 ``(samples,)``."""
    edge = int(EDGE_MS * ESPEAK_RATE / 1000)
    out = []
    for start, end in segments:
        piece = pcm_to_float(wave22[max(0, start - edge) : min(wave22.shape[0], end + edge)])
        out.append(np.ascontiguousarray(resample(piece, ESPEAK_RATE, SAMPLE_RATE), dtype=np.float32))
    return out


def speak_many(
    words: Sequence[str], voice: str = "en-us", speed: int = 175, pitch: int = 50, amplitude: int = 100
) -> list[np.ndarray]:
    """Speak ``words`` with one espeak-ng call; each word as 16 kHz float32 ``(samples,)``, silence trimmed.

    ``voice`` is an espeak-ng voice, optionally with a variant (``en-gb+f3``); ``speed`` in words per minute
    (80..450), ``pitch`` 0..99, ``amplitude`` 0..200. Words whose cut-out is longer than
    :data:`MAX_WORD_SECONDS` are spoken again alone, faster. If the recording cannot be cut into
    ``len(words)`` parts, every word is spoken by its own call.
    """
    words = list(words)
    if not words:
        return []
    wave22 = _espeak_wave(_ssml(words), voice, speed, pitch, amplitude)
    segments = find_word_segments(wave22, len(words))
    if segments is None:
        if len(words) == 1:
            raise EspeakError(f"{ESPEAK} voice {voice!r} produced no sound for {words[0]!r}")
        log.debug("voice %s: could not cut %d words apart; speaking them one by one", voice, len(words))
        return [speak(word, voice, speed, pitch, amplitude) for word in words]
    waves = _cut_words(wave22, segments)
    limit = int(MAX_WORD_SECONDS * SAMPLE_RATE)
    for i, wave in enumerate(waves):
        faster = speed
        for _ in range(3):
            if wave.shape[0] <= limit:
                break
            faster = min(450, math.ceil(faster * wave.shape[0] / limit * 1.1))
            log.debug("voice %s: %r lasts %.2f s; speaking it at speed %d", voice, words[i], wave.shape[0] / SAMPLE_RATE, faster)
            wave = speak(words[i], voice, faster, pitch, amplitude)
        waves[i] = wave
    return waves


def speak(word: str, voice: str = "en-us", speed: int = 175, pitch: int = 50, amplitude: int = 100) -> np.ndarray:
    """Speak one word (or phrase): 16 kHz float32 ``(samples,)``, leading and trailing silence trimmed.

    Arguments as in :func:`speak_many`. Raises :class:`EspeakNotFoundError` when espeak-ng is missing and
    :class:`EspeakError` when it fails or says nothing audible.
    """
    wave22 = _espeak_wave(_ssml([word]), voice, speed, pitch, amplitude)
    segments = find_word_segments(wave22, 1)
    if segments is None:
        raise EspeakError(f"{ESPEAK} voice {voice!r} produced no sound for {word!r}")
    return _cut_words(wave22, segments)[0]


def espeak_version() -> str:
    """First line of ``espeak-ng --version``."""
    return _espeak_output(["--version"], "--version").decode(errors="replace").splitlines()[0].strip()
