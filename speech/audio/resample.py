"""A streaming resampler: chunks of any size in, the same output as one call on the whole signal.

It is ``soxr``'s (libsoxr, the SoX resampler) streaming resampler, ``soxr.ResampleStream`` at high quality
(``"HQ"``: linear phase, the delay compensated, so output sample ``n`` is centred on input time
``n * orig_rate / new_rate``). Its output does not depend on how the input was cut into chunks (bit-identical), and
on the 2-core VM it costs about a tenth of the NumPy polyphase filter it replaced (docs/benchmarks.md). Every
resampling of the package goes through it: the live path (:class:`speech.streaming.engine.StreamingRecogniser`)
and file decoding for training, evaluation and prediction (:func:`speech.audio.io.resample`), so a model hears live
audio as it heard its training clips.
"""

from __future__ import annotations

import numpy as np
import soxr

QUALITY = "HQ"  # soxr's high quality: 20-bit precision, pass band to 91 % of the lower Nyquist frequency


class StreamResampler:
    """Resample a mono float stream from ``orig_rate`` to ``new_rate`` (Hz), chunk by chunk: :meth:`process`
    returns the output that is complete so far, :meth:`finish` the rest. In all, ``ceil(samples * new_rate /
    orig_rate)`` samples, the same however the input was cut."""

    def __init__(self, orig_rate: int, new_rate: int, quality: str = QUALITY) -> None:
        if orig_rate <= 0 or new_rate <= 0 or int(orig_rate) != orig_rate or int(new_rate) != new_rate:
            raise ValueError(f"sample rates must be positive integers (Hz), got {orig_rate} -> {new_rate}")
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self.passthrough = self.orig_rate == self.new_rate
        self._inputs = 0  # input samples received so far
        self._outputs = 0  # output samples emitted so far
        self._finished = False
        self._stream = None
        if not self.passthrough:
            self._stream = soxr.ResampleStream(self.orig_rate, self.new_rate, 1, dtype="float32", quality=quality)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed ``(samples,)`` float input; return the ``(samples,)`` float32 output that is now complete."""
        if self._finished:
            raise RuntimeError("the resampler was finished; make a new one for a new stream")
        chunk = np.ascontiguousarray(chunk, dtype=np.float32).reshape(-1)
        self._inputs += chunk.size
        if self.passthrough:
            self._outputs += chunk.size
            return chunk
        out = self._stream.resample_chunk(chunk, last=False)
        self._outputs += out.size
        return out

    def finish(self) -> np.ndarray:
        """End of stream: return the remaining output (the input is followed by zeros)."""
        if self._finished:
            return np.zeros(0, dtype=np.float32)
        self._finished = True
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        rest = max(0, -(-self._inputs * self.new_rate // self.orig_rate) - self._outputs)  # ceil, in integers
        out = out[:rest] if out.size >= rest else np.pad(out, (0, rest - out.size))
        self._outputs += out.size
        return out
