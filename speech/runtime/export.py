"""ONNX export of a trained recogniser (run it with :class:`speech.runtime.scorers.OnnxScorer`).

What goes into the ``.onnx`` file: the classifier (normalised MFCC ``(batch, frames, n_mfcc)`` -> ``logits`` and
``probs``, both ``(batch, classes)``) with dynamic batch and frame axes, exported with PyTorch's TorchScript-based
exporter, which maps ``nn.GRU`` onto ONNX's native ``GRU`` operator (``linear_before_reset=1``, PyTorch's GRU
formula). The file's ``metadata_props`` carry, under the key ``"speech"``, the model's metadata as JSON (the one
schema of :mod:`speech.model.model_file`: labels, front-end settings, feature normaliser, classifier settings, and the
optional ``data``/``detection`` sections), so the file runs on its own. A unidirectional recurrent model pooled by
its last state also carries its stream-mode graph (``frames, state -> probs, state_out``, dynamic batch and frames;
:mod:`speech.streaming.stateful`) as base64 ONNX under ``metadata_props["speech_stream_graph"]``, checked against
PyTorch like the main graph.

The front end is not in the graph: :class:`speech.runtime.scorers.OnnxScorer` computes it in NumPy
(:class:`speech.frontend.mfcc.MfccFrontEnd`, rebuilt from that metadata), so running the file needs only onnxruntime and
NumPy. It does export (via the dynamo exporter's ONNX ``DFT``), but ONNX Runtime ran it 2-3x slower than PyTorch
on one thread (``scripts/bench_latency.py --onnx-frontend``), and the NumPy front end costs what PyTorch's does per
100 ms hop (0.08 against 0.09 ms).

Why the TorchScript exporter, which PyTorch deprecates, and not the dynamo one (``dynamo=True``), measured with
torch 2.14.1 and onnxscript 0.7.2 on the 2-core VM (issue #36): with the frames axis dynamic, as the file
promises (``tests/test_export.py``: another number of frames scores the same as PyTorch), the dynamo exporter
fails on the bidirectional GRU ("The size of tensor a (128) must match the size of tensor b (384)" while
decomposing ``aten.gru``), for the default model and the test suite's alike. With the frames fixed at the
model's window it exports (equal to PyTorch within 2.2e-8, ONNX ``GRU`` nodes kept), but takes 12.0 s against
0.1 s, needs onnxscript (another dependency of the training extra) and gives up the dynamic frames axis. Revisit
when a PyTorch release exports ``aten.gru`` with a symbolic sequence length.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speech.classifiers import has_stream_mode
from speech.errors import OutputExistsError, SettingError
from speech.model.model_file import (
    META_KEY,
    ONNX_INPUT,
    ONNX_OUTPUTS,
    STREAM_GRAPH_KEY,
    STREAM_INPUTS,
    STREAM_OUTPUTS,
    OnnxModelError,
    model_metadata,
)
from speech.model.recogniser import Recogniser
from speech.runtime.scorers import OnnxScorer
from speech.streaming.stateful import frames_for_steps
from speech.utils.files import check_can_create, replaced_atomically

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MIN_OPSET = 14  # the GRU with linear_before_reset and the ops of the attention pooling
MAX_OPSET = 20  # the highest opset PyTorch's TorchScript exporter writes
EQUALITY_TOLERANCE = 1e-4  # max |onnx - torch| on probabilities accepted by the post-export check


class _ClassifierWithProbs(nn.Module):
    """The classifier plus its softmax: features -> (logits, probs)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(feats)
        return logits, torch.softmax(logits, dim=-1)


class _StreamStep(nn.Module):
    """The classifier's stream mode: (new frames, state) -> (probs, new state) (:mod:`speech.streaming.stateful`)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, state = self.classifier.streaming_step(frames, state)
        return torch.softmax(logits, dim=-1), state


def onnx_metadata(recogniser: Recogniser, opset: int) -> dict:
    """The model's metadata (:func:`speech.runtime.scorers.model_metadata`) plus the graph's input and outputs (and the
    stream-mode graph's, for a model that has one)."""
    n_mfcc = recogniser.frontend.config.n_mfcc
    graph = {"input": ONNX_INPUT, "shape": ["batch", "frames", n_mfcc], "outputs": list(ONNX_OUTPUTS), "opset": opset}
    if has_stream_mode(recogniser.classifier):
        classifier = recogniser.classifier
        graph["stream"] = {"inputs": list(STREAM_INPUTS), "outputs": list(STREAM_OUTPUTS),
                           "context": list(classifier.streaming_context()),
                           "state": list(classifier.streaming_state_shape())}
    return {**model_metadata(recogniser), "onnx": graph}


def _export_stream_graph(recogniser: Recogniser, opset: int) -> bytes:
    """The stream-mode graph as ONNX bytes (dynamic batch and frames)."""
    import tempfile

    classifier = recogniser.classifier
    rows, hidden = classifier.streaming_state_shape()
    frames = torch.zeros(2, frames_for_steps(classifier.streaming_context(), 5), recogniser.frontend.config.n_mfcc)
    state = torch.zeros(rows, 2, hidden)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = Path(tmp) / "stream.onnx"
        torch.onnx.export(
            _StreamStep(classifier).eval(), (frames, state), str(path),
            input_names=list(STREAM_INPUTS), output_names=list(STREAM_OUTPUTS),
            dynamic_axes={"frames": {0: "batch", 1: "frames"}, "state": {1: "batch"}, "probs": {0: "batch"},
                          "state_out": {1: "batch"}},
            opset_version=opset, dynamo=False, do_constant_folding=True,
        )
        return path.read_bytes()


def _export_graph(recogniser: Recogniser, path: Path, opset: int) -> None:
    module = _ClassifierWithProbs(recogniser.classifier).eval()
    frames = recogniser.frontend.config.window_frames
    example = torch.zeros(2, frames, recogniser.frontend.config.n_mfcc)
    # torch warns that the TorchScript exporter is deprecated (kept on purpose: the module docstring says why), and
    # that a GRU exported with a batch size other than 1 may fail at another batch size: we give no initial state,
    # so the exported GRU starts from zeros of whatever batch comes in (tested at several batch sizes). The CLI and
    # the test suite (pyproject.toml) silence both; a library caller sees them.
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes={
                ONNX_INPUT: {0: "batch", 1: "frames"},
                **{name: {0: "batch"} for name in ONNX_OUTPUTS},
            },
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )


