"""Scorers: one interface over a PyTorch checkpoint or an exported ONNX model.

A scorer turns 16 kHz float waveforms ``(batch, samples)`` or normalised features
``(batch, frames, n_mfcc)`` into class probabilities ``(batch, classes)``. The front end is always the
project's :class:`~speech.features.FrontEnd`, so every back end sees the features training saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speech.checkpoint import load_recogniser
from speech.features import FrontEnd
from speech.recogniser import Recogniser


class TorchScorer:
    """Runs a :class:`Recogniser` in PyTorch eager mode on CPU (or ``device``)."""

    backend = "torch"

    def __init__(self, recogniser: Recogniser, device: str = "cpu") -> None:
        self.recogniser = recogniser.eval().to(device)
        self.device = device
        self.labels: list[str] = recogniser.labels
        self.frontend: FrontEnd = recogniser.frontend
        self.num_parameters = recogniser.classifier.num_parameters
        self.metadata: dict = recogniser.metadata()

    @torch.inference_mode()
    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        logits = self.recogniser.classifier(torch.as_tensor(feats, dtype=torch.float32, device=self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def features(self, waves: np.ndarray) -> np.ndarray:
        return self.frontend(torch.as_tensor(waves, dtype=torch.float32, device=self.device)).cpu().numpy()

    def scores(self, waves: np.ndarray) -> np.ndarray:
        return self.scores_from_features(self.features(waves))


def load_scorer(path: str | Path, backend: str = "auto", intra_op_threads: int = 1):
    """Open a ``.ckpt`` (PyTorch) or ``.onnx`` (ONNX Runtime) model file as a scorer.

    ``backend``: ``"auto"`` (by file suffix), ``"torch"`` or ``"onnx"``. ``intra_op_threads``: ONNX Runtime
    threads per call (PyTorch's are process-wide: ``torch.set_num_threads``).
    """
    path = Path(path)
    if backend == "auto":
        backend = "onnx" if path.suffix.lower() == ".onnx" else "torch"
    if backend == "torch":
        return TorchScorer(load_recogniser(path))
    if backend == "onnx":
        from speech.export import OnnxScorer

        return OnnxScorer(path, intra_op_threads=intra_op_threads)
    raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")
