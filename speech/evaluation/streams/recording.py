"""Long test recordings as TensorFlow's ``generate_streaming_test_wav.py`` makes them.

* Background: 1.5 s noise segments every 1 s (250 ms linear cross-fades), each at a volume drawn from
  U(0, ``background_volume``). Each segment is first scaled to a peak of 1 (TF's background files are
  full-scale recordings; the test-set ``_silence_`` clips used here are not).
* Words: one 1 s clip per ``clip_ms + word_gap_ms`` (3 s) stride, at a random offset in [0, word_gap_ms)
  inside its stride, ``unknown_percentage`` % of them ``_unknown_``, the rest a uniformly drawn keyword,
  mixed at volume 1 with 500-sample ramps. The labels file gets ``label, clip start in ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech.audio.activity import clip_speech_bounds
from speech.audio.io import load_audio
from speech.data.labels import UNKNOWN_LABEL
from speech.evaluation.streams.matching import LabelledTime, Word

SAMPLE_RATE = 16_000


@dataclass
class LongRecording:
    """A generated stream: ``wave`` (samples,) float32 at 16 kHz, the ``words`` (label, clip start ms) and, per
    word, the speech onset and end inside its clip (ms from the stream start, from the clip's energy)."""

    wave: np.ndarray
    words: list[LabelledTime]
    onsets_ms: list[float]
    ends_ms: list[float]
    clips: list[str]

    @property
    def seconds(self) -> float:
        return self.wave.shape[0] / SAMPLE_RATE

    def spans(self) -> list[Word]:
        """Each word with its clip start, speech onset and speech end (ms) and its clip's path."""
        return [
            Word(w.label, w.time_ms, onset, end, clip)
            for w, onset, end, clip in zip(self.words, self.onsets_ms, self.ends_ms, self.clips, strict=True)
        ]


def mix_in(track: np.ndarray, offset: int, sample: np.ndarray, duration: int, volume: float, ramp_in: int, ramp_out: int) -> None:
    """Add ``sample[:duration] * envelope * volume`` to ``track`` at ``offset`` in place (TF's mix_in_audio_sample).

    The envelope rises linearly over ``ramp_in`` samples and falls over the last ``ramp_out`` samples.
    """
    end = min(offset + duration, track.shape[0], offset + sample.shape[0])
    n = end - offset
    if n <= 0:
        return
    i = np.arange(n, dtype=np.float64)
    envelope = np.ones(n)
    if ramp_in > 0:
        envelope = np.where(i < ramp_in, i / ramp_in, envelope)
    if ramp_out > 0:
        envelope = np.where(i > duration - ramp_out, (duration - i) / ramp_out, envelope)
    track[offset:end] += (sample[:n] * envelope * volume).astype(np.float32)


def add_background(
    track: np.ndarray, noise: np.ndarray, rng: np.random.Generator, background_volume: float, clip_ms: int = 1000
) -> None:
    """Mix TF-style background segments (see the module docstring) into ``track`` in place."""
    if background_volume <= 0:
        return
    noise = np.asarray(noise, dtype=np.float32).reshape(-1)
    if noise.size == 0:
        raise ValueError("no background noise samples to mix in")
    crossover_ms = 500
    segment = int((clip_ms + crossover_ms) * SAMPLE_RATE / 1000)
    stride = int(clip_ms * SAMPLE_RATE / 1000)
    ramp = int(crossover_ms / 2 * SAMPLE_RATE / 1000)
    if noise.size < segment + 1:
        noise = np.tile(noise, -(-(segment + 1) // noise.size))
    for i in range(-(-track.shape[0] // stride)):
        start = int(rng.integers(0, noise.size - segment))
        piece = noise[start : start + segment]
        peak = float(np.abs(piece).max())
        if peak > 0:
            piece = piece / peak
        volume = rng.uniform(0, background_volume)
        mix_in(track, i * stride, piece, segment, volume, ramp, ramp)


def generate_long_recording(
    clips_by_label: dict[str, list[str | Path]],
    noise: np.ndarray | None,
    seconds: float,
    rng: np.random.Generator,
    unknown_percentage: float = 30.0,
    background_volume: float = 0.1,
    word_gap_ms: int = 2000,
    clip_ms: int = 1000,
) -> LongRecording:
    """Build a test stream of ``seconds`` from 1 s clips: ``clips_by_label`` maps keywords (and ``_unknown_``)
    to clip paths; ``noise`` is a 1-D float32 array at 16 kHz (None: no background).
    ``unknown_percentage=100`` with ``_unknown_`` clips gives a stream of non-keyword words only."""
    keywords = sorted(k for k, v in clips_by_label.items() if k != UNKNOWN_LABEL and v)
    unknown = list(clips_by_label.get(UNKNOWN_LABEL, []))
    if not keywords and not (unknown and unknown_percentage >= 100):
        raise ValueError("no keyword clips to build the stream from")
    total = int(seconds * SAMPLE_RATE)
    track = np.zeros(total, dtype=np.float32)
    if noise is not None:
        add_background(track, noise, rng, background_volume, clip_ms)
    stride = int((clip_ms + word_gap_ms) * SAMPLE_RATE / 1000)
    duration = int(clip_ms * SAMPLE_RATE / 1000)
    gap = int(word_gap_ms * SAMPLE_RATE / 1000)
    words, onsets, ends, used = [], [], [], []
    for i in range(total // stride):
        offset = i * stride + int(rng.integers(gap))
        if unknown and rng.integers(100) < unknown_percentage:
            label, pool = UNKNOWN_LABEL, unknown
        else:
            label = keywords[int(rng.integers(len(keywords)))]
            pool = clips_by_label[label]
        path = pool[int(rng.integers(len(pool)))]
        clip = load_audio(path, SAMPLE_RATE, samples=duration)
        mix_in(track, offset, clip, duration, 1.0, 500, 500)
        first, last = clip_speech_bounds(clip)
        words.append(LabelledTime(label, offset * 1000.0 / SAMPLE_RATE))
        onsets.append((offset + first) * 1000.0 / SAMPLE_RATE)
        ends.append((offset + last) * 1000.0 / SAMPLE_RATE)
        used.append(str(path))
    # a recording, as the stream test writes it (16-bit WAV) and as the engine would clip it anyway (bad-samples
    # rule of speech.audio.io): a word at full scale over the background can pass 1 by a little
    np.clip(track, -1.0, 1.0, out=track)
    return LongRecording(track, words, onsets, ends, used)


def noise_recording(
    noise: np.ndarray, seconds: float, rng: np.random.Generator, background_volume: float = 0.1
) -> np.ndarray:
    """A keyword-free stream of ``seconds``: the background of :func:`generate_long_recording` alone."""
    track = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    add_background(track, noise, rng, background_volume)
    return track
