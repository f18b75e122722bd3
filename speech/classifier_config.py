"""The BiGRU classifier's settings (plain data: model files carry them; :mod:`speech.model` builds the network)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from speech.settings import settings_from_dict

POOLINGS = ("last", "mean", "attention")
CELLS = ("gru", "lstm", "rnn")
INPUT_LAYERS = ("none", "linear", "conv")


@dataclass
class ClassifierConfig:
    """BiGRU classifier settings.

    ``input_layer``: ``"conv"`` (1-D conv over time, kernel 5, BatchNorm, ReLU), ``"linear"`` or ``"none"``;
    ``input_stride``: time stride of the input layer (2 halves the frames the GRU runs over, which halves
    its cost; the conv layer strides, the others keep every ``input_stride``-th frame);
    ``pooling``: ``"last"`` (final forward + backward states), ``"mean"`` over time, or ``"attention"``
    (learned softmax weights over time, as in kws_streaming's att_rnn); ``attention_heads`` > 1 learns that many
    weightings and concatenates their pooled vectors (kws_streaming's att_mh_rnn idea);
    ``window_mean``: subtract each window's own mean of every coefficient before the input layer (cepstral mean
    normalisation per window, which removes a fixed microphone/channel colouring and the loudness; the
    window is what every runtime scores, so training and streaming see the same thing).

    Defaults: hidden 128 with 4 attention heads (471,696 parameters for 12 classes). With the issue-#10 recipe it
    reached a mean best 93.6 % on cpu-small's held-out speakers (2 seeds), and one 1 s window still costs under
    3 ms with ONNX Runtime on one thread (``scripts/bench_latency.py``). The README has every run.
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ClassifierConfig:
        return settings_from_dict(cls, values, "classifier")
