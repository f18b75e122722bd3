"""Synthetic keyword data sets spoken by espeak-ng.

:func:`synthesize_dataset` writes a custom-keyword folder in the Speech Commands test-set layout::

    <out>/<word>/<speaker>_nohash_<n>.wav              one folder per keyword
    <out>/_unknown_/<word>_<speaker>_nohash_<n>.wav    other words (negatives)
    <out>/_silence_/noise<k>_nohash_0.wav              white / pink / brown noise, some near-silence
    <out>/synth.json                                   what was asked for, and every file this tool wrote

The manifest ``synth.json`` lists every file written (with its SHA-256) and the label folders this tool
created, before the first clip is written. ``overwrite`` deletes only those files (unchanged since) and
only those folders (once empty): real recordings added to the label folders, and folders the user made, are
kept, and a planned file that would replace one of them is refused up front.

Every clip is 16 kHz mono 16-bit PCM, exactly 1 s (16000 samples). The pseudo speaker is the espeak-ng
voice and variant (``en-gb-x-rp`` + ``m3`` -> ``en-gb-x-rp-m3``), so TensorFlow's ``_nohash_`` hash split of
the data layer keeps each voice in one split; every silence clip is its own "speaker".

Speed: espeak-ng is started once per *speaking round* (one voice, speed, pitch and amplitude) that says every
keyword once plus some negatives, separated by 1 s SSML breaks; the words are cut apart at the silent gaps.
On the 2-core development machine that is 5x faster than one espeak-ng process per word
(``scripts/bench_synth.py``: ~2.3 ms vs ~13 ms of espeak-ng per word on an idle core).
Rounds run in a thread pool (the work happens in the espeak-ng processes and in numpy, which releases
the GIL). Every round and every silence clip has its own seed, so the files are byte-identical for a seed
whatever the number of jobs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

from speech.audio import CLIP_SAMPLES, SAMPLE_RATE, pcm_to_float, resample
from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL
from speech.data.noise import NOISE_COLOURS, coloured_noise
from speech.errors import OutputExistsError, SettingError, SpeechError
from speech.files import check_can_create
from speech.progress import ProgressCallback, Step, reporter
from speech.timing import Stopwatch

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22_050  # Hz, what espeak-ng writes
INSTALL_HINT = (
    "install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu; `brew install espeak-ng` on macOS) "
    "or run the project's scripts/setup.sh"
)
MANIFEST = "synth.json"
MANIFEST_FORMAT = 2  # 2: "files" (path -> SHA-256, None while being written) and "created_folders"

# The other Speech Commands words and a few more short English words; keywords are removed from it.
DEFAULT_NEGATIVES = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one", "seven",
    "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "forward", "follow", "learn", "visual",
    "hello", "water", "table", "green", "music", "paper", "window",
)  # fmt: skip
# Variants left out of the voice pool, with the reason.
EXCLUDED_VARIANTS = {
    "RicishayMax2": "echo tail longer than the 1 s pause between batched words",
    "RicishayMax3": "echo tail longer than the 1 s pause between batched words",
    "fast": "espeak-ng's unstable 'fast_test' speed experiment",
}

# Random ranges (inclusive) for one speaking round and one clip.
SPEED_RANGE = (120, 230)  # words per minute (espeak-ng -s; default 175)
PITCH_RANGE = (20, 80)  # espeak-ng -p, 0..99 (default 50)
AMPLITUDE_RANGE = (60, 120)  # espeak-ng -a, 0..200 (default 100)
PEAK_DBFS_RANGE = (-24.0, -1.0)  # random gain: the word's peak level in the clip, dB re full scale
WORD_NOISE_PROBABILITY = 0.8  # share of word clips that get low-level background noise
WORD_NOISE_DBFS_RANGE = (-75.0, -50.0)  # its RMS level
SILENCE_DBFS_RANGE = (-65.0, -30.0)  # RMS level of _silence_ noise clips
NEAR_SILENCE_PROBABILITY = 0.15  # share of _silence_ clips that are almost digital silence
NEAR_SILENCE_DBFS_RANGE = (-95.0, -75.0)

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


# ------------------------------------------------------------------------------------- clip shaping (pure)


def db_to_gain(db: float) -> float:
    """Amplitude factor of ``db`` decibels."""
    return float(10.0 ** (db / 20.0))


def word_clip(word: np.ndarray, rng: np.random.Generator, samples: int = CLIP_SAMPLES) -> np.ndarray:
    """Place a trimmed word at a random offset in a ``samples``-long clip with random gain and maybe noise.

    Gain: the word's peak goes to a level drawn from :data:`PEAK_DBFS_RANGE`; noise (white or pink, RMS in
    :data:`WORD_NOISE_DBFS_RANGE`) is added with probability :data:`WORD_NOISE_PROBABILITY`. A word longer
    than the clip keeps its first ``samples``. Returns float32 ``(samples,)`` within [-1, 1].
    """
    word = word[:samples]
    peak = float(np.abs(word).max(initial=0.0))
    gain = db_to_gain(rng.uniform(*PEAK_DBFS_RANGE)) / peak if peak > 0 else 0.0
    offset = int(rng.integers(0, samples - word.shape[0] + 1))
    clip = np.zeros(samples, dtype=np.float32)
    clip[offset : offset + word.shape[0]] = word * gain
    if rng.random() < WORD_NOISE_PROBABILITY:
        colour = NOISE_COLOURS[int(rng.integers(0, 2))]  # white or pink
        clip += coloured_noise(rng, samples, colour) * db_to_gain(rng.uniform(*WORD_NOISE_DBFS_RANGE))
    return np.clip(clip, -1.0, 1.0)


def silence_clip(rng: np.random.Generator, samples: int = CLIP_SAMPLES) -> np.ndarray:
    """A ``_silence_`` clip: white, pink or brown noise at a random low RMS level (some almost silent)."""
    colour = NOISE_COLOURS[int(rng.integers(0, len(NOISE_COLOURS)))]
    near = rng.random() < NEAR_SILENCE_PROBABILITY
    level = rng.uniform(*(NEAR_SILENCE_DBFS_RANGE if near else SILENCE_DBFS_RANGE))
    noise = coloured_noise(rng, samples, colour) * db_to_gain(level)
    return np.clip(noise, -1.0, 1.0)


# ------------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class ClipPlan:
    """One file to write: ``path`` relative to the output folder, spoken ``word`` (None for silence), seed."""

    label: str
    word: str | None
    path: str
    seed: tuple[int, ...]


@dataclass(frozen=True)
class RoundPlan:
    """One espeak-ng call: a voice at one speed / pitch / amplitude saying the words of ``clips`` in order."""

    voice: str
    speed: int
    pitch: int
    amplitude: int
    clips: tuple[ClipPlan, ...]


@dataclass(frozen=True)
class SilencePlan:
    """A batch of ``_silence_`` clips (no espeak-ng needed)."""

    clips: tuple[ClipPlan, ...]


def label_of(word: str) -> str:
    """Folder name of a keyword: lower case, apostrophes dropped, spaces as ``-`` (``"Don't stop"`` -> ``dont-stop``)."""
    return re.sub(r"\s+", "-", word.strip().lower().replace("'", ""))


def check_words(words: Iterable[str], what: str) -> list[str]:
    """Normalise a word list (strip, lower case) and reject blanks, duplicates and characters that cannot be a
    folder name: letters, digits, ``'``, ``-`` and single spaces only, starting with a letter or digit."""
    result = []
    for raw in words:
        word = re.sub(r"\s+", " ", str(raw).strip().lower())
        if not re.fullmatch(r"[a-z0-9][a-z0-9' -]*", word):
            raise SettingError(
                f"{what}: {raw!r} is not a usable word (the ASCII letters a-z, digits, apostrophes, hyphens and "
                "spaces, starting with a letter or digit: the word becomes a folder name and an espeak-ng input)"
            )
        result.append(word)
    repeated = sorted({label_of(w) for w in result if [label_of(x) for x in result].count(label_of(w)) > 1})
    if repeated:
        raise SettingError(f"{what}: repeated words {repeated}")
    return result


