"""The MFCC front end in PyTorch: training, checkpoints and export (:mod:`speech.mfcc` holds its settings and the
NumPy twin that runs exported models).

Frames are computed without centre padding (``center=False``), so frame ``i`` depends only on samples
``[i * hop, i * hop + win)``. That makes the features of a 1 s window equal to the last frames of a
stream computed hop by hop, which is what lets the streaming engine compute only the new frames.
Normalisation is per coefficient with statistics fitted on training data and stored as buffers, so
they travel inside every checkpoint and exported model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from speech.mfcc import FrontEndConfig

__all__ = ["FrontEnd", "FrontEndConfig", "SpecAugment", "SpecAugmentConfig"]


class FrontEnd(nn.Module):
    """Waveform ``(batch, samples)`` at 16 kHz -> normalised MFCC ``(batch, frames, n_mfcc)``."""

    def __init__(self, config: FrontEndConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FrontEndConfig()
        config.check()
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            center=False,
            power=2.0,
            norm="slaney",
            mel_scale="slaney",
        )
        dct = torchaudio.functional.create_dct(config.n_mfcc, config.n_mels, norm="ortho")
        self.register_buffer("dct", dct, persistent=False)
        self.register_buffer("mean", torch.zeros(config.n_mfcc))
        self.register_buffer("std", torch.ones(config.n_mfcc))
        self.register_buffer("fitted", torch.tensor(False))

    def mfcc(self, wave: torch.Tensor) -> torch.Tensor:
        """Un-normalised MFCC: ``(batch, samples)`` -> ``(batch, frames, n_mfcc)``, computed in float32.

        The torchaudio ``MelSpectrogram`` holds the window and the mel filterbank; the power spectrum is taken
        here as re^2 + im^2 rather than through its ``|X|.pow(2)``, whose complex ``abs`` (a square root per
        bin, then squared again) was 40% of the front end's time on one CPU thread. Same numbers to ~1e-6.
        """
        c, spectrogram = self.config, self.melspec.spectrogram
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = torch.stft(
                wave.float(),
                n_fft=c.n_fft,
                hop_length=c.hop_length,
                win_length=c.win_length,
                window=spectrogram.window,
                center=False,
                return_complex=True,
            )  # (batch, freqs, frames)
            power = spec.real.square() + spec.imag.square()
            mel = torch.matmul(power.transpose(1, 2), self.melspec.mel_scale.fb)  # (batch, frames, n_mels)
            return torch.matmul(torch.log(mel.clamp_min(c.log_floor)), self.dct)

    def normalise(self, feats: torch.Tensor) -> torch.Tensor:
        """Apply the fitted per-coefficient normalisation to ``(batch, frames, n_mfcc)`` features."""
        return (feats - self.mean) / self.std

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.mfcc(wave))

    @torch.no_grad()
    def fit_normaliser(self, waves: torch.Tensor, batch_size: int = 256) -> None:
        """Fit mean/std per coefficient on ``(clips, samples)`` training waveforms."""
        total = torch.zeros(self.config.n_mfcc, dtype=torch.float64, device=self.mean.device)
        total_sq = torch.zeros_like(total)
        count = 0
        for start in range(0, waves.shape[0], batch_size):
            feats = self.mfcc(waves[start : start + batch_size].to(self.mean.device)).double()
            total += feats.sum(dim=(0, 1))
            total_sq += (feats**2).sum(dim=(0, 1))
            count += feats.shape[0] * feats.shape[1]
        if count == 0:
            raise ValueError("cannot fit the feature normaliser on zero clips")
        mean = total / count
        std = (total_sq / count - mean**2).clamp_min(1e-8).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())
        self.fitted.fill_(True)


@dataclass
class SpecAugmentConfig:
    """SpecAugment on ``(batch, frames, n_mfcc)`` features; widths are maximum mask sizes."""

    freq_masks: int = 2
    freq_width: int = 7
    time_masks: int = 2
    time_width: int = 25  # frames (250 ms), as kws_streaming's time_mask_max_size


class SpecAugment(nn.Module):
    """Frequency and time masking (Park et al. 2019), independent per example; training only."""

    def __init__(self, config: SpecAugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config or SpecAugmentConfig()
        c = self.config
        self.freq = torchaudio.transforms.FrequencyMasking(c.freq_width, iid_masks=True) if c.freq_width else None
        self.time = torchaudio.transforms.TimeMasking(c.time_width, iid_masks=True) if c.time_width else None

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        spec = feats.transpose(1, 2).unsqueeze(1)  # (batch, 1, n_mfcc, frames)
        for _ in range(self.config.freq_masks if self.freq is not None else 0):
            spec = self.freq(spec)
        for _ in range(self.config.time_masks if self.time is not None else 0):
            spec = self.time(spec)
        return spec.squeeze(1).transpose(1, 2)
