"""A complete recogniser: front end + classifier + label list, waveform in, logits out.

Model files carry everything needed to rebuild it (the schema: :mod:`speech.scorers`). Besides the network,
``sections`` holds plain-data descriptions of how the model was made and should be used: ``"data"`` (a
:class:`speech.data.record.DataRecord`: the split and the training speakers), ``"detection"`` (calibrated
streaming thresholds) and, for an ensemble of models (:mod:`speech.ensemble`), ``"ensemble"`` (its members).
They travel into the ONNX export unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from speech.features import FrontEnd, FrontEndConfig
from speech.model import BiGRUClassifier, ClassifierConfig

INFO_SECTIONS = ("data", "detection", "ensemble")


class Recogniser(nn.Module):
    """``(batch, samples)`` float waveform at 16 kHz -> ``(batch, len(labels))`` logits."""

    def __init__(
        self,
        labels: list[str],
        frontend: FrontEndConfig | None = None,
        classifier: ClassifierConfig | None = None,
    ) -> None:
        super().__init__()
        if not labels:
            raise ValueError("a recogniser needs at least one label")
        self.labels = list(labels)
        self.frontend = FrontEnd(frontend)
        self.classifier = BiGRUClassifier(self.frontend.config.n_mfcc, len(self.labels), classifier)
        self.sections: dict[str, dict] = {}  # optional plain-data metadata: see INFO_SECTIONS

    @property
    def sample_rate(self) -> int:
        return self.frontend.config.sample_rate

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.frontend(wave))

    def settings(self) -> dict:
        """The architecture as plain data: ``labels``, ``frontend`` and ``classifier`` settings (no weights)."""
        return {
            "labels": list(self.labels),
            "frontend": self.frontend.config.to_dict(),
            "classifier": self.classifier.config.to_dict(),
        }
