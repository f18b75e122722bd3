"""Background noise mixed into evaluation clips at a given SNR (dB), measured against active-speech power.

Waveforms are ``(clips, samples)`` at 16 kHz, float32 in [-1, 1] (int16 is divided by 32768); noise is 1-D
float32 at 16 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speech.audio.activity import active_speech_power
from speech.audio.io import pcm_to_float
from speech.data.labels import SILENCE_LABEL

DEFAULT_NOISE_SEED = 0


def noise_offsets(
    num_clips: int, noise_samples: int, clip_samples: int, seed: int = DEFAULT_NOISE_SEED
) -> np.ndarray:
    """Start sample of each clip's noise segment: ``(num_clips,)`` int64, seeded, in ``[0, noise - clip]``."""
    if noise_samples < clip_samples:
        raise ValueError(f"noise of {noise_samples} samples is shorter than one {clip_samples}-sample clip")
    rng = np.random.default_rng(seed)
    return rng.integers(0, noise_samples - clip_samples + 1, size=num_clips, dtype=np.int64)


def mix_at_snr(
    clean: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    offsets: np.ndarray,
    signal_power: np.ndarray,
) -> np.ndarray:
    """Add ``noise[offsets[i] : offsets[i] + samples]`` to clip ``i``, scaled so that
    ``10 * log10(signal_power[i] / noise_power) == snr_db`` (noise power = mean square of the scaled segment).

    ``clean``: ``(N, samples)`` float32; ``noise``: 1-D float32; ``signal_power``: ``(N,)`` (see
    :func:`active_speech_power`). A clip whose ``signal_power`` is 0, or whose noise segment is all zeros, is
    returned unchanged. The result is clipped to [-1, 1] like a real recording; float32 ``(N, samples)``.
    """
    clean = pcm_to_float(clean)
    n, samples = clean.shape
    offsets = np.asarray(offsets, dtype=np.int64)
    signal_power = np.asarray(signal_power, dtype=np.float64)
    if offsets.shape != (n,) or signal_power.shape != (n,):
        raise ValueError(
            f"need one offset and one signal power per clip ({n}), got {offsets.shape}, {signal_power.shape}"
        )
    segments = np.asarray(noise, dtype=np.float32)[offsets[:, None] + np.arange(samples)[None, :]].astype(
        np.float64
    )
    noise_power = (segments**2).mean(axis=1)
    target = signal_power / 10.0 ** (snr_db / 10.0)
    scale = np.sqrt(np.divide(target, noise_power, out=np.zeros_like(target), where=noise_power > 0))
    mixed = clean.astype(np.float64) + segments * scale[:, None]
    return np.clip(mixed, -1.0, 1.0).astype(np.float32)


@dataclass
class NoiseMix:
    """Background noise at ``snr_db`` for a whole evaluation set.

    ``offsets[i]`` picks clip ``i``'s noise segment (the same offsets for every SNR, so only the level changes);
    ``reference_power`` is the signal power used for clips without speech (``_silence_`` clips, all-zero
    clips): the median active-speech power of the set's speech clips, so silence clips get noise at the level
    the words do.
    """

    noise: np.ndarray
    snr_db: float
    offsets: np.ndarray
    reference_power: float
    no_speech: np.ndarray  # (N,) bool: clips whose signal power is the reference

    def apply(self, clean: np.ndarray, start: int) -> np.ndarray:
        """Mix the noise into clips ``start .. start + len(clean)`` of the set."""
        stop = start + clean.shape[0]
        power = active_speech_power(clean)
        power = np.where(self.no_speech[start:stop] | (power <= 0), self.reference_power, power)
        return mix_at_snr(clean, self.noise, self.snr_db, self.offsets[start:stop], power)


def reference_speech_power(waves: np.ndarray, no_speech: np.ndarray, batch_size: int = 1024) -> float:
    """Median active-speech power over the clips that have speech (``~no_speech`` and non-zero); 1e-2 if none."""
    powers = []
    for start in range(0, len(waves), batch_size):
        p = active_speech_power(waves[start : start + batch_size])
        keep = ~no_speech[start : start + batch_size] & (p > 0)
        powers.append(p[keep])
    allp = np.concatenate(powers) if powers else np.zeros(0)
    return float(np.median(allp)) if allp.size else 1e-2


def noise_mixes(
    waves: np.ndarray,
    targets: np.ndarray,
    labels: list[str],
    noise: np.ndarray,
    snrs: list[float],
    seed: int = DEFAULT_NOISE_SEED,
) -> list[NoiseMix]:
    """One :class:`NoiseMix` per SNR for the evaluation set ``waves`` (shared offsets and reference power)."""
    targets = np.asarray(targets)
    silence = labels.index(SILENCE_LABEL) if SILENCE_LABEL in labels else -1
    no_speech = targets == silence
    offsets = noise_offsets(len(waves), len(noise), waves.shape[1], seed)
    reference = reference_speech_power(waves, no_speech)
    noise = np.ascontiguousarray(noise, dtype=np.float32)
    return [NoiseMix(noise, float(snr), offsets, reference, no_speech) for snr in snrs]


