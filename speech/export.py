"""ONNX export of a trained recogniser and :class:`OnnxScorer`, its ONNX Runtime counterpart of TorchScorer.

What goes into the ``.onnx`` file: the classifier (normalised MFCC ``(batch, frames, n_mfcc)`` -> ``logits`` and
``probs``, both ``(batch, classes)``) with dynamic batch and frame axes, exported with PyTorch's TorchScript-based
exporter, which maps ``nn.GRU`` onto ONNX's native ``GRU`` operator (``linear_before_reset=1``, PyTorch's GRU
formula). The file's ``metadata_props`` carry, under the key ``"speech"``, a JSON object with the label list, the
front-end settings, the feature normaliser (``mean``/``std`` per coefficient) and the classifier settings, so the
file runs on its own.

The front end stays in PyTorch (:class:`speech.features.FrontEnd`, rebuilt from that metadata): it does export
(via the dynamo exporter's ONNX ``DFT``), but its features then differ by up to ~1e-5 from PyTorch's and ONNX
Runtime runs it 2-3x slower than PyTorch on one thread (``scripts/bench_latency.py --onnx-frontend``), so it gains
nothing. (The dynamo exporter is not used for the GRU either: it takes minutes and unrolls the recurrence.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speech.features import FrontEnd, FrontEndConfig
from speech.files import replaced_atomically
from speech.recogniser import INFO_SECTIONS, Recogniser

log = logging.getLogger(__name__)

META_KEY = "speech"
FORMAT = "speech-onnx"
FORMAT_VERSION = 1
DEFAULT_OPSET = 17
INPUT_NAME = "features"
OUTPUT_NAMES = ("logits", "probs")
EQUALITY_TOLERANCE = 1e-4  # max |onnx - torch| on probabilities accepted by the post-export check


class OnnxModelError(ValueError):
    """An ONNX file that cannot be used (corrupt, not ours, or failing the export check); names the file."""


class _ClassifierWithProbs(nn.Module):
    """The classifier plus its softmax: features -> (logits, probs)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(feats)
        return logits, torch.softmax(logits, dim=-1)


def onnx_metadata(recogniser: Recogniser) -> dict:
    """The plain-data description stored in the file (labels, front end, normaliser, classifier, sizes)."""
    fe = recogniser.frontend
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "labels": list(recogniser.labels),
        "frontend": fe.config.to_dict(),
        "normaliser": {
            "mean": [float(v) for v in fe.mean.detach().cpu().tolist()],
            "std": [float(v) for v in fe.std.detach().cpu().tolist()],
            "fitted": bool(fe.fitted.item()),
        },
        "classifier": recogniser.classifier.config.to_dict(),
        "num_parameters": int(recogniser.classifier.num_parameters),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", "frames", fe.config.n_mfcc],
            "what": "normalised MFCC",
        },
        "outputs": list(OUTPUT_NAMES),
        "frames_per_clip": fe.config.num_frames(fe.config.sample_rate),
        "torch_version": torch.__version__,
        **{key: value for key, value in recogniser.sections.items() if key in INFO_SECTIONS},
    }


def frontend_from_metadata(meta: dict) -> FrontEnd:
    """Rebuild the :class:`FrontEnd` (settings + fitted normaliser) described in the file's metadata."""
    frontend = FrontEnd(FrontEndConfig.from_dict(meta["frontend"]))
    norm = meta["normaliser"]
    n = frontend.config.n_mfcc
    mean = torch.tensor(norm["mean"], dtype=torch.float32)
    std = torch.tensor(norm["std"], dtype=torch.float32)
    if mean.shape != (n,) or std.shape != (n,):
        raise ValueError(f"normaliser has {tuple(mean.shape)}/{tuple(std.shape)} values, expected {n}")
    frontend.mean.copy_(mean)
    frontend.std.copy_(std)
    frontend.fitted.fill_(bool(norm.get("fitted", True)))
    return frontend.eval()


def _export_graph(recogniser: Recogniser, path: Path, opset: int) -> None:
    module = _ClassifierWithProbs(recogniser.classifier).eval()
    frames = recogniser.frontend.config.num_frames(recogniser.sample_rate)
    example = torch.zeros(2, frames, recogniser.frontend.config.n_mfcc)
    # torch warns that the TorchScript exporter is deprecated, and that a GRU exported with a batch size other
    # than 1 may fail at another batch size: we give no initial state, so the exported GRU starts from zeros of
    # whatever batch comes in (tested at several batch sizes). The CLI silences both; a library caller sees them.
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={
                INPUT_NAME: {0: "batch", 1: "frames"},
                **{name: {0: "batch"} for name in OUTPUT_NAMES},
            },
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )


