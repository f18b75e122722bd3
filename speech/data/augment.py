"""Waveform augmentation that runs batched on whatever device the batch is on.

Follows TensorFlow's speech_commands recipe: a random time shift of up to +/-100 ms (zero filled),
then background noise mixed in with probability 0.8 at a volume drawn from U(0, 0.1); examples of
the ``_silence_`` class always get noise, at a volume drawn from U(0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AugmentConfig:
    """Training-time waveform augmentation. ``time_shift_ms`` is the maximum shift either way."""

    time_shift_ms: float = 100.0
    noise_probability: float = 0.8
    noise_volume: float = 0.1
    silence_volume: float = 1.0


class WaveAugment(nn.Module):
    """``(batch, samples)`` float waveforms -> shifted, noise-mixed waveforms of the same shape.

    ``noise`` is a 1-D float tensor of background noise at the waveform's sample rate; random
    ``samples``-long segments of it are mixed in. ``silence_label`` is the class index of
    ``_silence_`` (or None when the label set has none).
    """

    def __init__(
        self,
        noise: torch.Tensor,
        config: AugmentConfig | None = None,
        sample_rate: int = 16_000,
        silence_label: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config or AugmentConfig()
        if noise.ndim != 1 or noise.numel() == 0:
            raise ValueError(f"noise must be a non-empty 1-D tensor, got shape {tuple(noise.shape)}")
        self.register_buffer("noise", noise.float(), persistent=False)
        self.max_shift = int(round(self.config.time_shift_ms * sample_rate / 1000))
        self.silence_label = silence_label

    def shift(self, waves: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.max_shift <= 0:
            return waves
        batch, samples = waves.shape
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (batch, 1), device=waves.device, generator=generator)
        source = torch.arange(samples, device=waves.device).unsqueeze(0) - shifts  # out[t] = in[t - shift]
        valid = (source >= 0) & (source < samples)
        return torch.where(valid, waves.gather(1, source.clamp(0, samples - 1)), torch.zeros((), device=waves.device))

    def noise_segments(self, batch: int, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = self.noise
        if noise.numel() < samples:  # tile short noise so a full segment always fits
            noise = noise.repeat(samples // noise.numel() + 1)
        offsets = torch.randint(0, noise.numel() - samples + 1, (batch, 1), device=noise.device, generator=generator)
        return noise[offsets + torch.arange(samples, device=noise.device)]

    def forward(
        self, waves: torch.Tensor, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        c = self.config
        batch, samples = waves.shape
        waves = self.shift(waves, generator)
        device = waves.device
        volume = torch.rand(batch, 1, device=device, generator=generator) * c.noise_volume
        volume = volume * (torch.rand(batch, 1, device=device, generator=generator) < c.noise_probability)
        if labels is not None and self.silence_label is not None:
            silent = (labels == self.silence_label).unsqueeze(1)
            volume = torch.where(silent, torch.rand(batch, 1, device=device, generator=generator) * c.silence_volume, volume)
        mixed = waves + volume * self.noise_segments(batch, samples, generator).to(waves.dtype)
        return mixed.clamp(-1.0, 1.0)
