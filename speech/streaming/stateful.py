"""The stream mode of a unidirectional recurrent classifier: each hop runs only the frames new since the last one,
with the recurrent state carried from hop to hop (kws_streaming's stream mode).

A window model re-runs its whole window (1.5 s, 150 frames) every 100 ms hop; here a hop costs its own 10 frames.
The scores differ from the window model's in one way: the state remembers everything since the stream began,
where a window forgets what lies before it. ``docs/recurrent-cells.md`` measures what that changes.

Scorers that can do this (:attr:`speech.scorers.Scorer.streams`) provide ``stream_context`` (``(left, stride,
right)``: step ``j`` of the recurrent layer reads frames ``stride * j - left`` to ``stride * j + right``),
``stream_state_shape`` (``(rows, hidden)``) and ``stream_step(frames, state) -> (probs, state)``.
"""

from __future__ import annotations

import numpy as np

from speech.errors import SettingError


class StatefulStream:
    """One stream's recurrent state and the bookkeeping of which frames it has consumed."""

    def __init__(self, scorer) -> None:
        if not getattr(scorer, "streams", False):
            raise SettingError(
                "the stateful stream mode needs a unidirectional model pooled by its last state "
                "(--model.classifier.bidirectional false --model.classifier.pooling last); this model re-runs "
                "its window every hop", param="stateful")
        self.scorer = scorer
        self.left, self.stride, self.right = scorer.stream_context
        rows, hidden = scorer.stream_state_shape
        self.state = np.zeros((rows, 1, hidden), dtype=np.float32)
        self.next_step = 0  # the recurrent step the next call starts at

    def first_frame_needed(self) -> int:
        """The oldest frame (global index) a later :meth:`advance` may read."""
        return self.stride * self.next_step - self.left

    def advance(self, feats: np.ndarray, first: int, end: int) -> np.ndarray | None:
        """Run the steps whose frames all lie before frame ``end`` (exclusive, global index) and return the class
        probabilities after the last one (None: no new step). ``feats`` holds frames ``[first, ...)``."""
        last = (end - 1 - self.right) // self.stride
        if last < self.next_step:
            return None
        lo, hi = self.stride * self.next_step - self.left, self.stride * last + self.right + 1
        chunk = feats[max(lo, first) - first : hi - first]
        if lo < first:  # before the stream's first frame: zeros, as the conv pads a window
            if first > 0:
                raise ValueError(f"frame {lo} is no longer held (the buffer starts at {first})")
            chunk = np.concatenate([np.zeros((-lo, feats.shape[1]), dtype=feats.dtype), chunk])
        probs, self.state = self.scorer.stream_step(chunk[None], self.state)
        self.next_step = last + 1
        return probs[0]
