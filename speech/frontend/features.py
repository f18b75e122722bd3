"""The MFCC front end in PyTorch: training, checkpoints and export (:mod:`speech.frontend.mfcc` holds its settings and the
NumPy twin that runs exported models).

Frames are computed without centre padding (``center=False``), so frame ``i`` depends only on samples
``[i * hop, i * hop + win)``. That makes the features of a window (1 s by default) equal to the last frames of a
stream computed hop by hop, which is what lets the streaming engine compute only the new frames.
Normalisation is per coefficient with statistics fitted on training data and stored as buffers, so
they travel inside every checkpoint and exported model.

Training may warp the frequency axis per example before the mel filter bank (vocal tract length perturbation,
:func:`warp_filterbank`); inference never does, so every runtime computes the same features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from speech.frontend.mfcc import FrontEndConfig

__all__ = ["FrontEnd", "FrontEndConfig", "SpecAugment", "SpecAugmentConfig", "warp_filterbank"]


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

    def mfcc(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """Un-normalised MFCC: ``(batch, samples)`` -> ``(batch, frames, n_mfcc)``, computed in float32.
        ``warp``: per-example frequency warp factors ``(batch,)`` (training only, :func:`warp_filterbank`).

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
            bank = self.melspec.mel_scale.fb  # (freqs, n_mels)
            if warp is not None:
                bank = warp_filterbank(bank, warp.float(), c.sample_rate)  # (batch, freqs, n_mels)
            mel = torch.matmul(power.transpose(1, 2), bank)  # (batch, frames, n_mels)
            return torch.matmul(torch.log(mel.clamp_min(c.log_floor)), self.dct)

    def normalise(self, feats: torch.Tensor) -> torch.Tensor:
        """Apply the fitted per-coefficient normalisation to ``(batch, frames, n_mfcc)`` features."""
        return (feats - self.mean) / self.std

    def forward(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        return self.normalise(self.mfcc(wave, warp))

    @torch.no_grad()
    def fit_normaliser(self, waves, batch_size: int = 256) -> None:
        """Fit mean/std per coefficient on ``(clips, samples)`` training waveforms, or on a list of 1-D waveforms of
        any lengths (whole sentences, :mod:`speech.training.pretraining`), one at a time."""
        total = torch.zeros(self.config.n_mfcc, dtype=torch.float64, device=self.mean.device)
        total_sq = torch.zeros_like(total)
        count = 0
        if isinstance(waves, torch.Tensor):
            batches = (waves[start : start + batch_size] for start in range(0, waves.shape[0], batch_size))
        else:
            batches = (torch.as_tensor(wave)[None] for wave in waves)
        for batch in batches:
            feats = self.mfcc(batch.to(self.mean.device)).double()
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


def warp_filterbank(bank: torch.Tensor, factors: torch.Tensor, sample_rate: int, boundary_hz: float = 4800.0):
    """Vocal tract length perturbation (Jaitly & Hinton 2013): the mel filter bank ``(freqs, n_mels)`` read at
    warped frequencies, one bank per factor -> ``(batch, freqs, n_mels)``.

    The energy an FFT bin holds at frequency ``f`` is counted as if it sat at ``w(f)``: ``w(f) = a * f`` up to
    ``boundary_hz * min(a, 1) / a``, then the straight line that takes the rest of the band onto itself, so
    ``w(0) = 0`` and ``w(nyquist) = nyquist``. ``a > 1`` moves formants up (a shorter vocal tract), ``a < 1`` down;
    unlike the speed perturbation it leaves the tempo alone. Between FFT bins the filters are read by linear
    interpolation (they are piecewise linear in frequency, so this is exact except at their peaks)."""
    freqs = bank.shape[0]
    nyquist = sample_rate / 2.0
    f = torch.linspace(0.0, nyquist, freqs, device=bank.device, dtype=bank.dtype).unsqueeze(0)  # (1, freqs)
    a = factors.to(bank.dtype).unsqueeze(1)  # (batch, 1)
    knee = boundary_hz * a.clamp(max=1.0)  # where the warped axis leaves the straight line a * f
    cut = knee / a
    upper = nyquist - (nyquist - knee) / (nyquist - cut) * (nyquist - f)
    warped = torch.where(f <= cut, f * a, upper)  # (batch, freqs) in Hz
    position = warped / nyquist * (freqs - 1)
    left = position.floor().clamp(0, freqs - 2)
    frac = (position - left).unsqueeze(2)
    left = left.long()
    return bank[left] * (1.0 - frac) + bank[left + 1] * frac


@dataclass
class SpecAugmentConfig:
    """Training-time augmentation of the features: SpecAugment on ``(batch, frames, n_mfcc)`` (widths are
    maximum mask sizes) and vocal tract length perturbation inside the front end: ``vtlp`` is the largest
    relative frequency warp (0.1: factors drawn from U(0.9, 1.1) per example; 0 turns it off)."""

    freq_masks: int = 2
    freq_width: int = 7
    time_masks: int = 2
    time_width: int = 25  # frames (250 ms), as kws_streaming's time_mask_max_size
    vtlp: float = 0.0


class SpecAugment(nn.Module):
    """Frequency and time masking (Park et al. 2019), independent per example; training only. It also draws the
    vocal-tract warp factors the front end applies (:meth:`warp_factors`)."""

    def __init__(self, config: SpecAugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config or SpecAugmentConfig()
        c = self.config
        self.freq = torchaudio.transforms.FrequencyMasking(c.freq_width, iid_masks=True) if c.freq_width else None
        self.time = torchaudio.transforms.TimeMasking(c.time_width, iid_masks=True) if c.time_width else None

    def warp_factors(self, batch: int, device: torch.device) -> torch.Tensor | None:
        """Per-example frequency warp factors for the front end, or None (off, or not training)."""
        if not self.training or self.config.vtlp <= 0:
            return None
        return 1.0 + (torch.rand(batch, device=device) * 2.0 - 1.0) * self.config.vtlp

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        spec = feats.transpose(1, 2).unsqueeze(1)  # (batch, 1, n_mfcc, frames)
        for _ in range(self.config.freq_masks if self.freq is not None else 0):
            spec = self.freq(spec)
        for _ in range(self.config.time_masks if self.time is not None else 0):
            spec = self.time(spec)
        return spec.squeeze(1).transpose(1, 2)
