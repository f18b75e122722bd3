"""The stream mode of a unidirectional recurrent classifier (pooled by its last state or by attention): each hop
runs only the frames new since the last one, with recurrent states carried from hop to hop (kws_streaming's stream
mode), instead of re-running the window.

A window model re-runs its whole window (1.5 s, 74 recurrent steps) every 100 ms hop; here a hop costs its own 5
steps, for each of ``states`` staggered states in one batched call. Why several: a network trained on windows
has only ever started from zeros at a window's start; one state carried for minutes drifts where training never
went (measured: recall fell from 71 % to 10 % on the test stream, ``docs/recurrent-cells.md``). So each state
restarts from zeros once a window has passed, the states staggered by ``window / states``, and a hop is scored
by the oldest: a context of the last ``(1 - 1 / states)`` to 1 window. With ``states`` = window / hop every
hop has a state of exactly one window (the window model's scores, up to the conv layer's edge frames) at the
window model's cost; 5 states (the default, chosen on the selection side: docs/recurrent-cells.md) cost under
a third of it (0.110 against 0.37 ms a hop pooled by attention, scripts/bench_cells.py), 3 states 0.085 ms.

Scorers that can do this (``streams`` true, :mod:`speech.runtime.scorers`) provide ``stream_context`` (``(left, stride,
right)``: step ``j`` of the recurrent layer reads frames ``stride * j - left`` to ``stride * j + right``),
``stream_state_shape`` (``(rows, hidden)``) and ``stream_step(frames, state) -> (probs, state)``, batched.
"""

from __future__ import annotations

import numpy as np

from speech.errors import SettingError

DEFAULT_STATES = 5


def frames_for_steps(context: tuple[int, int, int], steps: int) -> int:
    """How many frames ``steps`` recurrent steps read, for a stream context ``(left, stride, right)``."""
    left, stride, right = context
    return left + stride * (steps - 1) + 1 + right


class StatefulStream:
    """One stream's recurrent states and the bookkeeping of which frames they have consumed.

    ``window_frames`` and ``hop_frames``: the model's window and the engine's hop; ``states``: how many staggered
    states (1 to window / hop) restart once a window has passed; 0: one state that never restarts (the plain
    carried state, for measurement)."""

    def __init__(self, scorer, window_frames: int, hop_frames: int, states: int = DEFAULT_STATES) -> None:
        if not getattr(scorer, "streams", False):
            raise SettingError(
                "the stateful stream mode needs a unidirectional model pooled by its last state or by attention "
                "(--model.classifier.bidirectional false --model.classifier.pooling last|attention); this model "
                "re-runs its window every hop", param="stateful")
        self.period = max(1, window_frames // hop_frames)  # hops in a window: a state restarts this often
        self.window_frames, self.hop_frames = window_frames, hop_frames
        if not 0 <= states <= self.period:
            raise SettingError(f"stream states must be 0 (one, never restarted) to {self.period} (window / hop), got "
                               f"{states}", param="stream_states")
        self.scorer = scorer
        self.left, self.stride, self.right = scorer.stream_context
        self.offsets = [round(i * self.period / states) for i in range(states)] if states else [None]
        rows, hidden = scorer.stream_state_shape
        self.state = np.zeros((rows, len(self.offsets), hidden), dtype=np.float32)
        self.next_step = 0  # the recurrent step the next call starts at
        self.hops = 0  # hops advanced so far

    def first_frame_needed(self) -> int:
        """The oldest frame (global index) a later :meth:`advance` may read."""
        return self.stride * self.next_step - self.left

    def advance(self, feats: np.ndarray, first: int, end: int) -> np.ndarray | None:
        """One hop: restart the states whose turn it is, run the steps whose frames all lie before frame ``end``
        (exclusive, global index) and return the class probabilities of the oldest state after them (None: no
        new step). ``feats`` holds frames ``[first, ...)``."""
        ages = []
        for i, offset in enumerate(self.offsets):
            if offset is None:
                ages.append(self.hops)
                continue
            since = (self.hops - offset) % self.period
            if since == 0:
                self.state[:, i] = 0.0
            ages.append(since)
        self.hops += 1
        last = (end - 1 - self.right) // self.stride
        if last < self.next_step:
            return None
        lo, hi = self.stride * self.next_step - self.left, self.stride * last + self.right + 1
        chunk = feats[max(lo, first) - first : hi - first]
        if lo < first:  # before the stream's first frame: zeros, as the conv pads a window
            if first > 0:
                raise ValueError(f"frame {lo} is no longer held (the buffer starts at {first})")
            chunk = np.concatenate([np.zeros((-lo, feats.shape[1]), dtype=feats.dtype), chunk])
        if self.next_step == 0 and self.offsets[0] is not None:
            probs = self._first_window(chunk, end, last, ages)
        else:
            batch = np.repeat(chunk[None], len(self.offsets), axis=0)
            probs, self.state = self.scorer.stream_step(batch, self.state)
        self.next_step = last + 1
        return probs[int(np.argmax(ages))]

    def _first_window(self, chunk: np.ndarray, end: int, last: int, ages: list[int]) -> np.ndarray:
        """The first call covers a whole window: the oldest state runs all of it (the stream's start is heard), and
        each younger one the window less the hops it is younger by, as if it had restarted then, so the states stay
        staggered from the first hop on; with a state per hop, each hop's oldest holds exactly its window
        (attention would otherwise pool a younger state's older frames too)."""
        probs = []
        for i, age in enumerate(ages):
            seen = self.window_frames - (max(ages) - age) * self.hop_frames
            start = min(last, max(0, -(-(end - seen) // self.stride)))  # its first step (ceil)
            p, state = self.scorer.stream_step(chunk[None, self.stride * start :], self.state[:, i : i + 1])
            self.state[:, i : i + 1] = state
            probs.append(p[0])
        return np.stack(probs)
