"""A streaming polyphase resampler: chunks of any size in, the same output as one call on the whole signal.

The filter is a Kaiser-windowed sinc (linear phase) applied to the signal upsampled by ``L`` and
decimated by ``M`` (``new_rate / orig_rate = L / M`` in lowest terms). Output sample ``n`` is centred on
input time ``n * M / L`` (no delay: its value depends on a few future input samples, so it is emitted
only once they have arrived). Because every output sample is computed from global sample indices, the
result does not depend on how the input was cut into chunks.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def kaiser_lowpass(taps: int, cutoff: float, beta: float) -> np.ndarray:
    """A linear-phase low-pass FIR filter: ``taps`` coefficients of a Kaiser-windowed sinc with ``cutoff`` as a
    fraction of the Nyquist frequency, scaled to unit gain at 0 Hz (``scipy.signal.firwin(taps, cutoff,
    window=("kaiser", beta))``, without scipy)."""
    m = np.arange(taps) - 0.5 * (taps - 1)
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(taps, beta)
    return h / h.sum()


class StreamResampler:
    """Resample a mono float stream from ``orig_rate`` to ``new_rate`` (Hz), chunk by chunk.

    ``zero_crossings``: filter half-length in zero crossings of the lower of the two Nyquist rates;
    ``rolloff``: cut-off as a fraction of the lower Nyquist frequency; ``beta``: Kaiser window shape.
    """

    def __init__(
        self,
        orig_rate: int,
        new_rate: int,
        zero_crossings: int = 16,
        rolloff: float = 0.945,
        beta: float = 8.6,
    ) -> None:
        if orig_rate <= 0 or new_rate <= 0 or int(orig_rate) != orig_rate or int(new_rate) != new_rate:
            raise ValueError(f"sample rates must be positive integers (Hz), got {orig_rate} -> {new_rate}")
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        g = math.gcd(self.orig_rate, self.new_rate)
        self.up, self.down = self.new_rate // g, self.orig_rate // g
        self.passthrough = self.up == self.down == 1
        self._inputs = 0  # real input samples received so far
        self._outputs = 0  # output samples emitted so far
        self._finished = False
        if self.passthrough:
            return
        widest = max(self.up, self.down)
        self.half = zero_crossings * widest  # filter half-length, at the upsampled rate
        taps = kaiser_lowpass(2 * self.half + 1, rolloff / widest, beta) * self.up
        self.taps_per_phase = -(-taps.size // self.up)
        padded = np.zeros(self.taps_per_phase * self.up)
        padded[: taps.size] = taps
        # phases[p, j] = taps[p + j * up]: the taps that meet input sample (m0 // up - j) for phase p
        self.phases = padded.reshape(self.taps_per_phase, self.up).T.astype(np.float32).copy()
        # the buffer holds input samples from global index self._buf_start on; before the stream: zeros
        self._buf_start = -(self.taps_per_phase - 1)
        self._buf = np.zeros(self.taps_per_phase - 1, dtype=np.float32)

    @property
    def latency_samples(self) -> int:
        """How many input samples beyond time ``t`` are needed before the output at ``t`` is emitted."""
        return 0 if self.passthrough else -(-self.half // self.up)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed ``(samples,)`` float input; return the ``(samples,)`` float32 output that is now complete."""
        if self._finished:
            raise RuntimeError("the resampler was finished; make a new one for a new stream")
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._inputs += chunk.size
        if self.passthrough:
            self._outputs += chunk.size
            return chunk
        self._buf = np.concatenate([self._buf, chunk])
        # output n needs input up to index (n * down + half) // up
        last = (self._inputs * self.up - 1 - self.half) // self.down
        return self._emit(last + 1)

    def finish(self) -> np.ndarray:
        """End of stream: return the remaining output (the input is followed by zeros), about ``latency`` long."""
        if self._finished:
            return np.zeros(0, dtype=np.float32)
        self._finished = True
        total = -(-self._inputs * self.up // self.down)  # ceil(inputs * up / down) output samples in all
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        self._buf = np.concatenate([self._buf, np.zeros(self.latency_samples + 1, dtype=np.float32)])
        return self._emit(total)

    def _emit(self, stop: int) -> np.ndarray:
        """Compute outputs ``[self._outputs, stop)`` from the buffer and drop input no longer needed."""
        count = stop - self._outputs
        if count <= 0:
            return np.zeros(0, dtype=np.float32)
        m0 = (self._outputs + np.arange(count, dtype=np.int64)) * self.down + self.half
        phase = m0 % self.up
        newest = m0 // self.up  # newest input index each output uses
        windows = sliding_window_view(self._buf, self.taps_per_phase)  # windows[s] = buf[s : s + T]
        gathered = windows[newest - (self.taps_per_phase - 1) - self._buf_start][:, ::-1]
        out = np.einsum("nj,nj->n", self.phases[phase], gathered).astype(np.float32)
        self._outputs = stop
        keep_from = (stop * self.down + self.half) // self.up - (self.taps_per_phase - 1)
        drop = max(0, keep_from - self._buf_start)
        self._buf = self._buf[drop:]
        self._buf_start += drop
        return out
