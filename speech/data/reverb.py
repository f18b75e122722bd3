"""Simulated room reverberation for training: synthetic room impulse responses, applied batched by FFT.

A response is a unit direct path followed by an exponentially decaying Gaussian tail (the statistical model of
late reverberation, Polack 1988; the "fast RIR" of Ko et al. 2017's augmentation study): the tail's amplitude
falls by 60 dB over the room's reverberation time ``rt60`` and its energy against the direct path is set by a
direct-to-reverberant ratio (DRR). Both are drawn per clip. The reverberant clip is cut to the input's length,
aligned on the direct path (the word does not move), and scaled back to the input's RMS, so reverberation does
not also change the level the noise mixing sees.
"""

from __future__ import annotations

import math

import torch

LN_1000 = math.log(1000.0)  # amplitude falls by 60 dB (a factor 1000) over rt60
PREDELAY_S = 0.002  # first reflection this long after the direct sound


def room_responses(
    count: int,
    sample_rate: int,
    rt60_range: tuple[float, float],
    drr_db_range: tuple[float, float],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic impulse responses ``(count, length)`` (``length`` = the longest ``rt60`` in samples)
    and the ``(count,)`` reverberation times drawn for them, in seconds."""
    low, high = rt60_range
    if not 0.0 < low <= high:
        raise ValueError(f"reverberation times must satisfy 0 < min <= max, got {rt60_range}")
    length = max(2, int(round(high * sample_rate)))
    rt60 = low + (high - low) * torch.rand(count, 1, device=device, generator=generator)
    drr_db = drr_db_range[0] + (drr_db_range[1] - drr_db_range[0]) * torch.rand(
        count, 1, device=device, generator=generator
    )
    t = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(0) / sample_rate
    tail = torch.randn(count, length, device=device, generator=generator) * torch.exp(-LN_1000 * t / rt60)
    tail[:, : max(1, int(PREDELAY_S * sample_rate))] = 0.0
    tail_energy = 10.0 ** (-drr_db / 10.0)  # the direct path has energy 1
    tail = tail * torch.sqrt(tail_energy / tail.square().sum(1, keepdim=True).clamp_min(1e-12))
    tail[:, 0] = 1.0
    return tail, rt60.squeeze(1)


def reverberate(waves: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """``(batch, samples)`` waveforms convolved with ``(batch, length)`` responses, cut to ``samples`` from the
    direct path on and scaled back to each input's RMS."""
    batch, samples = waves.shape
    n = 1 << (samples + responses.shape[1] - 1).bit_length()
    wet = torch.fft.irfft(torch.fft.rfft(waves.float(), n) * torch.fft.rfft(responses.float(), n), n)[:, :samples]
    gain = waves.float().square().mean(1, keepdim=True).sqrt() / wet.square().mean(1, keepdim=True).sqrt().clamp_min(1e-8)
    return (wet * gain).to(waves.dtype)
