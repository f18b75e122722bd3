"""The streaming engine: PCM chunks in, keyword detections out.

A bidirectional GRU needs a whole window, so the classifier runs on the last ``window_s`` (1 s) of audio
every ``hop_ms``. Everything before it is incremental: chunks of any size and rate are resampled to
16 kHz with a stateful resampler, MFCC frames are computed once each as samples complete them, and the
window is the last 97 frames of a ring. Windows whose loudest frame is below ``gate_db`` are not scored:
they count as silence, which keeps the detector quiet when nobody speaks (and saves the model call). A
unidirectional model can instead run in its stream mode (``StreamingConfig.stateful``,
:mod:`speech.streaming.stateful`): only the new frames of each hop, the recurrent states carried.

Times: stream time ``t`` (seconds) counts 16 kHz samples fed so far; a window covering samples
``[s, s + window)`` is scored once its last frame is complete and is stamped with its end ``(s + window) / sr``.
The input is taken to follow silence (``StreamingConfig.lead_ms``): by default the first window ends one hop in,
zeros before the input's start, so that a word at the very start is heard in as many windows as a later one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from speech.audio.io import (
    FULL_SCALE_TOLERANCE,
    AudioError,
    check_sample_rate,
    check_samples,
    clip_to_full_scale,
    pcm_to_float,
)
from speech.audio.resample import StreamResampler
from speech.data.labels import SILENCE_LABEL
from speech.errors import SettingError
from speech.streaming.detection import CommandDetector, Detection, DetectorConfig
from speech.streaming.frames import LEVEL_FLOOR_DB, IncrementalFeatures
from speech.streaming.stateful import DEFAULT_STATES, StatefulStream
from speech.utils.timing import Stopwatch

log = logging.getLogger(__name__)


@dataclass
class StreamingConfig:
    """Engine settings. ``hop_ms``: classifier period (a multiple of the 10 ms frame hop);
    ``window_samples``: classifier window at 16 kHz; None: the model's own (its front end's ``window_ms``);
    ``gate_db``: windows whose loudest frame is quieter (dBFS RMS) count as silence; None disables the gate;
    ``flush_ms``: silence fed after the end of the input by :meth:`StreamingRecogniser.finish`, so that a word
    at the very end (or a file that is just one 1 s clip) still gets the windows the detector needs;
    ``lead_ms``: silence taken to come before the input (None: a window less one hop, so the first window ends one
    hop in; 0: none, the first window is the input's first full one), so that a word at the very start is heard in
    as many windows as a later one; frames stay on the same grid, so the windows from the input's first full one
    on do not change;
    ``stateful``: run a unidirectional model in its stream mode (:mod:`speech.streaming.stateful`: each hop feeds
    only its new frames and carries the recurrent state) instead of re-running the window; the hops, the energy
    gate and the detector stay the same; ``stream_states``: its staggered states, restarted every window (0: one
    state, never restarted).
    """

    hop_ms: float = 100.0
    window_samples: int | None = None
    gate_db: float | None = -45.0
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    flush_ms: float = 1000.0
    stateful: bool = False
    stream_states: int = DEFAULT_STATES
    lead_ms: float | None = None

    def __post_init__(self) -> None:
        if self.flush_ms < 0:
            raise SettingError(f"flush_ms must be >= 0 (milliseconds), got {self.flush_ms}", param="flush_ms")
        if self.lead_ms is not None and self.lead_ms < 0:
            raise SettingError(f"lead_ms must be >= 0 (milliseconds) or None, got {self.lead_ms}", param="lead_ms")


@dataclass
class HopResult:
    """One scored window: its end ``time`` (s), class ``scores`` (classes,), loudest frame ``level_db``,
    whether the energy gate skipped the model (``gated``) and the window's normalised ``features``
    (frames, n_mfcc)."""

    time: float
    scores: np.ndarray
    level_db: float
    gated: bool
    features: np.ndarray


def to_float_mono(chunk: np.ndarray, channels: int = 1) -> np.ndarray:
    """PCM ``(samples,)`` or ``(samples, channels)`` int16 / int32 / float -> float32 mono in [-1, 1].

    A flat array with ``channels > 1`` is taken as interleaved frames.
    """
    chunk = pcm_to_float(chunk)
    if chunk.ndim == 1 and channels > 1:
        if chunk.size % channels:
            raise AudioError(f"{chunk.size} interleaved samples do not split into {channels} channels")
        chunk = chunk.reshape(-1, channels)
    if chunk.ndim == 2:
        chunk = chunk.mean(axis=1, dtype=np.float32) if chunk.shape[1] > 1 else chunk[:, 0]
    elif chunk.ndim != 1:
        raise AudioError(f"PCM chunks must be (samples,) or (samples, channels), got shape {chunk.shape}")
    return chunk


class StreamingRecogniser:
    """Keyword spotting on a live stream with a scorer from :func:`speech.runtime.scorers.load_scorer`.

    ``feed(chunk)`` accepts PCM at ``input_rate`` Hz (int16 or float, mono or ``(samples, channels)``) and
    returns the detections it completed; ``finish()`` ends the stream: it flushes the resampler and feeds
    ``config.flush_ms`` of silence, so the last word is decided (its detection time may lie after the input's end).
    ``on_hop`` (optional) is called with every :class:`HopResult`, in time order.

    Bad samples follow the one rule of :mod:`speech.audio.io`: a chunk with a NaN or infinite sample, or float samples
    far over full scale, raises :class:`~speech.audio.io.AudioError` (naming the stream time of the first); float
    samples a little over full scale are clipped to [-1, 1], with one warning per stream.
    """

    def __init__(
        self,
        scorer,
        config: StreamingConfig | None = None,
        input_rate: int = 16_000,
        on_hop=None,
    ) -> None:
        self.scorer = scorer
        self.config = c = config or StreamingConfig()
        self.labels: list[str] = list(scorer.labels)
        front = scorer.frontend.config
        self.sample_rate = front.sample_rate
        self.frame_hop = front.hop_length
        frame_hop_ms = 1000.0 * self.frame_hop / self.sample_rate
        hop_frames = c.hop_ms / frame_hop_ms
        if c.hop_ms <= 0 or abs(hop_frames - round(hop_frames)) > 1e-6:
            raise SettingError(f"hop_ms must be a positive multiple of the {frame_hop_ms:g} ms frame hop, got "
                               f"{c.hop_ms}", param="hop_ms")
        self.hop_frames = int(round(hop_frames))
        self.window_samples = int(c.window_samples or front.window_samples)
        self.window_frames = front.num_frames(self.window_samples)
        if self.window_frames < 1:
            raise SettingError(f"a window of {self.window_samples} samples is shorter than one FFT frame",
                               param="window_samples")
        check_sample_rate(input_rate)
        self.input_rate = int(input_rate)
        self.input_samples = 0  # samples (frames) fed so far, at input_rate
        self.over_full_scale = 0.0  # the highest float peak over full scale met so far (clipped; 0: none)
        self.resampler = StreamResampler(self.input_rate, self.sample_rate)
        self.features = IncrementalFeatures(scorer.features, front)
        self.detector = CommandDetector(self.labels, c.detector)
        self.on_hop = on_hop
        self._silence_scores = np.zeros(len(self.labels), dtype=np.float32)
        if SILENCE_LABEL in self.labels:
            self._silence_scores[self.labels.index(SILENCE_LABEL)] = 1.0
        n_mfcc = front.n_mfcc
        self._feats = np.zeros((0, n_mfcc), dtype=np.float32)  # frames [self._first, frames_done)
        self._levels = np.zeros(0, dtype=np.float32)
        self._first = 0
        self.samples_in = 0  # 16 kHz samples produced by the resampler so far
        self.last: HopResult | None = None
        self.last_chunk_db = LEVEL_FLOOR_DB  # RMS level of the latest fed chunk (for a level meter)
        self.windows_scored = 0
        self.windows_gated = 0
        self.model_time = Stopwatch()  # wall time spent in the classifier
        self.stateful = (StatefulStream(scorer, self.window_frames, self.hop_frames, c.stream_states)
                         if c.stateful else None)
        self._finished = False
        # the silence taken to come before the input (StreamingConfig.lead_ms), whole frames
        hop_samples = self.hop_frames * self.frame_hop
        lead = self.window_samples - hop_samples if c.lead_ms is None else c.lead_ms * self.sample_rate / 1000.0
        self.lead_samples = max(0, int(lead) // self.frame_hop * self.frame_hop)
        self._consume(np.zeros(self.lead_samples, dtype=np.float32))

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def time(self) -> float:
        """Seconds of (16 kHz) audio received so far."""
        return (self.samples_in - self.lead_samples) / self.sample_rate

    @property
    def model_seconds(self) -> float:
        """Wall time spent in the classifier so far, in seconds."""
        return self.model_time.seconds

    def feed(self, chunk: np.ndarray, channels: int = 1) -> list[Detection]:
        """Add PCM at ``input_rate``; returns the detections made on the windows it completed. Bad samples: the
        class docstring."""
        samples = pcm_to_float(np.asarray(chunk))
        if samples.ndim == 1 and channels > 1 and samples.size % channels == 0:
            samples = samples.reshape(-1, channels)  # interleaved frames
        frames = samples.shape[0]
        peak = check_samples(samples, self.input_rate, what="the stream", start=self.input_samples)
        if peak > FULL_SCALE_TOLERANCE:
            if not self.over_full_scale:
                log.warning("the stream's float samples go over full scale at %.3f s (%.3g in that chunk; expected "
                            "within [-1, 1]): clipped at full scale", self.input_samples / self.input_rate, peak)
            self.over_full_scale = max(self.over_full_scale, peak)
            samples = clip_to_full_scale(samples, peak)
        mono = to_float_mono(samples, channels)
        self.input_samples += frames
        if mono.size:
            self.last_chunk_db = float(10.0 * np.log10(max(float(np.mean(mono.astype(np.float64) ** 2)), 1e-12)))
        return self._consume(self.resampler.process(mono))

    def finish(self) -> list[Detection]:
        """End of stream: flush the resampler's last few samples, then ``config.flush_ms`` of silence (zeros),
        and score the windows they complete. Call it once; later calls return []."""
        if self._finished:
            return []
        self._finished = True
        found = self._consume(self.resampler.finish())
        pad = int(round(self.config.flush_ms * self.sample_rate / 1000.0))
        if pad > 0:
            found += self._consume(np.zeros(pad, dtype=np.float32))
        return found

    def _consume(self, samples: np.ndarray) -> list[Detection]:
        self.samples_in += samples.size
        new_feats, new_levels = self.features.push(samples)
        if new_feats.shape[0] == 0:
            return []
        before = self.features.frames_done - new_feats.shape[0]
        self._feats = np.concatenate([self._feats, new_feats])
        self._levels = np.concatenate([self._levels, new_levels])
        # window ends e (exclusive frame index) due in this push: e >= W and (e - W) % hop_frames == 0
        w, h = self.window_frames, self.hop_frames
        first_end = max(w, before + 1)
        first_end += (-(first_end - w)) % h
        ends = list(range(first_end, self.features.frames_done + 1, h))
        detections: list[Detection] = []
        if ends:
            detections = self._score_windows(ends)
        keep = max(0, self._feats.shape[0] - (w - 1))  # the next window needs only the last w - 1 frames
        if self.stateful is not None:  # and the stream mode the frames its next step reads
            keep = min(keep, max(0, self.stateful.first_frame_needed() - self._first))
        self._feats, self._levels = self._feats[keep:], self._levels[keep:]
        self._first += keep
        return detections

    def _score_windows(self, ends: list[int]) -> list[Detection]:
        w = self.window_frames
        windows = [self._feats[e - w - self._first : e - self._first] for e in ends]
        levels = np.array([self._levels[e - w - self._first : e - self._first].max() for e in ends])
        gate = self.config.gate_db
        live = [i for i, level in enumerate(levels) if gate is None or level >= gate]
        gated = set(range(len(ends))) - set(live)
        scores = np.tile(self._silence_scores, (len(ends), 1))
        if self.stateful is not None:  # every hop advances the state, gated or not; a gated hop scores silence
            for i, end in enumerate(ends):
                with self.model_time:
                    probs = self.stateful.advance(self._feats, self._first, end)
                if i in live and probs is not None:
                    scores[i] = probs
        elif live:
            batch = np.stack([windows[i] for i in live])
            with self.model_time:
                scores[live] = self.scorer.scores_from_features(batch)
        self.windows_scored += len(live)
        self.windows_gated += len(ends) - len(live)
        detections = []
        for i, end in enumerate(ends):
            window_start = (end - w) * self.frame_hop
            t = (window_start + self.window_samples - self.lead_samples) / self.sample_rate
            result = HopResult(t, scores[i], float(levels[i]), i in gated, windows[i])
            self.last = result
            if self.on_hop is not None:
                self.on_hop(result)
            found = self.detector.process(scores[i], t)
            if found is not None:
                log.debug("detected %s (%.2f) at %.2f s", found.label, found.score, found.time)
                detections.append(found)
        return detections


def stream_array(
    engine: StreamingRecogniser, wave: np.ndarray, chunk_samples: int = 16_000
) -> list[Detection]:
    """Run a whole ``(samples,)`` recording at ``engine.input_rate`` through ``engine`` in fixed chunks."""
    found: list[Detection] = []
    for start in range(0, wave.shape[0], chunk_samples):
        found += engine.feed(wave[start : start + chunk_samples])
    return found + engine.finish()
