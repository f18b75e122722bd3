"""The back ends that run a model file: one interface for ``.ckpt`` (PyTorch) and ``.onnx`` (ONNX Runtime).

A **scorer** turns 16 kHz float waveforms ``(batch, samples)`` or normalised features ``(batch, frames, n_mfcc)``
into class probabilities ``(batch, classes)``. :class:`OnnxScorer` runs an exported classifier in ONNX Runtime
with the NumPy front end (:class:`speech.frontend.mfcc.MfccFrontEnd`): it needs neither torch nor anything else of the
training extra. :class:`TorchScorer` runs a :class:`~speech.model.recogniser.Recogniser` in PyTorch with its own
front end (:class:`speech.frontend.features.FrontEnd`). The two front ends compute the same features (to ~1e-5), so
every back end sees the features training saw. :class:`Scorer` is the protocol both satisfy; :func:`load_scorer`
opens either file kind. What the files hold: :mod:`speech.model.model_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from speech.classifiers import has_stream_mode
from speech.frontend.mfcc import FrontEndConfig, MfccFrontEnd
from speech.model.model_file import (
    ONNX_INPUT,
    STREAM_INPUTS,
    STREAM_OUTPUTS,
    OnnxModelError,
    model_metadata,
    onnx_session,
    onnx_stream_session,
    session_metadata,
)
from speech.utils.extras import require_training_extra


class FrontEndLike(Protocol):
    """What the streaming engine needs to know of a scorer's front end: its settings."""

    config: FrontEndConfig


@runtime_checkable
class Scorer(Protocol):
    """What evaluation, streaming and the public :class:`speech.Model` need from a model back end."""

    backend: str  # "torch" or "onnx"
    labels: list[str]
    frontend: FrontEndLike
    num_parameters: int
    metadata: dict  # the file's metadata (schema: speech.model.model_file)

    def features(self, waves: np.ndarray) -> np.ndarray:
        """Float waveforms ``(batch, samples)`` at 16 kHz -> normalised features ``(batch, frames, n_mfcc)``."""
        ...

    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        """Normalised features ``(batch, frames, n_mfcc)`` -> probabilities ``(batch, classes)`` float32."""
        ...

    def scores(self, waves: np.ndarray) -> np.ndarray:
        """Float waveforms ``(batch, samples)`` -> probabilities ``(batch, classes)`` float32."""
        ...

    # Optional (not part of the protocol's check): a model with a stream mode has ``streams`` True, and
    # stream_context, stream_state_shape and stream_step(frames, state) -> (probs, state): speech.streaming.stateful.


class TorchScorer:
    """Runs a :class:`Recogniser` in PyTorch eager mode on CPU (or ``device``). Threads: PyTorch's, process-wide."""

    backend = "torch"

    def __init__(self, recogniser, device: str = "cpu") -> None:
        self.recogniser = recogniser.eval().to(device)
        self.device = device
        self.labels: list[str] = recogniser.labels
        self.frontend = recogniser.frontend  # speech.frontend.features.FrontEnd
        self.num_parameters = recogniser.classifier.num_parameters
        self.metadata: dict = model_metadata(recogniser)
        classifier = recogniser.classifier
        self.streams = has_stream_mode(classifier)
        if self.streams:
            self.stream_context = classifier.streaming_context()
            self.stream_state_shape = classifier.streaming_state_shape()

    def features(self, waves: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.frontend(torch.as_tensor(waves, dtype=torch.float32, device=self.device)).cpu().numpy()

    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.recogniser.classifier(torch.as_tensor(feats, dtype=torch.float32, device=self.device))
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def scores(self, waves: np.ndarray) -> np.ndarray:
        return self.scores_from_features(self.features(waves))

    def stream_step(self, frames: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            logits, state = self.recogniser.classifier.streaming_step(
                torch.as_tensor(frames, dtype=torch.float32, device=self.device),
                torch.as_tensor(state, dtype=torch.float32, device=self.device))
            return torch.softmax(logits.float(), dim=-1).cpu().numpy(), state.cpu().numpy()


class OnnxScorer:
    """Runs an exported classifier in ONNX Runtime (CPU) after the NumPy front end; no torch.

    ``intra_op_threads``: ONNX Runtime threads for one call (default 1).
    """

    backend = "onnx"

    def __init__(self, path: str | Path, intra_op_threads: int = 1) -> None:
        self.path = path = Path(path)
        self.intra_op_threads = int(intra_op_threads)
        self.session = onnx_session(path, self.intra_op_threads)
        self.metadata = session_metadata(self.session, path)
        self.labels: list[str] = list(self.metadata["labels"])
        norm = self.metadata["normaliser"]
        self.frontend = MfccFrontEnd(FrontEndConfig.from_dict(self.metadata["frontend"]), norm["mean"], norm["std"])
        self.num_parameters = int(self.metadata.get("num_parameters", 0))
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [ONNX_INPUT] or "probs" not in outputs:
            raise OnnxModelError(f"{path}: expected input '{ONNX_INPUT}' and output 'probs', found {inputs} -> {outputs}")
        classes = self.session.get_outputs()[outputs.index("probs")].shape[-1]
        if isinstance(classes, int) and classes != len(self.labels):
            raise OnnxModelError(f"{path}: the model outputs {classes} classes but carries {len(self.labels)} labels")
        self.n_mfcc = self.frontend.config.n_mfcc
        stream = (self.metadata.get("onnx") or {}).get("stream")
        self.streams = stream is not None
        if self.streams:
            self.stream_context = tuple(stream["context"])
            self.stream_state_shape = tuple(stream["state"])
            self.stream_session = onnx_stream_session(self.session, path, self.intra_op_threads)

    def features(self, waves: np.ndarray) -> np.ndarray:
        return self.frontend(waves)

    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        feats = np.ascontiguousarray(np.asarray(feats, dtype=np.float32))
        if feats.ndim != 3 or feats.shape[2] != self.n_mfcc:
            raise ValueError(f"expected features shaped (batch, frames, {self.n_mfcc}), got {feats.shape}")
        return self.session.run(["probs"], {ONNX_INPUT: feats})[0]

    def scores(self, waves: np.ndarray) -> np.ndarray:
        return self.scores_from_features(self.features(waves))

    def stream_step(self, frames: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, state = self.stream_session.run(
            [STREAM_OUTPUTS[0], STREAM_OUTPUTS[1]],
            {STREAM_INPUTS[0]: np.ascontiguousarray(frames, dtype=np.float32),
             STREAM_INPUTS[1]: np.ascontiguousarray(state, dtype=np.float32)})
        return probs, state


def load_scorer(path: str | Path, backend: str = "auto", intra_op_threads: int = 1) -> Scorer:
    """Open a ``.ckpt`` (PyTorch) or ``.onnx`` (ONNX Runtime) model file as a scorer.

    ``backend``: ``"auto"`` (by file suffix), ``"torch"`` or ``"onnx"``. ``intra_op_threads``: ONNX Runtime
    threads per call (PyTorch's threads are process-wide and left to the caller). A checkpoint on the base install
    (no torch) is a :class:`~speech.utils.extras.MissingExtraError` that says to install the extra or export first.
    """
    path = Path(path)
    if backend == "auto":
        backend = "onnx" if path.suffix.lower() == ".onnx" else "torch"
    if backend == "torch":
        require_training_extra(f"{path}: a training checkpoint", "or export it with 'speech export' where that is installed and use the .onnx")
        from speech.model.checkpoint import load_recogniser

        return TorchScorer(load_recogniser(path))
    if backend == "onnx":
        return OnnxScorer(path, intra_op_threads=intra_op_threads)
    raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")
