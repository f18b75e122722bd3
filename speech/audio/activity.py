"""Where the speech is in a clip: the 10 ms frames within a few dB of the clip's loudest frame.

One rule serves every caller: training's word placement (:mod:`speech.data.windows`), the word onsets and ends of
a generated stream (:mod:`speech.evaluation.streams.recording`) and the active-speech level that sets an SNR in
``evaluate --snr`` (:mod:`speech.evaluation.noise`).

Shapes: waves ``(batch, samples)`` (torch or NumPy, float or int16 PCM); frames ``(batch, samples // frame)``;
bounds are sample indices, ``end`` exclusive.
"""

from __future__ import annotations

import numpy as np
import torch

from speech.audio.io import pcm_to_float

FRAME = 160  # samples: 10 ms at 16 kHz
BOUNDS_RANGE_DB = 25.0  # the word: frames within this many dB of the loudest one
LEVEL_RANGE_DB = 30.0  # the active-speech level: a wider range, so quiet syllables count too
SILENT_POWER = 1e-10  # mean squared sample below which a frame is never speech (-100 dBFS)


def active_frames(
    waves: torch.Tensor, frame: int = FRAME, range_db: float = BOUNDS_RANGE_DB
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(power, active)``: each frame's mean power ``(batch, frames)`` (the waves' float dtype) and whether it
    lies within ``range_db`` of its clip's loudest frame (and above :data:`SILENT_POWER`)."""
    if waves.ndim != 2:
        raise ValueError(f"expected waves shaped (clips, samples), got {tuple(waves.shape)}")
    batch, samples = waves.shape
    frames = samples // frame
    if frames == 0:
        raise ValueError(f"clips of {samples} samples are shorter than one {frame}-sample frame")
    waves = waves if waves.is_floating_point() else pcm_to_float(waves)
    power = waves[:, : frames * frame].reshape(batch, frames, frame).square().mean(-1)
    loudest = power.max(dim=1, keepdim=True).values
    return power, (power >= loudest * 10.0 ** (-range_db / 10.0)) & (power > SILENT_POWER)


def speech_bounds(
    waves: torch.Tensor, frame: int = FRAME, range_db: float = BOUNDS_RANGE_DB
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(start, end)`` int64 ``(batch,)`` sample indices spanning each clip's active frames.

    A clip without speech (digital silence) gives ``(0, samples)``.
    """
    batch, samples = waves.shape
    _, active = active_frames(waves, frame, range_db)
    frames = active.shape[1]
    index = torch.arange(frames, device=waves.device).expand(batch, frames)
    first = torch.where(active, index, frames).min(dim=1).values
    last = torch.where(active, index, -1).max(dim=1).values
    empty = last < 0
    start = torch.where(empty, torch.zeros_like(first), first * frame)
    end = torch.where(empty, torch.full_like(last, samples), (last + 1) * frame)
    return start, end.clamp(max=samples)


def clip_speech_bounds(clip: np.ndarray, frame: int = FRAME, range_db: float = BOUNDS_RANGE_DB) -> tuple[int, int]:
    """:func:`speech_bounds` of one ``(samples,)`` clip, as ints; a clip shorter than a frame is all speech."""
    if clip.shape[0] < frame:
        return 0, int(clip.shape[0])
    start, end = speech_bounds(torch.from_numpy(np.ascontiguousarray(clip))[None], frame, range_db)
    return int(start[0]), int(end[0])


def active_speech_power(waves: np.ndarray, frame: int = FRAME, range_db: float = LEVEL_RANGE_DB) -> np.ndarray:
    """Mean power (mean squared sample) of the speech in each clip: ``(N, samples)`` -> ``(N,)`` float64.

    The mean over the active frames only, so the SNR of a short word in a 1 s clip is not diluted by the pauses
    around it. A clip without speech gives 0.
    """
    x = torch.from_numpy(pcm_to_float(np.asarray(waves)).astype(np.float64))
    power, active = active_frames(x, frame, range_db)
    sums, counts = (power * active).sum(dim=1).numpy(), active.sum(dim=1).numpy()
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
