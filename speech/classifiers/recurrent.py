"""The recurrent classifier kind (the default): an input layer, a GRU, LSTM or plain RNN, bidirectional or not,
pooled over time, and a linear head. Features ``(batch, frames, n_mfcc)`` -> logits ``(batch, classes)``.

A unidirectional network pooled by its last state or by attention also runs as a stream
(:meth:`RecurrentClassifier.streaming_step`): only the frames new since the last call go in, with the recurrent state
carried from call to call, as in kws_streaming's stream mode; attention carries its softmax as a running sum
(the online softmax: the largest score so far, the sum of the weights and the weighted sum of the outputs).
The measured trade-offs of the cells and directions: ``docs/recurrent-cells.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

POOLINGS = ("last", "mean", "attention")
INPUT_LAYERS = ("none", "linear", "conv")
CELLS = ("gru", "lstm", "rnn")
CONV_KERNEL = 5  # the conv input layer's kernel (frames), padded by CONV_KERNEL // 2 on both sides


@dataclass
class RecurrentConfig:
    """Recurrent classifier settings.

    ``cell``: ``"gru"`` (default), ``"lstm"`` or ``"rnn"`` (Elman, tanh); ``bidirectional``: run the sequence both
    ways (default; a unidirectional network pooled by ``"last"`` or ``"attention"`` can stream with state);
    ``input_layer``: ``"conv"`` (1-D conv over time, kernel 5, BatchNorm, ReLU), ``"linear"`` or ``"none"``;
    ``input_stride``: time stride of the input layer (2 halves the frames the recurrent layer runs over, which
    halves its cost; the conv layer strides, the others keep every ``input_stride``-th frame);
    ``pooling``: ``"last"`` (final state of each direction), ``"mean"`` over time, or ``"attention"``
    (learned softmax weights over time, as in kws_streaming's att_rnn); ``attention_heads`` > 1 learns that many
    weightings and concatenates their pooled vectors (kws_streaming's att_mh_rnn idea);
    ``window_mean``: subtract each window's own mean of every coefficient before the input layer (cepstral mean
    normalisation per window, which removes a fixed microphone/channel colouring and the loudness; the
    window is what every runtime scores, so training and streaming see the same thing).

    Defaults: a bidirectional GRU, hidden 128, 4 attention heads (471,696 parameters for 12 classes). With the
    issue-#10 recipe it reached a mean best 93.6 % on cpu-small's held-out speakers (2 seeds), and one 1 s window
    still costs under 3 ms with ONNX Runtime on one thread (``scripts/bench_latency.py``). The README has every run.
    """

    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    pooling: str = "attention"
    input_layer: str = "conv"
    input_channels: int = 64
    input_stride: int = 2
    attention_heads: int = 4
    window_mean: bool = False
    cell: str = "gru"
    bidirectional: bool = True

    kind = "recurrent"  # the registry's name for this kind (a class attribute, not a setting)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.input_layer not in INPUT_LAYERS:
            raise ValueError(f"input_layer must be one of {INPUT_LAYERS}, got {self.input_layer!r}")
        if self.attention_heads < 1:
            raise ValueError(f"attention_heads must be >= 1, got {self.attention_heads}")
        if self.input_stride < 1:
            raise ValueError(f"input_stride must be >= 1, got {self.input_stride}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be true or false, got {self.bidirectional!r}")

    @property
    def streams(self) -> bool:
        """Whether the network can run as a stream with state (:meth:`RecurrentClassifier.streaming_step`)."""
        return (not self.bidirectional and self.pooling in ("last", "attention") and not self.window_mean
                and (self.pooling != "attention" or self.attention_heads <= self.hidden_size))


RNN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}  # RecurrentConfig.cell -> torch layer


class RecurrentClassifier(nn.Module):
    def __init__(self, n_inputs: int, n_classes: int, config: RecurrentConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or RecurrentConfig()
        self.n_inputs, self.n_classes = n_inputs, n_classes
        if c.input_layer == "conv":
            self.input = nn.Sequential(
                nn.Conv1d(n_inputs, c.input_channels, kernel_size=CONV_KERNEL, stride=c.input_stride,
                          padding=CONV_KERNEL // 2, bias=False),
                nn.BatchNorm1d(c.input_channels),
                nn.ReLU(),
            )
            rnn_in = c.input_channels
        elif c.input_layer == "linear":
            self.input = nn.Sequential(nn.Linear(n_inputs, c.input_channels), nn.ReLU())
            rnn_in = c.input_channels
        else:
            self.input = nn.Identity()
            rnn_in = n_inputs
        self.rnn = RNN_CELLS[c.cell](
            rnn_in,
            c.hidden_size,
            num_layers=c.num_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.directions = 2 if c.bidirectional else 1
        width = self.directions * c.hidden_size
        heads = c.attention_heads if c.pooling == "attention" else 1
        self.attention = nn.Linear(width, heads) if c.pooling == "attention" else None
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(heads * width, n_classes))
        self._register_load_state_dict_pre_hook(_rename_gru_weights)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder (input layer + recurrent layer): ``(batch, frames, n_inputs)`` -> per-frame outputs
        ``(batch, frames', directions * hidden)`` (``frames / input_stride``) and the final hidden states
        ``(layers * directions, batch, hidden)``."""
        x = feats - feats.mean(dim=1, keepdim=True) if self.config.window_mean else feats
        if self.config.input_layer == "conv":
            x = self.input(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.input(x[:, :: self.config.input_stride])
        out, state = self.rnn(x)
        return out, state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        out, h_n = self.encode(feats)
        pooling = self.config.pooling
        if pooling == "last":
            last = h_n[-self.directions :]  # the top layer's final state per direction: (directions, batch, hidden)
            pooled = last.transpose(0, 1).flatten(1)
        elif pooling == "mean":
            pooled = out.mean(dim=1)
        else:
            weights = torch.softmax(self.attention(out), dim=1)  # (batch, frames, heads)
            pooled = torch.bmm(weights.transpose(1, 2), out).flatten(1)  # (batch, heads * width)
        return self.head(pooled)

    # --- the stream mode (unidirectional, pooled by the last state or by attention) ---

    def streaming_context(self) -> tuple[int, int, int]:
        """``(left, stride, right)``: the recurrent layer's step ``j`` reads input frames ``stride * j - left`` to
        ``stride * j + right`` (the conv layer's kernel; ``left`` frames before the first are zeros, as in a window)."""
        pad = CONV_KERNEL // 2 if self.config.input_layer == "conv" else 0
        return pad, self.config.input_stride, pad

    def streaming_state_shape(self) -> tuple[int, int]:
        """The carried state per stream: ``(state rows, hidden)``. The recurrent layers' rows first (an LSTM carries
        h and c stacked); attention adds one row per head (its weighted sum of outputs) and two whose first
        ``heads`` columns hold each head's largest score so far and its sum of weights (all zeros: nothing seen)."""
        c = self.config
        rows = self._recurrent_rows()
        if c.pooling == "attention":
            rows += c.attention_heads + 2
        return rows, c.hidden_size

    def _recurrent_rows(self) -> int:
        return self.config.num_layers * (2 if self.config.cell == "lstm" else 1)

    def streaming_step(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``(batch, left + stride * (k - 1) + 1 + right, n_inputs)`` covering ``k`` new recurrent steps
        (:meth:`streaming_context`) and the carried ``state`` ``(state rows, batch, hidden)`` -> the logits after
        the last step and the new state. Run from zeros over a window padded as the conv pads it, it gives
        :meth:`forward`'s logits for that window (attention: pooled over every step since the state was zeros)."""
        c = self.config
        if not c.streams:
            raise ValueError("only a unidirectional network pooled by 'last' or 'attention' (and without window_mean) "
                             f"streams with state; this one is {'bi' if c.bidirectional else 'uni'}directional, pooled "
                             f"by {c.pooling!r}{', window_mean' if c.window_mean else ''}")
        if c.input_layer == "conv":
            conv, norm, _ = self.input
            x = F.conv1d(frames.transpose(1, 2), conv.weight, stride=c.input_stride)  # valid: the caller pads
            x = F.relu(norm(x)).transpose(1, 2)
        else:
            x = self.input(frames[:, :: c.input_stride])
        split = self._recurrent_rows()
        recurrent, pooling = state[:split], state[split:]
        if c.cell == "lstm":
            h, cell = recurrent.chunk(2, dim=0)
            out, (h, cell) = self.rnn(x, (h.contiguous(), cell.contiguous()))
            recurrent = torch.cat([h, cell], dim=0)
        else:
            out, recurrent = self.rnn(x, recurrent.contiguous())
        if c.pooling == "last":
            return self.head(out[:, -1]), recurrent
        pooled, pooling = self._attend(out, pooling)
        return self.head(pooled), torch.cat([recurrent, pooling], dim=0)

    def _attend(self, out: torch.Tensor, carried: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention pooling carried across calls (the online softmax): the new steps' ``out`` ``(batch, k,
        hidden)`` and the carried rows ``(heads + 2, batch, hidden)`` -> the pooled vector over every step so far
        ``(batch, heads * hidden)`` and the new rows. The same weights as :meth:`forward`'s softmax over those steps."""
        heads = self.config.attention_heads
        total = carried[:heads].transpose(0, 1)  # (batch, heads, hidden): sum of exp(score - top) * out
        top, weight = carried[heads, :, :heads], carried[heads + 1, :, :heads]  # (batch, heads)
        scores = self.attention(out)  # (batch, k, heads)
        seen = weight > 0
        step_top = scores.amax(dim=1)  # (batch, heads): the new steps' largest score
        new_top = torch.where(seen, torch.maximum(top, step_top), step_top)
        rescale = torch.where(seen, torch.exp(top - new_top), torch.zeros_like(weight))
        weights = torch.exp(scores - new_top.unsqueeze(1))
        weight = weight * rescale + weights.sum(dim=1)
        total = total * rescale.unsqueeze(2) + torch.bmm(weights.transpose(1, 2), out)
        pooled = (total / weight.unsqueeze(2)).flatten(1)
        pad = torch.zeros(out.shape[0], out.shape[2] - heads, dtype=out.dtype, device=out.device)
        rows = [total.transpose(0, 1), torch.cat([new_top, pad], dim=1)[None], torch.cat([weight, pad], dim=1)[None]]
        return pooled, torch.cat(rows, dim=0)


def _rename_gru_weights(state_dict: dict, prefix: str, *args) -> None:
    """Files written before the cell was a setting (checkpoints, pretrained encoders) name the recurrent layer
    ``gru.``; it is ``rnn.`` now."""
    old = prefix + "gru."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "rnn." + key[len(old) :]] = state_dict.pop(key)


SETTINGS = RecurrentConfig
NETWORK = RecurrentClassifier
