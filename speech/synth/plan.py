"""What a synthetic data set holds: the speaking rounds and silence clips planned for a seed, and each clip's shape
(placement, level, noise)."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from speech.audio.io import CLIP_SAMPLES
from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL
from speech.data.noise import NOISE_COLOURS, coloured_noise
from speech.errors import SettingError
from speech.synth.espeak import speaker_id

log = logging.getLogger(__name__)

# The other Speech Commands words and a few more short English words; keywords are removed from it.
DEFAULT_NEGATIVES = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one", "seven",
    "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "forward", "follow", "learn", "visual",
    "hello", "water", "table", "green", "music", "paper", "window",
)  # fmt: skip

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