def _attach_metadata(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
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
    frames = recogniser.frontend.config.num_frames(recogniser.sample_rate)
    worst = 0.0
    with torch.inference_mode():
        for batch in batches:
            feats = torch.randn(batch, frames, recogniser.frontend.config.n_mfcc, generator=gen)
            ref = torch.softmax(recogniser.classifier(feats), dim=-1).numpy()
            worst = max(worst, float(np.abs(scorer.scores_from_features(feats.numpy()) - ref).max()))
    if worst > EQUALITY_TOLERANCE:
        raise OnnxModelError(
            f"{scorer.path}: ONNX Runtime probabilities differ from PyTorch's by {worst:.2e} "
            f"(> {EQUALITY_TOLERANCE:g}); the export is wrong"
        )
    return worst


def export_onnx(
    model: Recogniser | str | Path,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    check: bool = True,
) -> Path:
    """Export a recogniser (or a ``.ckpt`` path, loaded safely) to ``path`` as ONNX with its metadata.

    Refuses an existing ``path`` unless ``overwrite``. The file is written under a temporary name, checked
    (``onnx.checker`` and, when ``check``, ONNX Runtime vs PyTorch on random features at batch 1 and 3) and only
    then renamed into place, so a failed export leaves nothing behind.
    """
    from speech.checkpoint import load_recogniser

    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"{path}: the output file should end in .onnx")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} exists; refusing to overwrite it (choose another name or pass --overwrite)"
        )
    recogniser = load_recogniser(model) if isinstance(model, str | Path) else model
    recogniser = recogniser.eval().cpu()
    with replaced_atomically(path, overwrite=overwrite) as tmp:
        _export_graph(recogniser, tmp, opset)
        _attach_metadata(tmp, onnx_metadata(recogniser))
        if check:
            worst = check_export(recogniser, OnnxScorer(tmp))
            log.info("export check: max |onnx - torch| = %.2e on random features", worst)
    return path


class OnnxScorer:
    """Runs an exported classifier in ONNX Runtime (CPU); the front end runs in PyTorch.

    Same interface as :class:`speech.inference.TorchScorer`: ``labels``, ``frontend`` (a :class:`FrontEnd` with
    the normaliser loaded), ``num_parameters``, ``backend == "onnx"``, ``features(waves)``,
    ``scores(waves (B, samples)) -> probs (B, C)`` and ``scores_from_features(feats (B, frames, n_mfcc))``.
    ``intra_op_threads``: ONNX Runtime threads for one call (default 1).
    """

    backend = "onnx"

    def __init__(self, path: str | Path, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = path = Path(path)
        if not path.is_file():
            raise OnnxModelError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        self.intra_op_threads = int(intra_op_threads)
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (InvalidProtobuf, Fail, ...) types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OnnxModelError(f"{path}: not a valid ONNX model ({first})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise OnnxModelError(
                f"{path}: ONNX model without the '{META_KEY}' metadata (labels, front end, normaliser); "
                "export it with 'speech export'"
            )
        try:
            meta = json.loads(raw)
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            self.labels: list[str] = [str(label) for label in meta["labels"]]
            self.frontend: FrontEnd = frontend_from_metadata(meta)
            self.num_parameters = int(meta["num_parameters"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OnnxModelError(f"{path}: invalid '{META_KEY}' metadata ({exc})") from None
        self.metadata = meta
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or "probs" not in outputs:
            raise OnnxModelError(
                f"{path}: expected input '{INPUT_NAME}' and output 'probs', found {inputs} -> {outputs}"
            )
        classes = self.session.get_outputs()[outputs.index("probs")].shape[-1]
        if isinstance(classes, int) and classes != len(self.labels):
            raise OnnxModelError(
                f"{path}: the model outputs {classes} classes but carries {len(self.labels)} labels"
            )
        self.n_mfcc = self.frontend.config.n_mfcc

    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        """Normalised features ``(B, frames, n_mfcc)`` -> probabilities ``(B, C)`` float32."""
        feats = np.ascontiguousarray(np.asarray(feats, dtype=np.float32))
        if feats.ndim != 3 or feats.shape[2] != self.n_mfcc:
            raise ValueError(f"expected features shaped (batch, frames, {self.n_mfcc}), got {feats.shape}")
        return self.session.run(["probs"], {INPUT_NAME: feats})[0]

    @torch.inference_mode()
    def features(self, waves: np.ndarray) -> np.ndarray:
        """Waveforms ``(B, samples)`` at 16 kHz -> normalised features ``(B, frames, n_mfcc)`` (PyTorch front end)."""
        return self.frontend(torch.as_tensor(waves, dtype=torch.float32)).numpy()

    def scores(self, waves: np.ndarray) -> np.ndarray:
        """Waveforms ``(B, samples)`` -> probabilities ``(B, C)`` float32."""
        return self.scores_from_features(self.features(waves))
