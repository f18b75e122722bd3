"""Background noise for augmentation: the data set's own noise recordings, or generated white + pink noise."""

from __future__ import annotations

import logging

import numpy as np

from speech.audio.io import AudioError, load_audio
from speech.data.index import DatasetIndex

log = logging.getLogger(__name__)

NOISE_COLOURS = ("white", "pink", "brown")
GENERATED_RMS = 0.1  # RMS of each generated noise half (about -20 dBFS)


def coloured_noise(rng: np.random.Generator, samples: int, colour: str) -> np.ndarray:
    """Zero-mean noise with unit RMS, float32 ``(samples,)``: ``white`` (flat), ``pink`` (1/f power) or
    ``brown`` (1/f^2 power), shaped in the frequency domain."""
    white = rng.standard_normal(samples)
    if colour == "white":
        noise = white
    elif colour in ("pink", "brown"):
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(samples)
        freqs[0] = freqs[1] if samples > 1 else 1.0
        spectrum /= freqs ** (0.5 if colour == "pink" else 1.0)
        noise = np.fft.irfft(spectrum, samples)
    else:
        raise ValueError(f"noise colour must be one of {NOISE_COLOURS}, got {colour!r}")
    noise = noise - noise.mean()
    rms = float(np.sqrt(np.mean(noise**2)))
    return (noise / rms if rms > 0 else noise).astype(np.float32)


def generated_noise(samples: int, seed: int = 0, rms: float = GENERATED_RMS) -> np.ndarray:
    """``samples`` of noise: the first half white, the second half pink, each scaled to ``rms``; float32."""
    rng = np.random.default_rng(seed)
    half = samples // 2
    parts = (
        [coloured_noise(rng, half, "white"), coloured_noise(rng, samples - half, "pink")]
        if samples > 1
        else [coloured_noise(rng, samples, "white")]
    )
    wave = np.concatenate([part * np.float32(rms) for part in parts])
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def _concatenate(paths, sample_rate: int) -> np.ndarray:
    waves = []
    for path in paths:
        try:
            waves.append(load_audio(path, sample_rate, samples=None))
        except AudioError as exc:
            log.warning("noise file skipped: %s", exc)
    return np.concatenate(waves).astype(np.float32) if waves else np.zeros(0, np.float32)


def load_noise(
    index: DatasetIndex, *, sample_rate: int = 16000, seed: int = 0, seconds: float = 60.0
) -> np.ndarray:
    """Float32 1-D noise at ``sample_rate`` for augmentation. Never empty.

    The ``_background_noise_`` files concatenated (full layout), else the ``_silence_`` clips concatenated
    (test-set layout), else ``seconds`` of generated noise (white then pink, seeded by ``seed``).
    Undecodable files are skipped with a warning.
    """
    for paths, what in ((index.noise_files, "_background_noise_"), (index.silence_files, "_silence_")):
        if paths:
            wave = _concatenate(paths, sample_rate)
            if wave.size:
                log.info("noise: %d %s file(s), %.1f s", len(paths), what, wave.size / sample_rate)
                return wave
    samples = max(1, int(round(seconds * sample_rate)))
    log.info("noise: no noise recordings in %s; generated %.1f s of white + pink noise", index.root, seconds)
    return generated_noise(samples, seed)
