"""Waveform I/O: every file the project reads goes through soundfile, never ``torchaudio.load``.

All waveforms inside the project are float32, mono, 16 kHz, in [-1, 1], shaped ``(samples,)``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # one second


class AudioError(ValueError):
    """A file that cannot be decoded as audio. The message names the file and the reason."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 with shape ``(samples, channels)`` and return it with its sample rate.

    Any PCM width (8/16/24/32-bit), float WAV, FLAC and OGG are accepted. Raises :class:`AudioError`
    naming the file for empty, truncated or non-audio files.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:  # soundfile raises these for bad headers
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples (empty or truncated file)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: holds NaN or infinite samples")
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(samples, channels)`` array into ``(samples,)`` float32."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy()


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig, new)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono ``(samples,)`` float32 waveform with torchaudio's windowed-sinc resampler."""
    if orig_rate == new_rate:
        return wave.astype(np.float32, copy=False)
    with torch.no_grad():
        out = _resampler(int(orig_rate), int(new_rate))(torch.from_numpy(np.ascontiguousarray(wave)))
    return out.numpy().astype(np.float32, copy=False)


def fix_length(wave: np.ndarray, samples: int = CLIP_SAMPLES, crop: str = "center") -> np.ndarray:
    """Zero-pad (at the end) or crop ``wave`` to exactly ``samples``.

    ``crop`` picks which part of a long clip is kept: ``"center"`` (default), ``"start"`` or ``"end"``.
    """
    n = wave.shape[0]
    if n == samples:
        return wave
    if n < samples:
        return np.pad(wave, (0, samples - n))
    extra = n - samples
    offset = {"center": extra // 2, "start": 0, "end": extra}.get(crop)
    if offset is None:
        raise ValueError(f"crop must be 'center', 'start' or 'end', got {crop!r}")
    return wave[offset : offset + samples]


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    samples: int | None = CLIP_SAMPLES,
    crop: str = "center",
) -> np.ndarray:
    """Decode ``path`` into float32 mono at ``sample_rate``; pad/crop to ``samples`` unless it is None."""
    data, rate = read_audio(path)
    wave = resample(to_mono(data), rate, sample_rate)
    peak = float(np.abs(wave).max(initial=0.0))
    if peak > 1.0:  # float WAVs may exceed full scale; keep the model's input range
        wave = wave / peak
    if samples is not None:
        wave = fix_length(wave, samples, crop)
    return np.ascontiguousarray(wave, dtype=np.float32)


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform as 16-bit PCM WAV."""
    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")
