"""Incremental MFCC: only the frames that new samples complete, each computed once.

The front end frames without centre padding, so frame ``i`` covers samples ``[i * hop, i * hop + n_fft)``
and depends on nothing else. Feeding the new samples plus the ``n_fft - hop`` samples of context kept
from the previous call through the scorer's front end yields exactly the frames the offline front end
computes on the whole signal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from speech.frontend.mfcc import FrontEndConfig

LEVEL_FLOOR_DB = -120.0


def frame_levels_db(samples: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """RMS level in dBFS (full scale = 1.0) of each ``n_fft``-sample frame at step ``hop``: ``(frames,)``."""
    if samples.size < n_fft:
        return np.zeros(0, dtype=np.float32)
    frames = sliding_window_view(samples, n_fft)[::hop]
    power = np.einsum("fn,fn->f", frames, frames, dtype=np.float64) / n_fft
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), LEVEL_FLOOR_DB).astype(np.float32)


class IncrementalFeatures:
    """16 kHz float samples in, normalised MFCC frames ``(new_frames, n_mfcc)`` out, as they complete.

    ``features``: the scorer's front end, float waveforms ``(1, samples)`` -> normalised features
    ``(1, frames, n_mfcc)`` (:meth:`speech.runtime.scorers.Scorer.features`); ``config``: its settings.
    Also returns each new frame's RMS level (dBFS) for the energy gate and the level meter.
    """

    def __init__(self, features: Callable[[np.ndarray], np.ndarray], config: FrontEndConfig) -> None:
        self.compute = features
        self.config = config
        self.n_fft = config.n_fft
        self.hop = config.hop_length
        self.n_mfcc = config.n_mfcc
        self.frames_done = 0  # frames emitted so far; the next frame starts at sample frames_done * hop
        self._pending = np.zeros(0, dtype=np.float32)  # samples from the next frame's start on

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add ``(samples,)`` float32 audio; return ``(feats (k, n_mfcc), levels_db (k,))`` for the k new frames."""
        if samples.size:
            self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        count = self.config.num_frames(self._pending.size)
        if count == 0:
            return np.zeros((0, self.n_mfcc), dtype=np.float32), np.zeros(0, dtype=np.float32)
        used = self._pending[: (count - 1) * self.hop + self.n_fft]
        feats = self.compute(used[None])[0]
        levels = frame_levels_db(used, self.n_fft, self.hop)
        self._pending = self._pending[count * self.hop :]
        self.frames_done += count
        return feats, levels
