"""A complete recogniser: front end + classifier + label list, waveform in, logits out.

Checkpoints written by training carry everything needed to rebuild it (see :mod:`speech.checkpoint`).
Besides the network description, the metadata may hold plain-data sections that describe how the model was
made and should be used: ``"data"`` (a :class:`speech.data.record.DataRecord`: the split and the training
speakers) and ``"detection"`` (calibrated streaming thresholds). They travel into the ONNX export unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from speech.features import FrontEnd, FrontEndConfig
from speech.model import BiGRUClassifier, ClassifierConfig

INFO_SECTIONS = ("data", "detection")


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

    def metadata(self) -> dict:
        """Plain-data description (str/int/float/list/dict only) that rebuilds this recogniser."""
        return {
            "format": 1,
            "labels": list(self.labels),
            "frontend": self.frontend.config.to_dict(),
            "classifier": self.classifier.config.to_dict(),
            **{key: self.sections[key] for key in INFO_SECTIONS if self.sections.get(key) is not None},
        }

    @classmethod
    def from_metadata(cls, meta: dict) -> Recogniser:
        model = cls(
            meta["labels"],
            FrontEndConfig.from_dict(meta["frontend"]),
            ClassifierConfig.from_dict(meta["classifier"]),
        )
        model.sections = {key: meta[key] for key in INFO_SECTIONS if isinstance(meta.get(key), dict)}
        return model