def plan_dataset(
    words: Sequence[str],
    negatives: Sequence[str],
    per_word: int,
    silence: int,
    unknown: int,
    seed: int,
    voices: Sequence[str],
) -> list[RoundPlan | SilencePlan]:
    """Decide every file, voice and seed up front (a pure function of its arguments).

    ``per_word`` rounds each say every keyword once (a round with no keyword exists only when ``per_word`` is 0
    and ``unknown`` > 0); the ``unknown`` negatives (cycled through the shuffled list) are spread over the
    rounds. File numbers ``<n>`` count the clips of one speaker in one folder. Silence clips come in batches of 50.
    """
    rng = np.random.default_rng([seed, 0])
    rounds = per_word if per_word > 0 else (math.ceil(unknown / 10) if unknown > 0 else 0)
    pool: list[str] = []
    while len(pool) < unknown:
        chunk = list(negatives)
        rng.shuffle(chunk)
        pool += chunk
    pool = pool[:unknown]
    taken: Counter[str] = Counter()
    tasks: list[RoundPlan | SilencePlan] = []
    used = 0
    for r in range(rounds):
        voice = str(voices[int(rng.integers(0, len(voices)))])
        speaker = speaker_id(voice)
        extra = unknown // rounds + (1 if r < unknown % rounds else 0)
        spoken = [(label_of(w), w) for w in (words if per_word > 0 else [])]
        spoken += [(UNKNOWN_LABEL, w) for w in pool[used : used + extra]]
        used += extra
        clips = []
        for i, (label, word) in enumerate(spoken):
            stem = f"{speaker}" if label != UNKNOWN_LABEL else f"{label_of(word)}_{speaker}"
            n = taken[f"{label}/{stem}"]
            taken[f"{label}/{stem}"] += 1
            clips.append(ClipPlan(label, word, f"{label}/{stem}_nohash_{n}.wav", (seed, 1, r, i)))
        speed = int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
        pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
        amplitude = int(rng.integers(AMPLITUDE_RANGE[0], AMPLITUDE_RANGE[1] + 1))
        tasks.append(RoundPlan(voice, speed, pitch, amplitude, tuple(clips)))
    width = max(4, len(str(silence - 1)))
    silence_clips = [
        ClipPlan(SILENCE_LABEL, None, f"{SILENCE_LABEL}/noise{k:0{width}d}_nohash_0.wav", (seed, 2, k))
        for k in range(silence)
    ]
    tasks += [SilencePlan(tuple(silence_clips[k : k + 50])) for k in range(0, silence, 50)]
    return tasks


