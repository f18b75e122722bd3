"""The public surface: ``speech.load(path)`` gives a :class:`Model` that scores clips and spots keywords in streams.

::

    import speech

    model = speech.load()                           # the packaged model ("commands"; speech/models/)
    model = speech.load("model.onnx")               # or a file: an ONNX export or a training checkpoint (.ckpt)
    model.predict("yes.wav")                          # {"_silence_": 0.00, "_unknown_": 0.01, "yes": 0.98, ...}
    model.predict(wave)                               # a (samples,) float array at 16 kHz
    for detection in model.stream(chunks, sample_rate=48_000):   # int16 or float PCM chunks of any size
        print(detection.label, detection.score, detection.time)

``stream`` uses the thresholds calibrated into the model (``speech calibrate``) unless given ``threshold``.
Input it cannot use (an empty or 2-D clip, samples that are not PCM, NaN or infinite samples, a sample rate that
is not a positive whole number, a threshold outside [0, 1]) raises a :class:`speech.SpeechError` naming it; bad
samples follow the one rule of :mod:`speech.audio.io`, as in files and ``speech live``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from speech.audio.io import (
    FULL_SCALE_TOLERANCE,
    AudioError,
    check_pcm,
    check_sample_rate,
    clip_to_full_scale,
    fit_window,
    load_audio,
    pcm_to_float,
    resample,
)
from speech.errors import SettingError
from speech.models import open_model
from speech.runtime.scorers import Scorer
from speech.streaming.detection import Detection
from speech.streaming.engine import StreamingConfig, StreamingRecogniser
from speech.streaming.thresholds import resolve_detector

log = logging.getLogger(__name__)


class Model:
    """A trained keyword recogniser loaded from a ``.ckpt`` or ``.onnx`` file, a packaged model by name (None: the
    default one, ``"commands"``), or wrapping a :class:`Scorer`.

    ``backend``: ``"auto"`` (by suffix), ``"torch"`` or ``"onnx"``; ``threads``: ONNX Runtime threads per call.
    ``path``: the file it was loaded from; ``name``: the packaged name (None for a file given by path or a scorer).
    """

    def __init__(self, model: str | Path | Scorer | None = None, backend: str = "auto", threads: int = 1) -> None:
        self.name: str | None = None
        if isinstance(model, Scorer):
            self.scorer: Scorer = model
            self.path: Path | None = None
        else:
            self.scorer, choice = open_model(model, backend, threads)
            self.path, self.name = choice.path, choice.name

    @property
    def labels(self) -> list[str]:
        """Class names, in the order of the model's outputs."""
        return list(self.scorer.labels)

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) the model's front end expects; :meth:`predict` and :meth:`stream` resample to it."""
        return self.scorer.frontend.config.sample_rate

    @property
    def window_samples(self) -> int:
        """The clip length the model was trained on, in samples at :attr:`sample_rate`."""
        return self.scorer.frontend.config.window_samples  # the front end's window_ms: 1 s unless trained otherwise

    @property
    def metadata(self) -> dict:
        """The model file's metadata (schema: :mod:`speech.model.model_file`)."""
        return self.scorer.metadata

    def predict(self, clip: np.ndarray | str | Path, sample_rate: int | None = None) -> dict[str, float]:
        """Class probabilities of one clip: ``{label: probability}``.

        ``clip``: a sound file, or ``(samples,)`` PCM (int16 or float) at ``sample_rate`` (default: the model's
        rate). It is resampled, then zero-padded or centre-cropped to the model's window (:attr:`window_samples`;
        :func:`speech.audio.io.fit_window`, as training decoded its clips).
        """
        return dict(zip(self.labels, self.predict_batch([clip], sample_rate)[0].tolist(), strict=True))

    def predict_batch(self, clips: Iterable[np.ndarray | str | Path], sample_rate: int | None = None) -> np.ndarray:
        """Probabilities ``(clips, classes)`` float32 of several clips (each as in :meth:`predict`)."""
        waves = [self._window(clip, sample_rate) for clip in clips]
        if not waves:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.scorer.scores(np.stack(waves))

    def streamer(
        self, sample_rate: int | None = None, threshold: float | None = None, config: StreamingConfig | None = None,
        keywords: Sequence[str] | None = None,
    ) -> StreamingRecogniser:
        """A streaming engine for this model: ``feed(chunk) -> detections`` then ``finish()`` (see
        :class:`~speech.streaming.engine.StreamingRecogniser`). Detection thresholds: ``threshold`` for every
        keyword if given, else the model's calibrated ones, else ``config``'s. ``keywords``: report only these
        (the others are still heard and never reported); an unknown one raises :class:`speech.SpeechError`."""
        check_sample_rate(sample_rate)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number)
                                      or not 0.0 <= float(threshold) <= 1.0):
            raise SettingError(f"threshold must be a probability in [0, 1] (or None: the model's), got {threshold!r}",
                               param="threshold")
        config, _, _ = resolve_detector(self.metadata, config or StreamingConfig(), threshold)
        if keywords is not None:  # the detector's config checks them and keeps them as a tuple
            config = replace(config, detector=replace(config.detector, keywords=keywords))
        return StreamingRecogniser(self.scorer, config, sample_rate or self.sample_rate)

    def stream(
        self,
        chunks: Iterable[np.ndarray],
        sample_rate: int | None = None,
        threshold: float | None = None,
        config: StreamingConfig | None = None,
        keywords: Sequence[str] | None = None,
    ) -> Iterator[Detection]:
        """Keyword detections in a stream of PCM chunks (int16/int32/float, mono or ``(samples, channels)``, any
        size) at ``sample_rate``, yielded as they are decided; the end of ``chunks`` is flushed with silence.
        ``keywords``: report only these (see :meth:`streamer`)."""
        engine = self.streamer(sample_rate, threshold, config, keywords)
        for chunk in chunks:
            yield from engine.feed(chunk)
        yield from engine.finish()

    def _window(self, clip: np.ndarray | str | Path, sample_rate: int | None) -> np.ndarray:
        if isinstance(clip, str | Path):
            return fit_window(load_audio(clip, self.sample_rate, None), self.window_samples)
        wave = np.asarray(pcm_to_float(np.asarray(clip)), dtype=np.float32)  # AudioError unless int16/int32/float
        if wave.ndim != 1:
            raise AudioError(f"a clip must be (samples,) mono audio, got shape {wave.shape}")
        if wave.size == 0:
            raise AudioError("the clip holds no samples")
        peak = check_pcm(wave, sample_rate, self.sample_rate)
        if peak > FULL_SCALE_TOLERANCE:
            log.warning("the clip's float samples reach %.3g, %.1f dB above full scale (expected within [-1, 1]); "
                        "clipped at full scale", peak, 20 * np.log10(peak))
            wave = clip_to_full_scale(wave, peak)
        wave = resample(wave, sample_rate or self.sample_rate, self.sample_rate)
        return fit_window(wave, self.window_samples)

    def __repr__(self) -> str:
        shown = self.name or (str(self.path) if self.path else self.scorer.backend)
        return f"Model({shown!r}, {len(self.labels)} labels)"


def load(model: str | Path | None = None, backend: str = "auto", threads: int = 1) -> Model:
    """Open a model as a :class:`Model` (see :mod:`speech.api`): a ``.ckpt`` or ``.onnx`` file, or a packaged
    model by name; nothing: the packaged ``"commands"`` model. A path always wins over a name; a name that is
    neither is a :class:`speech.SpeechError` listing the packaged names (:func:`speech.models.resolve_model`)."""
    return Model(model, backend, threads)
