"""A lossy-codec round trip of a clip (issue #34): the guard against a model learning the codec as a cue.

Every clip of ``sc-v2-train-4words`` is Opus-coded and says one of four words; no clip of the other classes is.
A model may then hear "Opus" as "yes/no/up/down". :func:`opus_round_trip` puts any clip through the same coding
(libsndfile's Ogg Opus encoder at its default settings, which give the shared folder's ~4 KB a second), so the
other classes' clips can be scored coded and uncoded (``scripts/codec_guard.py``) and trained coded too.
"""

from __future__ import annotations

import io

import numpy as np


def opus_round_trip(wave: np.ndarray, sample_rate: int = 16_000) -> np.ndarray:
    """``wave`` (float, 1-D, in [-1, 1]) encoded as Ogg Opus in memory and decoded again: float32, same length
    (about 50 ms for a 1 s clip on one core)."""
    import soundfile as sf

    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D clip, got shape {wave.shape}")
    buffer = io.BytesIO()
    sf.write(buffer, wave, sample_rate, format="OGG", subtype="OPUS")
    buffer.seek(0)
    coded, _ = sf.read(buffer, dtype="float32")
    out = np.zeros_like(wave)
    out[: min(len(wave), len(coded))] = coded[: len(wave)]
    return np.clip(out, -1.0, 1.0)
