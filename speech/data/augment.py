"""Waveform augmentation that runs batched on whatever device the batch is on.

Follows TensorFlow's speech_commands recipe: a random time shift of up to +/-100 ms (zero filled),
then background noise mixed in with probability 0.8 at a volume drawn from U(0, 0.1); examples of
the ``_silence_`` class always get noise, at a volume drawn from U(0, 1). TF's noise files are full-scale
recordings; quieter ones (the test-set layout's ``_silence_`` clips: median peak 0.11; a 1.5 s segment of them gains
8 dB in the median) are brought to that scale by ``noise_peak`` (each drawn segment scaled to a peak of 1 before its
volume), as the stream test (:mod:`speech.evaluation.streams.recording`) builds its background. Before the shift, a speed
perturbation (Ko et al. 2015, kws_streaming's ``resample``) resamples each clip by a factor drawn from
U(1 - speed, 1 + speed) around its centre, which changes tempo and pitch together.

Streaming-aware windows (:mod:`speech.data.windows`): half of the word examples (``place_probability``) are
placed anywhere in the window instead of within the small shift, as a stream shows them; optionally
(``partial_probability``, off by default) a share becomes a partial-word window (half a word, or the tail of
one and the head of another) labelled ``_unknown_``. On cpu-small placement gave the better streaming trade-off
and partial-word negatives a worse one (README). For long windows (``window_ms`` 2000), ``recent_ms`` says which
part of the window a word must end in to count: placement keeps words there, and a share ``stale_probability``
of word examples is moved into the older part (ending ``STALE_MARGIN_MS`` before it) and labelled ``_unknown_``,
so the score of a word falls once it is old and the same word said again can be detected (scripts/bench_repeats.py).

Level (``gain_db``, off by default): each example that is not ``_silence_`` is scaled by a gain drawn uniformly in
dB (capped so that its peak stays at most 1) before the noise is mixed in, so quiet speakers' words are heard at
low signal-to-noise ratios in training too (issue #18: a quiet validation speaker caused a quarter of the misses).
Room reverberation (:mod:`speech.data.reverb`, off by default): a share ``reverb_probability`` of the clips that
are not ``_silence_`` is convolved with a synthetic room response before the noise is mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speech.audio.activity import speech_bounds
from speech.data.reverb import reverberate, room_responses
from speech.data.windows import partial_words, place_anywhere, stale_words

STALE_MARGIN_MS = 250.0  # between the recent part and where stale words end: neither kind of example lands there


@dataclass
class AugmentConfig:
    """Training-time waveform augmentation. ``time_shift_ms`` is the maximum shift either way; ``speed`` the
    largest relative speed change (0.15: factors in [0.85, 1.15]; 0 turns it off). ``place_probability``: share
    of word examples whose speech is put anywhere it fits in the window; ``partial_probability``: share of word
    examples turned into partial-word ``_unknown_`` windows (needs an ``_unknown_`` class). ``reverb_probability``:
    share of non-silence examples given simulated room reverberation, with a reverberation time (seconds) and a
    direct-to-reverberant ratio (dB) drawn from ``reverb_rt60`` and ``reverb_drr_db``. ``recent_ms`` (None: the
    whole window): placed words end within the window's last ``recent_ms``; ``stale_probability``: share of word
    examples moved to end ``recent_ms`` + ``STALE_MARGIN_MS`` or more before the window's end, as ``_unknown_``.
    ``gain_db``: the range (dB) of the level change of non-silence examples; (0, 0) leaves the level alone.
    ``noise_peak``: scale each noise segment to a peak of 1 before its volume (an all-zero segment stays zero)."""

    time_shift_ms: float = 100.0
    speed: float = 0.15
    place_probability: float = 0.5
    partial_probability: float = 0.0
    noise_probability: float = 0.8
    noise_volume: float = 0.1
    silence_volume: float = 1.0
    noise_peak: bool = False
    reverb_probability: float = 0.0
    reverb_rt60: tuple[float, float] = (0.2, 0.7)
    reverb_drr_db: tuple[float, float] = (0.0, 12.0)
    recent_ms: float | None = None
    stale_probability: float = 0.0
    gain_db: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if len(self.gain_db) != 2 or not self.gain_db[0] <= self.gain_db[1]:
            raise ValueError(f"gain_db must be a range [low, high] in dB with low <= high, got {list(self.gain_db)}")
        if self.stale_probability and self.recent_ms is None:
            raise ValueError("stale_probability needs recent_ms: the part of the window a word must end in to count")
        if self.recent_ms is not None and self.recent_ms <= 0:
            raise ValueError(f"recent_ms must be > 0 milliseconds, got {self.recent_ms}")
        shares = (self.place_probability, self.partial_probability, self.stale_probability)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError("place_probability, partial_probability and stale_probability must be >= 0 and add up "
                             f"to at most 1, got {shares}")


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
        unknown_label: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config or AugmentConfig()
        if noise.ndim != 1 or noise.numel() == 0:
            raise ValueError(f"noise must be a non-empty 1-D tensor, got shape {tuple(noise.shape)}")
        self.register_buffer("noise", noise.float(), persistent=False)
        self.max_shift = int(round(self.config.time_shift_ms * sample_rate / 1000))
        recent = self.config.recent_ms
        self.recent = None if recent is None else int(round(recent * sample_rate / 1000))
        self.stale_gap = None if recent is None else int(round((recent + STALE_MARGIN_MS) * sample_rate / 1000))
        self.sample_rate = sample_rate
        self.silence_label = silence_label
        self.unknown_label = unknown_label

    def perturb_speed(self, waves: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Resample each clip by its own factor ``f`` around the clip centre: ``out[t] = in[c + (t - c) * f]``
        with linear interpolation (zero outside the clip). ``f > 1`` speeds speech up (shorter, higher)."""
        speed = self.config.speed
        if speed <= 0:
            return waves
        batch, samples = waves.shape
        device = waves.device
        factors = 1.0 + (torch.rand(batch, 1, device=device, generator=generator) * 2.0 - 1.0) * speed
        centre = (samples - 1) / 2.0
        t = torch.arange(samples, device=device, dtype=torch.float32).unsqueeze(0)
        source = centre + (t - centre) * factors  # (batch, samples) fractional source positions
        left = source.floor()
        frac = (source - left).to(waves.dtype)
        left = left.long()
        valid_left = (left >= 0) & (left < samples)
        valid_right = (left + 1 >= 0) & (left + 1 < samples)
        a = torch.where(valid_left, waves.gather(1, left.clamp(0, samples - 1)), torch.zeros((), device=device))
        b = torch.where(valid_right, waves.gather(1, (left + 1).clamp(0, samples - 1)), torch.zeros((), device=device))
        return a + (b - a) * frac

    def reverberate(
        self, waves: torch.Tensor, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Room reverberation on a ``reverb_probability`` share of the clips (never on ``_silence_`` ones)."""
        c = self.config
        if c.reverb_probability <= 0:
            return waves
        chosen = torch.rand(waves.shape[0], device=waves.device, generator=generator) < c.reverb_probability
        if labels is not None and self.silence_label is not None:
            chosen &= labels != self.silence_label
        if not chosen.any():
            return waves
        responses, _ = room_responses(
            int(chosen.sum()), self.sample_rate, c.reverb_rt60, c.reverb_drr_db, generator, waves.device
        )
        out = waves.clone()
        out[chosen] = reverberate(waves[chosen], responses)
        return out

    def gain(
        self, waves: torch.Tensor, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Each clip (never a ``_silence_`` one) scaled by a gain drawn uniformly in dB from ``gain_db``, capped so
        that its peak stays at most 1."""
        low, high = self.config.gain_db
        if low == high == 0:
            return waves
        db = low + (high - low) * torch.rand(waves.shape[0], 1, device=waves.device, generator=generator)
        peak = waves.abs().amax(dim=1, keepdim=True).clamp_min(1e-6)
        factor = torch.minimum(10.0 ** (db / 20.0), 1.0 / peak).to(waves.dtype)
        if labels is not None and self.silence_label is not None:
            factor = torch.where((labels == self.silence_label).unsqueeze(1), torch.ones_like(factor), factor)
        return waves * factor

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
        segments = noise[offsets + torch.arange(samples, device=noise.device)]
        if self.config.noise_peak:
            peak = segments.abs().amax(dim=1, keepdim=True)
            segments = torch.where(peak > 0, segments / peak.clamp_min(1e-12), segments)
        return segments

    def stream_windows(
        self, waves: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-place and cut word examples as a stream shows them: ``(waves, labels, moved)``; ``moved`` marks
        the examples handled here (they skip the small time shift)."""
        c = self.config
        batch = waves.shape[0]
        device = waves.device
        moved = torch.zeros(batch, dtype=torch.bool, device=device)
        relabels = self.unknown_label is not None
        if c.place_probability <= 0 and (c.partial_probability + c.stale_probability <= 0 or not relabels):
            return waves, labels, moved
        samples = waves.shape[1]
        words = labels != self.silence_label if self.silence_label is not None else torch.ones_like(moved)
        start, end = speech_bounds(waves)
        draw = torch.rand(batch, device=device, generator=generator)
        partial = words & (draw < c.partial_probability) if relabels else moved
        place = words & ~partial & (draw < c.partial_probability + c.place_probability)
        stale = moved
        if relabels and self.stale_gap is not None and c.stale_probability > 0:
            stale = words & ~partial & ~place & (draw < c.partial_probability + c.place_probability + c.stale_probability)
        if place.any():
            min_end = 0 if self.recent is None else max(samples - self.recent, 0)
            waves = torch.where(place.unsqueeze(1), place_anywhere(waves, start, end, generator, min_end), waves)
        if stale.any():
            old, fits = stale_words(waves, start, end, max(samples - self.stale_gap, 0), generator)
            stale = stale & fits
            waves = torch.where(stale.unsqueeze(1), old, waves)
        relabel = partial | stale
        if partial.any():
            waves = torch.where(partial.unsqueeze(1), partial_words(waves, start, end, generator=generator), waves)
        if relabel.any():
            labels = torch.where(relabel, torch.full_like(labels, self.unknown_label), labels)
        return waves, labels, place | relabel

    def forward(
        self, waves: torch.Tensor, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augmented ``(waves, labels)``; labels change only for partial-word windows."""
        c = self.config
        batch, samples = waves.shape
        waves = self.perturb_speed(waves, generator)
        if labels is not None:
            waves, labels, moved = self.stream_windows(waves, labels, generator)
            waves = torch.where(moved.unsqueeze(1), waves, self.shift(waves, generator))
        else:
            waves = self.shift(waves, generator)
        waves = self.reverberate(waves, labels, generator)
        waves = self.gain(waves, labels, generator)
        device = waves.device
        volume = torch.rand(batch, 1, device=device, generator=generator) * c.noise_volume
        volume = volume * (torch.rand(batch, 1, device=device, generator=generator) < c.noise_probability)
        if labels is not None and self.silence_label is not None:
            silent = (labels == self.silence_label).unsqueeze(1)
            volume = torch.where(silent, torch.rand(batch, 1, device=device, generator=generator) * c.silence_volume, volume)
        mixed = waves + volume * self.noise_segments(batch, samples, generator).to(waves.dtype)
        return mixed.clamp(-1.0, 1.0), labels
