"""Decoding one clip to a fixed-length int16 row for the waveform cache.

16-bit mono files already at the target rate are read straight as int16 (bit-exact, the fast path); anything
else (8/24/32-bit, float, stereo, other rates, FLAC/OGG) goes through :func:`speech.audio.io.load_audio` and is
quantised to int16 (``round(x * 32768)``, clipped), which is exact for 16-bit sources.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf

from speech.audio.io import AudioError, fit_window, float_to_int16, load_audio


def decode_int16(
    path: str, sample_rate: int = 16000, samples: int = 16000, crop: str = "center"
) -> np.ndarray:
    """Decode ``path`` to int16 mono at ``sample_rate``, fitted to a window of ``samples`` (:func:`speech.audio.io.fit_window`); shape ``(samples,)``.

    Raises :class:`speech.audio.io.AudioError` naming the file when it cannot be decoded.
    """
    try:
        with sf.SoundFile(path) as handle:
            fast = handle.samplerate == sample_rate and handle.channels == 1 and handle.subtype == "PCM_16"
            data = handle.read(dtype="int16") if fast else None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc})") from None
    if data is not None:
        if data.shape[0] == 0:
            raise AudioError(f"{path}: holds no samples (empty or truncated file)")
        return np.ascontiguousarray(fit_window(data, samples, crop))
    return float_to_int16(fit_window(load_audio(path, sample_rate, None), samples, crop))
