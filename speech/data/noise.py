"""Background noise for augmentation: the data set's own noise recordings, or generated white + pink noise."""

from __future__ import annotations

import logging

import numpy as np

from speech.audio import AudioError, load_audio
from speech.data.index import DatasetIndex

log = logging.getLogger(__name__)

GENERATED_RMS = 0.1  # RMS of each generated noise half (about -20 dBFS)


def white_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, float32 ``(samples,)``, unit variance."""
    return rng.standard_normal(samples).astype(np.float32)


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """1/f (pink) noise, float32 ``(samples,)``, unit variance: white noise shaped by 1/sqrt(f) in the FFT domain."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.arange(spectrum.shape[0], dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= np.sqrt(freqs)
    spectrum[0] = 0.0
    wave = np.fft.irfft(spectrum, n=samples)
    return (wave / (wave.std() + 1e-12)).astype(np.float32)


def generated_noise(samples: int, seed: int = 0, rms: float = GENERATED_RMS) -> np.ndarray:
    """``samples`` of noise: the first half white, the second half pink, each scaled to ``rms``; float32."""
    rng = np.random.default_rng(seed)
    half = samples // 2
    parts = (
        [white_noise(half, rng), pink_noise(samples - half, rng)]
        if samples > 1
        else [white_noise(samples, rng)]
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
