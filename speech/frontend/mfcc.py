"""The MFCC front end's settings and its NumPy implementation: the runtime's feature extractor, without torch.

:class:`FrontEndConfig` describes the features; two implementations compute them:

- :class:`speech.frontend.features.FrontEnd` (PyTorch, torchaudio's filter bank): training, checkpoints, export;
- :class:`MfccFrontEnd` here (NumPy): what an exported ``.onnx`` model runs with, so running a model needs
  only onnxruntime and NumPy. It builds the same Hann window, Slaney mel filter bank and orthonormal DCT as
  torchaudio's ``MelSpectrogram`` and ``create_dct`` (holding the float32 values torchaudio builds) and frames
  without centre padding; it computes in float64, and its normalised features equal the PyTorch front end's (which computes in float32) within 1e-4 on real clips
  (``tests/test_runtime.py``).

Frame ``i`` covers samples ``[i * hop, i * hop + n_fft)`` (the ``win_length`` window sits centred inside the
FFT frame), so a 1 s clip at the defaults gives 97 frames and the features of a stream computed piece by piece
equal those of the whole signal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from speech.utils.settings import settings_from_dict


@dataclass
class FrontEndConfig:
    """MFCC settings, and the length of the window the classifier scores (``window_ms``: each training clip is
    decoded to it, each streaming hop scores the last ``window_ms`` of audio). Times are in milliseconds,
    frequencies in Hz."""

    sample_rate: int = 16_000
    n_mfcc: int = 40
    n_mels: int = 80  # kws_streaming's mel_num_bins; 40 MFCCs are kept from them
    win_ms: float = 30.0
    hop_ms: float = 10.0
    n_fft: int = 512
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6
    window_ms: float = 1000.0  # the window the classifier scores: a training clip, one streaming window

    @property
    def window_samples(self) -> int:
        """The classifier's window in samples (1 s: 16000)."""
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def window_frames(self) -> int:
        """Feature frames of one classifier window (97 for 1 s at the defaults)."""
        return self.num_frames(self.window_samples)

    @property
    def win_length(self) -> int:
        """Analysis window in samples."""
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Frame step in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (0 when shorter than one FFT frame).

        Frame ``i`` covers samples ``[i * hop_length, i * hop_length + n_fft)`` (the window sits centred
        inside the FFT frame), so 1 s at the defaults gives 97 frames.
        """
        if num_samples < self.n_fft:
            return 0
        return 1 + (num_samples - self.n_fft) // self.hop_length

    def check(self) -> None:
        """Raise ValueError for settings no front end can compute."""
        if self.win_length > self.n_fft:
            raise ValueError(f"window of {self.win_length} samples is longer than n_fft={self.n_fft}")
        if self.window_samples < self.n_fft:
            raise ValueError(f"window_ms={self.window_ms:g} is shorter than one FFT frame ({self.n_fft} samples)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FrontEndConfig:
        return settings_from_dict(cls, values, "front-end")


def _hz_to_mel_slaney(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's and torchaudio's ``mel_scale="slaney"``): linear below 1 kHz, log above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    freq = np.asarray(freq, dtype=np.float64)
    return np.where(freq >= min_log_hz, min_log_mel + np.log(np.maximum(freq, 1e-10) / min_log_hz) / logstep, freq / f_sp)


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(config: FrontEndConfig) -> np.ndarray:
    """Slaney-normalised triangular mel filters on the Slaney mel scale: ``(n_fft // 2 + 1, n_mels)`` float64
    (values rounded to float32, as torchaudio's ``melscale_fbanks(..., norm="slaney", mel_scale="slaney")`` holds
    them)."""
    c = config
    freqs = np.linspace(0.0, c.sample_rate // 2, c.n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel_slaney(c.f_min), _hz_to_mel_slaney(c.f_max), c.n_mels + 2)
    hz_points = _mel_to_hz_slaney(mel_points)
    widths = np.diff(hz_points)
    slopes = hz_points[None, :] - freqs[:, None]  # (freqs, n_mels + 2)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    bank = np.maximum(0.0, np.minimum(down, up)) * (2.0 / (hz_points[2:] - hz_points[:-2]))[None, :]
    return bank.astype(np.float32).astype(np.float64)


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II: log-mel ``(..., n_mels)`` @ it -> MFCC ``(..., n_mfcc)``, float64 holding the float32
    values torchaudio's ``create_dct`` computes (its cosine arguments, up to ~121 rad, are rounded in float32, which
    moves entries by up to ~2e-6 from the exact DCT: the model was trained with these)."""
    f32 = np.float32
    n = np.arange(n_mels, dtype=f32)
    k = np.arange(n_mfcc, dtype=f32)[:, None]
    dct = np.cos(f32(math.pi / n_mels) * (n + f32(0.5)) * k).astype(f32)
    dct[0] *= f32(1.0 / math.sqrt(2.0))
    dct *= f32(math.sqrt(2.0 / n_mels))
    return dct.T.astype(np.float64)


def fft_window(config: FrontEndConfig) -> np.ndarray:
    """The periodic Hann window of ``win_length`` samples as ``torch.hann_window`` computes it (in float32),
    zero-padded to ``n_fft`` with the window centred (what ``torch.stft`` does with a shorter window)."""
    w, f32 = config.win_length, np.float32
    hann = f32(0.5) - f32(0.5) * np.cos(f32(2.0 * math.pi / w) * np.arange(w, dtype=f32))
    left = (config.n_fft - w) // 2
    window = np.zeros(config.n_fft)
    window[left : left + w] = hann
    return window


class MfccFrontEnd:
    """Waveforms ``(batch, samples)`` (or ``(samples,)``) at ``config.sample_rate`` -> normalised MFCC
    ``(batch, frames, n_mfcc)`` float32, in NumPy.

    ``mean`` / ``std``: the per-coefficient normaliser fitted in training (a model file's ``normaliser``).
    """

    def __init__(self, config: FrontEndConfig | None = None, mean=None, std=None) -> None:
        self.config = config = config or FrontEndConfig()
        config.check()
        self.window = fft_window(config)
        self.filterbank = mel_filterbank(config)
        self.dct = dct_matrix(config.n_mfcc, config.n_mels)
        self.mean = np.zeros(config.n_mfcc) if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = np.ones(config.n_mfcc) if std is None else np.asarray(std, dtype=np.float64)
        if self.mean.shape != (config.n_mfcc,) or self.std.shape != (config.n_mfcc,):
            raise ValueError(f"the normaliser needs {config.n_mfcc} means and stds, got {self.mean.shape}, {self.std.shape}")

    def mfcc(self, waves: np.ndarray) -> np.ndarray:
        """Un-normalised MFCC ``(batch, frames, n_mfcc)`` float64 of ``(batch, samples)`` float waveforms."""
        c = self.config
        waves = np.asarray(waves, dtype=np.float64)
        if waves.ndim == 1:
            waves = waves[None]
        frames = c.num_frames(waves.shape[-1])
        if frames == 0:
            return np.zeros((waves.shape[0], 0, c.n_mfcc))
        framed = sliding_window_view(waves, c.n_fft, axis=-1)[:, : frames * c.hop_length : c.hop_length]
        spectrum = np.fft.rfft(framed * self.window, axis=-1)  # (batch, frames, n_fft // 2 + 1)
        power = spectrum.real**2 + spectrum.imag**2
        mel = power @ self.filterbank
        return np.log(np.maximum(mel, c.log_floor)) @ self.dct

    def normalise(self, feats: np.ndarray) -> np.ndarray:
        """The fitted normalisation of ``(..., n_mfcc)`` features, as float32."""
        return ((feats - self.mean) / self.std).astype(np.float32)

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        return self.normalise(self.mfcc(waves))
