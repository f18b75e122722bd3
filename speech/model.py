"""The bidirectional-GRU keyword classifier: features ``(batch, frames, n_mfcc)`` -> logits ``(batch, classes)``."""

from __future__ import annotations

import logging

import torch
from torch import nn

from speech.classifier_config import INPUT_LAYERS, POOLINGS, ClassifierConfig

__all__ = ["INPUT_LAYERS", "POOLINGS", "BiGRUClassifier", "ClassifierConfig"]

log = logging.getLogger(__name__)

RNN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}  # ClassifierConfig.cell -> torch layer


class BiGRUClassifier(nn.Module):
    def __init__(self, n_inputs: int, n_classes: int, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ClassifierConfig()
        self.n_inputs, self.n_classes = n_inputs, n_classes
        if c.input_layer == "conv":
            self.input = nn.Sequential(
                nn.Conv1d(n_inputs, c.input_channels, kernel_size=5, stride=c.input_stride, padding=2, bias=False),
                nn.BatchNorm1d(c.input_channels),
                nn.ReLU(),
            )
            gru_in = c.input_channels
        elif c.input_layer == "linear":
            self.input = nn.Sequential(nn.Linear(n_inputs, c.input_channels), nn.ReLU())
            gru_in = c.input_channels
        else:
            self.input = nn.Identity()
            gru_in = n_inputs
        self.rnn = RNN_CELLS[c.cell](
            gru_in,
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
        """The encoder (input layer + BiGRU): ``(batch, frames, n_inputs)`` -> per-frame outputs ``(batch,
        frames', 2 * hidden)`` (``frames / input_stride``) and the final states ``(layers * 2, batch, hidden)``."""
        x = feats - feats.mean(dim=1, keepdim=True) if self.config.window_mean else feats
        if self.config.input_layer == "conv":
            x = self.input(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.input(x[:, :: self.config.input_stride])
        out, state = self.rnn(x)
        return out, state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        out, h_n = self.encode(feats)  # out: (batch, frames, 2 * hidden); h_n: (layers * 2, batch, hidden)
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


def _rename_gru_weights(state_dict: dict, prefix: str, *args) -> None:
    """Files written before the cell was a setting (checkpoints, pretrained encoders) name the recurrent layer
    ``gru.``; it is ``rnn.`` now."""
    old = prefix + "gru."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "rnn." + key[len(old) :]] = state_dict.pop(key)