def _attach_metadata(path: Path, meta: dict, stream_graph: bytes | None = None) -> None:
    import base64

    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    if stream_graph is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = STREAM_GRAPH_KEY, base64.b64encode(stream_graph).decode("ascii")
    entry = model.metadata_props.add()
    entry.key, entry.value = "labels", json.dumps(meta["labels"])
    model.producer_name = "speech"
    model.doc_string = (
        "speech keyword classifier: normalised MFCC (batch, frames, n_mfcc) -> logits, probs (batch, classes). "
        f"Front end, normaliser and labels: JSON in metadata_props['{META_KEY}']."
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check_export(
    recogniser: Recogniser, scorer: OnnxScorer, batches: tuple[int, ...] = (1, 3), seed: int = 0
) -> float:
    """Max |probs_onnx - probs_torch| over random feature batches of the given sizes (raises above tolerance)."""
    gen = torch.Generator().manual_seed(seed)
    frames = recogniser.frontend.config.window_frames
    worst = 0.0
    with torch.inference_mode():
        for batch in batches:
            feats = torch.randn(batch, frames, recogniser.frontend.config.n_mfcc, generator=gen)
            ref = torch.softmax(recogniser.classifier(feats), dim=-1).numpy()
            worst = max(worst, float(np.abs(scorer.scores_from_features(feats.numpy()) - ref).max()))
            if scorer.streams:  # the stream graph: a few steps from a random state, against PyTorch's
                chunk = torch.randn(batch, frames_for_steps(scorer.stream_context, 5), feats.shape[2], generator=gen)
                rows, hidden = scorer.stream_state_shape
                state = torch.randn(rows, batch, hidden, generator=gen)
                logits, ref_state = recogniser.classifier.streaming_step(chunk, state)
                probs, out_state = scorer.stream_step(chunk.numpy(), state.numpy())
                worst = max(worst, float(np.abs(probs - torch.softmax(logits, dim=-1).numpy()).max()),
                            float(np.abs(out_state - ref_state.numpy()).max()))
    if worst > EQUALITY_TOLERANCE:
        raise OnnxModelError(
            f"{scorer.path}: ONNX Runtime probabilities differ from PyTorch's by {worst:.2e} "
            f"(> {EQUALITY_TOLERANCE:g}); the export is wrong"
        )
    return worst


def export_onnx(
    model: Recogniser | str | Path | Sequence[str | Path],
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    check: bool = True,
) -> Path:
    """Export a recogniser (or a ``.ckpt`` path, loaded safely) to ``path`` as ONNX with its metadata. A list of
    two or more ``.ckpt`` paths is exported as one ensemble (:func:`speech.model.ensemble.load_ensemble`).

    Refuses an existing ``path`` unless ``overwrite``. The file is written under a temporary name, checked
    (``onnx.checker`` and, when ``check``, ONNX Runtime vs PyTorch on random features at batch 1 and 3) and only
    then renamed into place, so a failed export leaves nothing behind.
    """
    from speech.model.ensemble import load_ensemble

    path = Path(path)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise SettingError(f"opset {opset}: the exporter writes ONNX opsets {MIN_OPSET} to {MAX_OPSET} (default "
                           f"{DEFAULT_OPSET})", param="opset")
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder; expected a file name (e.g. {path / 'model.onnx'})", param="onnx")
    if path.suffix.lower() != ".onnx":
        raise SettingError(f"{path}: the output file should end in .onnx", param="onnx")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it", param="overwrite")
    check_can_create(path, "ONNX file", param="onnx")
    if isinstance(model, Recogniser):
        recogniser = model
    else:
        recogniser = load_ensemble([model] if isinstance(model, str | Path) else model)
    recogniser = recogniser.eval().cpu()
    with replaced_atomically(path, overwrite=overwrite) as tmp:
        _export_graph(recogniser, tmp, opset)
        stream_graph = _export_stream_graph(recogniser, opset) if has_stream_mode(recogniser.classifier) else None
        _attach_metadata(tmp, onnx_metadata(recogniser, opset), stream_graph)
        if check:
            worst = check_export(recogniser, OnnxScorer(tmp))
            log.info("export check: max |onnx - torch| = %.2e on random features", worst)
    return path
