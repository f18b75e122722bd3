"""A complete recogniser: front end + classifier + label list, waveform in, logits out.

Model files carry everything needed to rebuild it (the schema: :mod:`speech.model.model_file`). Besides the network,
``sections`` holds plain-data descriptions of how the model was made and should be used: ``"data"`` (a
:class:`speech.data.record.DataRecord`: the split and the training speakers), ``"detection"`` (calibrated
streaming thresholds) and, for an ensemble of models (:mod:`speech.model.ensemble`), ``"ensemble"`` (its members).
They travel into the ONNX export unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from speech.classifiers import build_classifier, settings_dict
from speech.frontend.features import FrontEnd, FrontEndConfig
from speech.model.model_file import INFO_SECTIONS


class Recogniser(nn.Module):
    """``(batch, samples)`` float waveform at 16 kHz -> ``(batch, len(labels))`` logits."""

    def __init__(
        self,
        labels: list[str],
        frontend: FrontEndConfig | None = None,
        classifier=None,
    ) -> None:
        super().__init__()
        if not labels:
            raise ValueError("a recogniser needs at least one label")
        self.labels = list(labels)
        self.frontend = FrontEnd(frontend)
        # ``classifier``: the network's settings, any registered kind (speech.classifiers), as an object or a dict
        self.classifier = build_classifier(self.frontend.config.n_mfcc, len(self.labels), classifier)
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
            "classifier": settings_dict(self.classifier.config),
        }


def recogniser_from_metadata(meta: dict) -> Recogniser:
    """An untrained :class:`Recogniser` of the shape ``meta`` (checked model-file metadata) describes, in eval
    mode, with its feature normaliser (when ``meta`` has one) and optional sections filled in."""
    model = Recogniser(meta["labels"], FrontEndConfig.from_dict(meta["frontend"]), meta["classifier"])
    model.sections = {key: meta[key] for key in INFO_SECTIONS if isinstance(meta.get(key), dict)}
    norm = meta.get("normaliser")
    if norm is not None:
        model.frontend.mean.copy_(torch.tensor(norm["mean"], dtype=torch.float32))
        model.frontend.std.copy_(torch.tensor(norm["std"], dtype=torch.float32))
        model.frontend.fitted.fill_(bool(norm.get("fitted", True)))
    return model.eval()
