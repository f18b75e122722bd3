"""Streaming-aware training windows: show the classifier, in training, the windows a stream will show it.

A model trained on centred 1 s clips meets other windows when it slides over a stream every hop: the word
anywhere in the window (entering at the right edge, leaving at the left), half words, the tail of one word
and the head of the next. These functions rebuild such windows from a batch of training clips, batched on
the batch's device (the speech in each clip is :func:`speech.audio.activity.speech_bounds`):

* :func:`place_anywhere` moves a clip's speech to a random place where it still fits in the window whole
  (the label stays), optionally only where it ends in the window's recent part;
* :func:`stale_words` moves a clip's speech into a long window's older part, as a word said a while ago (these
  become ``_unknown_`` examples, so a window whose only word is old no longer scores as that word);
* :func:`partial_words` keeps only a part (``kept`` of its speech span) of a clip's word at the left or right
  edge, optionally beside the opposite part of another clip's word: a half word is not the keyword, so
  these become ``_unknown_`` examples.

Shapes: waves ``(batch, samples)`` float; bounds ``(batch,)`` int64 sample indices, ``end`` exclusive.
"""

from __future__ import annotations

import torch


def shift_each(waves: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``out[b, t] = waves[b, t - shifts[b]]`` with zeros where that falls outside the clip."""
    batch, samples = waves.shape
    source = torch.arange(samples, device=waves.device).unsqueeze(0) - shifts.view(-1, 1)
    valid = (source >= 0) & (source < samples)
    moved = waves.gather(1, source.clamp(0, samples - 1))
    return torch.where(valid, moved, torch.zeros((), device=waves.device, dtype=waves.dtype))


def _uniform_int(low: torch.Tensor, high: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """An integer drawn uniformly from ``[low, high]`` per element (``high >= low``)."""
    u = torch.rand(low.shape, device=low.device, generator=generator)
    return low + (u * (high - low + 1).float()).long().clamp(max=(high - low).clamp(min=0))


def place_anywhere(
    waves: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    generator: torch.Generator | None = None,
    min_end: int = 0,
) -> torch.Tensor:
    """Move each clip so its speech ``[start, end)`` lands at a uniformly random place where it fits whole and
    ends at sample ``min_end`` or later (0: anywhere).

    When no place fits, the speech is moved to end at the window's end (speech that fills the window stays).
    """
    samples = waves.shape[1]
    low = torch.maximum(-start, min_end - end)
    high = (samples - end).clamp(min=0)
    low = torch.minimum(low, high)
    return shift_each(waves, _uniform_int(low, high, generator))


def stale_words(
    waves: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    latest_end: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each clip's speech to a random place where it ends by sample ``latest_end``: a word said a while ago,
    still in a long window's older part. Returns ``(waves, fits)``; a clip whose speech is longer than
    ``latest_end`` does not fit and stays where it is."""
    fits = end - start <= latest_end
    low = -start
    high = torch.maximum(latest_end - end, low)
    return shift_each(waves, _uniform_int(low, high, generator)), fits


def partial_words(
    waves: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    max_kept: float = 0.5,
    min_kept: float = 0.15,
    pair_probability: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Windows that hold only part of a word.

    Each clip keeps a share ``kept ~ U(min_kept, max_kept)`` of its speech span, at the window's right edge
    (the word's head, as it enters a stream window) or its left edge (the tail, as it leaves), each with
    probability 1/2. With ``pair_probability`` the free side gets the opposite part of the next clip in the
    batch (the tail of one word and the head of the next, as between two words of a stream).
    """
    batch, samples = waves.shape
    device = waves.device
    length = (end - start).clamp(min=1)
    kept = min_kept + torch.rand(batch, device=device, generator=generator) * (max_kept - min_kept)
    keep = (kept * length).long().clamp(min=1)
    head = torch.rand(batch, device=device, generator=generator) < 0.5
    # head: the word's first `keep` samples end at the right edge; tail: its last `keep` samples start at 0
    shifts = torch.where(head, samples - start - keep, -(end - keep))
    out = shift_each(waves, shifts)
    partner = torch.roll(torch.arange(batch, device=device), 1)
    p_start, p_end, p_keep = start[partner], end[partner], keep[partner]
    p_shifts = torch.where(head, -(p_end - p_keep), samples - p_start - p_keep)  # the opposite edge
    paired = shift_each(waves[partner], p_shifts)
    with_pair = (torch.rand(batch, device=device, generator=generator) < pair_probability).unsqueeze(1)
    return out + torch.where(with_pair, paired, torch.zeros((), device=device, dtype=waves.dtype))