# ---------------------------------------------------------------------------------------------- execution


def wav_bytes(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono float waveform as the bytes of a 16-bit PCM WAV file (what :func:`speech.audio.write_wav` writes).

    Writing these bytes with plain file I/O skips the ``fsync`` soundfile does on every close (~5 ms a file).
    """
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_new(path: Path, data: bytes) -> str:
    """Write ``data`` to a file that must not exist yet (``x`` mode: never replaces anything); its SHA-256."""
    with open(path, "xb") as handle:
        handle.write(data)
    return _digest(data)


def _run_task(out_dir: Path, task: RoundPlan | SilencePlan) -> list[tuple[ClipPlan, str]]:
    """Synthesise and write the clips of one task; returns each clip with the SHA-256 of its file."""
    if isinstance(task, SilencePlan):
        waves = [silence_clip(np.random.default_rng(list(clip.seed))) for clip in task.clips]
    else:
        spoken = speak_many([c.word or "" for c in task.clips], task.voice, task.speed, task.pitch, task.amplitude)
        waves = [
            word_clip(wave, np.random.default_rng(list(clip.seed)))
            for clip, wave in zip(task.clips, spoken, strict=True)
        ]
    return [(clip, _write_new(out_dir / clip.path, wav_bytes(wave))) for clip, wave in zip(task.clips, waves, strict=True)]


@dataclass
class SynthSummary:
    """What :func:`synthesize_dataset` wrote: ``counts[label]`` clips per folder, wall time in seconds."""

    out_dir: Path
    counts: dict[str, int]
    seconds: float
    speakers: int
    voices: int
    espeak_calls: int
    removed: int = 0  # files of an earlier synth run deleted because of overwrite=True
    kept: list[str] = field(default_factory=list)  # files in the folder that synth did not write (left alone)
    labels: list[str] = field(default_factory=list)

    @property
    def clips(self) -> int:
        return sum(self.counts.values())

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("inf")


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


def espeak_version() -> str:
    """First line of ``espeak-ng --version``."""
    return _espeak_output(["--version"], "--version").decode(errors="replace").splitlines()[0].strip()


def synthesize_dataset(
    out_dir: str | Path,
    words: Sequence[str],
    *,
    negatives: Sequence[str] | None = None,
    per_word: int = 100,
    silence: int | None = None,
    unknown: int | None = None,
    seed: int = 0,
    jobs: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | bool | None = True,
    language: str = "en",
) -> SynthSummary:
    """Write a keyword data set spoken by espeak-ng into ``out_dir`` (layout in the module docstring).

    ``words``: the keywords (one folder each); ``negatives``: words for ``_unknown_`` (default
    :data:`DEFAULT_NEGATIVES` minus the keywords; given ones must not repeat a keyword); ``per_word`` clips per
    keyword; ``silence`` / ``unknown``: clips in ``_silence_`` / ``_unknown_`` (default ``per_word`` each; 0 leaves
    the folder out); ``seed``: same seed -> byte-identical files, whatever ``jobs`` (threads, default the CPU
    count); ``overwrite``: allow a non-empty ``out_dir``, replacing only what an earlier run wrote there (see
    :func:`_prepare_output`; your own files stay, and a clash with one is an error); ``language``: espeak-ng
    voices to draw from (``--voices=<language>``).
    Raises :class:`EspeakNotFoundError` when espeak-ng is missing,
    :class:`FileExistsError` for a non-empty folder (or a clash with a file synth did not write),
    :class:`ValueError` for bad arguments.
    """
    watch = Stopwatch().start()
    find_espeak()  # fail before anything else when espeak-ng is missing
    out_dir = Path(out_dir).expanduser()
    words = check_words(words, "words")
    if not words and per_word > 0:
        raise SettingError("words: give at least one keyword")
    for name, value in (("per_word", per_word), ("silence", silence), ("unknown", unknown)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise SettingError(f"{name} must be a whole number >= 0, got {value!r}")
    if jobs is not None and jobs < 1:
        raise SettingError(f"jobs must be >= 1, got {jobs}")
    silence = per_word if silence is None else silence
    unknown = per_word if unknown is None else unknown
    keyword_labels = {label_of(w) for w in words}
    if negatives is None:
        negatives = [w for w in DEFAULT_NEGATIVES if label_of(w) not in keyword_labels]
    else:
        negatives = check_words(negatives, "negatives")
        clash = sorted(w for w in negatives if label_of(w) in keyword_labels)
        if clash:
            raise SettingError(f"negatives: {clash} are also keywords; a word cannot be both")
    if unknown > 0 and not negatives:
        raise SettingError("unknown > 0 needs at least one negative word")
    if per_word + silence + unknown == 0:
        raise SettingError("nothing to synthesise: per_word, silence and unknown are all 0", param="per_word")
    check_can_create(out_dir, "output folder", param="out")  # a read-only place: now, not after the work
    voices = voice_pool(language)  # also checks that espeak-ng is there, before touching the folder
    if not voices:
        raise EspeakError(f"{ESPEAK} has no voices for language {language!r} (see `{ESPEAK} --voices={language}`)")
    labels = [label_of(w) for w in words] if per_word > 0 else []
    labels += [UNKNOWN_LABEL] * (unknown > 0) + [SILENCE_LABEL] * (silence > 0)
    tasks = plan_dataset(words, negatives, per_word, silence, unknown, seed, voices)
    planned = [clip.path for task in tasks for clip in task.clips]
    removed, kept, created = _prepare_output(out_dir, planned, overwrite)
    for label in labels:
        if not (out_dir / label).is_dir():
            (out_dir / label).mkdir()
            created.append(label)
    files: dict[str, str | None] = dict.fromkeys(planned)
    manifest = {
        "generator": "speech.synth",
        "format": MANIFEST_FORMAT,
        "espeak": espeak_version(),
        "words": words,
        "negatives": list(negatives),
        "per_word": per_word,
        "silence": silence,
        "unknown": unknown,
        "seed": seed,
        "language": language,
        "voices": len(voices),
        "counts": {},
        "created_folders": sorted(set(created)),
        "complete": False,
        "files": files,
    }
    _write_manifest(out_dir, manifest)  # before the first clip: a run cut short still knows its files

    jobs = jobs or os.cpu_count() or 1
    written = _run_tasks(out_dir, tasks, jobs, reporter(progress))
    counts = Counter(clip.label for clip, _ in written)
    ordered = {label: counts.get(label, 0) for label in labels}
    files.update({clip.path: digest for clip, digest in written})
    rounds = [t for t in tasks if isinstance(t, RoundPlan)]
    manifest.update(counts=ordered, complete=True, files=files)
    _write_manifest(out_dir, manifest)
    return SynthSummary(
        out_dir=out_dir,
        counts=ordered,
        seconds=watch.elapsed,
        speakers=len({t.voice for t in rounds}),
        voices=len(voices),
        espeak_calls=len(rounds),
        removed=removed,
        kept=kept,
        labels=labels,
    )


def _run_tasks(
    out_dir: Path, tasks: list[RoundPlan | SilencePlan], jobs: int, progress: ProgressCallback
) -> list[tuple[ClipPlan, str]]:
    """Run ``tasks`` in ``jobs`` threads; every clip written, with the SHA-256 of its file."""
    written: list[tuple[ClipPlan, str]] = []
    total = sum(len(t.clips) for t in tasks)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_task, out_dir, task) for task in tasks]
        progress(Step("synthesising", 0, total, "clips"))
        try:
            for future in as_completed(futures):
                written += future.result()
                progress(Step("synthesising", len(written), total, "clips"))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return written
