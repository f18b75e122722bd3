"""Model files and the scorers that run them: one metadata schema for ``.ckpt`` and ``.onnx``, one interface.

A **scorer** turns 16 kHz float waveforms ``(batch, samples)`` or normalised features ``(batch, frames, n_mfcc)``
into class probabilities ``(batch, classes)``. :class:`TorchScorer` runs a :class:`~speech.recogniser.Recogniser`
in PyTorch; :class:`OnnxScorer` runs an exported classifier in ONNX Runtime. Both use the project's
:class:`~speech.features.FrontEnd`, so every back end sees the features training saw. :class:`Scorer` is the
protocol both satisfy; :func:`load_scorer` opens either file kind.

The **metadata** a model file carries (a checkpoint under ``checkpoint["speech"]``, an ONNX file as JSON in
``metadata_props["speech"]``) is one versioned schema (:func:`model_metadata`), checked on load
(:func:`check_metadata`)::

    schema "speech-model", version 2
    labels            class names, in output order
    frontend          FrontEndConfig settings
    normaliser        {"mean": [...], "std": [...], "fitted": bool}: per-coefficient feature statistics
    classifier        ClassifierConfig settings
    num_parameters    classifier parameters
    frames_per_clip   feature frames of one 1 s window
    torch_version     the PyTorch that wrote it
    data              optional: the DataRecord of the training data (split, training speakers)
    detection         optional: calibrated streaming thresholds
    ensemble          optional: the members of an ensemble (speech.ensemble); then ``classifier`` is the first
                      member's settings and ``num_parameters`` the members' total
    onnx              ONNX files only: graph input and outputs

Version-1 files (checkpoints with ``"format": 1``, ONNX files with ``"format": "speech-onnx"``) are read and
upgraded; a newer version is refused with a message that says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from speech.errors import SpeechError
from speech.features import FrontEnd, FrontEndConfig
from speech.model import ClassifierConfig
from speech.recogniser import INFO_SECTIONS, Recogniser

META_KEY = "speech"  # where the metadata lives in both file kinds
SCHEMA = "speech-model"
SCHEMA_VERSION = 2
_LEGACY_ONNX_FORMAT = "speech-onnx"  # version 1 of the ONNX files
ONNX_INPUT = "features"
ONNX_OUTPUTS = ("logits", "probs")


class ModelFileError(SpeechError, ValueError):
    """A model file that cannot be used (missing, corrupt, not ours, a newer schema); the message names it."""


class OnnxModelError(ModelFileError):
    """An ONNX file that cannot be used (corrupt, not ours, or failing the export check)."""


# ------------------------------------------------------------------------------------------------- schema


def model_metadata(recogniser: Recogniser) -> dict:
    """The plain-data description (str/int/float/bool/list/dict only) that rebuilds ``recogniser``."""
    fe = recogniser.frontend
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        **recogniser.settings(),
        "normaliser": {
            "mean": [float(v) for v in fe.mean.detach().cpu().tolist()],
            "std": [float(v) for v in fe.std.detach().cpu().tolist()],
            "fitted": bool(fe.fitted.item()),
        },
        "num_parameters": int(recogniser.classifier.num_parameters),
        "frames_per_clip": fe.config.num_frames(fe.config.sample_rate),
        "torch_version": str(torch.__version__),
        **{key: recogniser.sections[key] for key in INFO_SECTIONS if recogniser.sections.get(key) is not None},
    }


def check_metadata(meta: object, source: str | Path, *, needs_normaliser: bool = True) -> dict:
    """Validate ``meta`` (read from ``source``) against the schema; return it, upgraded to the current version.

    ``needs_normaliser``: False for checkpoints, whose weights carry the normaliser too (version-1 checkpoints
    have none in their metadata). Raises :class:`ModelFileError` naming ``source`` and what is wrong.
    """
    if not isinstance(meta, dict):
        raise ModelFileError(f"{source}: the '{META_KEY}' metadata is a {type(meta).__name__}, expected an object")
    meta = dict(meta)
    if meta.get("format") in (1, _LEGACY_ONNX_FORMAT):  # version 1: same fields, older header
        meta.pop("format")
        meta.pop("input", None), meta.pop("outputs", None)
        meta.update(schema=SCHEMA, version=SCHEMA_VERSION)
    if meta.get("schema") != SCHEMA:
        raise ModelFileError(f"{source}: metadata schema {meta.get('schema')!r}, expected {SCHEMA!r}")
    version = meta.get("version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{source}: metadata version {version!r}, expected a positive integer")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{source}: written with metadata version {version} by a newer speech; this one reads up to "
            f"version {SCHEMA_VERSION} (upgrade speech)"
        )
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise ModelFileError(f"{source}: 'labels' must be a non-empty list of names, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ModelFileError(f"{source}: repeated labels in {labels}")
    for key in ("frontend", "classifier"):
        if not isinstance(meta.get(key), dict):
            raise ModelFileError(f"{source}: '{key}' settings missing from the metadata")
    try:
        FrontEndConfig.from_dict(meta["frontend"])
        ClassifierConfig.from_dict(meta["classifier"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{source}: invalid settings in the metadata ({exc})") from None
    norm = meta.get("normaliser")
    if norm is not None or needs_normaliser:
        n = int(meta["frontend"].get("n_mfcc", FrontEndConfig().n_mfcc))
        ok = isinstance(norm, dict) and all(
            isinstance(norm.get(k), list) and len(norm[k]) == n and all(isinstance(v, int | float) for v in norm[k])
            for k in ("mean", "std")
        )
        if not ok:
            raise ModelFileError(f"{source}: 'normaliser' must hold {n} 'mean' and {n} 'std' values")
    for key in INFO_SECTIONS:
        if key in meta and meta[key] is not None and not isinstance(meta[key], dict):
            raise ModelFileError(f"{source}: '{key}' must be an object, got {type(meta[key]).__name__}")
    return meta


def load_normaliser(frontend: FrontEnd, meta: dict) -> FrontEnd:
    """``frontend`` with the feature normaliser of ``meta`` (when it has one) loaded; returned in eval mode."""
    norm = meta.get("normaliser")
    if norm is not None:
        frontend.mean.copy_(torch.tensor(norm["mean"], dtype=torch.float32))
        frontend.std.copy_(torch.tensor(norm["std"], dtype=torch.float32))
        frontend.fitted.fill_(bool(norm.get("fitted", True)))
    return frontend.eval()


def recogniser_from_metadata(meta: dict) -> Recogniser:
    """An untrained :class:`Recogniser` of the described shape, with the normaliser and sections filled in."""
    model = Recogniser(
        meta["labels"], FrontEndConfig.from_dict(meta["frontend"]), ClassifierConfig.from_dict(meta["classifier"])
    )
    model.sections = {key: meta[key] for key in INFO_SECTIONS if isinstance(meta.get(key), dict)}
    load_normaliser(model.frontend, meta)
    return model.eval()


def with_section(meta: dict, key: str, section: dict | None) -> dict:
    """``meta`` with the optional section ``key`` (one of :data:`~speech.recogniser.INFO_SECTIONS`) set, or removed for None."""
    if key not in INFO_SECTIONS:
        raise ValueError(f"unknown metadata section {key!r}; expected one of {INFO_SECTIONS}")
    out = {k: v for k, v in meta.items() if k != key}
    if section is not None:
        out[key] = json.loads(json.dumps(section))  # plain data only
    return out


def onnx_metadata_of(raw: str | None, path: str | Path) -> dict:
    """The checked metadata from the JSON an ONNX file holds under ``metadata_props["speech"]`` (None: absent);
    every problem is an :class:`OnnxModelError` naming ``path``."""
    if raw is None:
        raise OnnxModelError(
            f"{path}: ONNX model without the '{META_KEY}' metadata (labels, front end, normaliser); "
            "export it with 'speech export'"
        )
    try:
        return check_metadata(json.loads(raw), path)
    except ModelFileError as exc:
        raise OnnxModelError(str(exc)) from None
    except ValueError as exc:  # not JSON
        raise OnnxModelError(f"{path}: invalid '{META_KEY}' metadata ({exc})") from None


# ------------------------------------------------------------------------------------------------ scorers


@runtime_checkable
class Scorer(Protocol):
    """What evaluation, streaming and the public :class:`speech.Model` need from a model back end."""

    backend: str  # "torch" or "onnx"
    labels: list[str]
    frontend: FrontEnd
    num_parameters: int
    metadata: dict  # the file's metadata (see the module docstring)

    def features(self, waves: np.ndarray) -> np.ndarray:
        """Float waveforms ``(batch, samples)`` at 16 kHz -> normalised features ``(batch, frames, n_mfcc)``."""
        ...

    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        """Normalised features ``(batch, frames, n_mfcc)`` -> probabilities ``(batch, classes)`` float32."""
        ...

    def scores(self, waves: np.ndarray) -> np.ndarray:
        """Float waveforms ``(batch, samples)`` -> probabilities ``(batch, classes)`` float32."""
        ...


class _FrontEndScorer:
    """The part both back ends share: the PyTorch front end and the score pipeline."""

    frontend: FrontEnd
    device: str = "cpu"

    @torch.inference_mode()
    def features(self, waves: np.ndarray) -> np.ndarray:
        return self.frontend(torch.as_tensor(waves, dtype=torch.float32, device=self.device)).cpu().numpy()

    def scores(self, waves: np.ndarray) -> np.ndarray:
        return self.scores_from_features(self.features(waves))

    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TorchScorer(_FrontEndScorer):
    """Runs a :class:`Recogniser` in PyTorch eager mode on CPU (or ``device``). Threads: PyTorch's, process-wide."""

    backend = "torch"

    def __init__(self, recogniser: Recogniser, device: str = "cpu") -> None:
        self.recogniser = recogniser.eval().to(device)
        self.device = device
        self.labels: list[str] = recogniser.labels
        self.frontend: FrontEnd = recogniser.frontend
        self.num_parameters = recogniser.classifier.num_parameters
        self.metadata: dict = model_metadata(recogniser)

    @torch.inference_mode()
    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        logits = self.recogniser.classifier(torch.as_tensor(feats, dtype=torch.float32, device=self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()


class OnnxScorer(_FrontEndScorer):
    """Runs an exported classifier in ONNX Runtime (CPU); the front end runs in PyTorch.

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
        self.metadata = onnx_metadata_of(self.session.get_modelmeta().custom_metadata_map.get(META_KEY), path)
        self.labels: list[str] = list(self.metadata["labels"])
        # the classifier runs in ONNX Runtime: only the front end is built in PyTorch
        self.frontend: FrontEnd = load_normaliser(FrontEnd(FrontEndConfig.from_dict(self.metadata["frontend"])), self.metadata)
        self.num_parameters = int(self.metadata.get("num_parameters", 0))
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [ONNX_INPUT] or "probs" not in outputs:
            raise OnnxModelError(f"{path}: expected input '{ONNX_INPUT}' and output 'probs', found {inputs} -> {outputs}")
        classes = self.session.get_outputs()[outputs.index("probs")].shape[-1]
        if isinstance(classes, int) and classes != len(self.labels):
            raise OnnxModelError(f"{path}: the model outputs {classes} classes but carries {len(self.labels)} labels")
        self.n_mfcc = self.frontend.config.n_mfcc

    def scores_from_features(self, feats: np.ndarray) -> np.ndarray:
        feats = np.ascontiguousarray(np.asarray(feats, dtype=np.float32))
        if feats.ndim != 3 or feats.shape[2] != self.n_mfcc:
            raise ValueError(f"expected features shaped (batch, frames, {self.n_mfcc}), got {feats.shape}")
        return self.session.run(["probs"], {ONNX_INPUT: feats})[0]


def load_scorer(path: str | Path, backend: str = "auto", intra_op_threads: int = 1) -> Scorer:
    """Open a ``.ckpt`` (PyTorch) or ``.onnx`` (ONNX Runtime) model file as a scorer.

    ``backend``: ``"auto"`` (by file suffix), ``"torch"`` or ``"onnx"``. ``intra_op_threads``: ONNX Runtime
    threads per call (PyTorch's threads are process-wide and left to the caller).
    """
    path = Path(path)
    if backend == "auto":
        backend = "onnx" if path.suffix.lower() == ".onnx" else "torch"
    if backend == "torch":
        from speech.checkpoint import load_recogniser

        return TorchScorer(load_recogniser(path))
    if backend == "onnx":
        return OnnxScorer(path, intra_op_threads=intra_op_threads)
    raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")


def read_metadata(path: str | Path) -> dict:
    """The checked metadata of a ``.ckpt`` or ``.onnx`` model file, without building the model."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # a damaged file fails in many ways
            raise OnnxModelError(f"{path}: not a valid ONNX model ({type(exc).__name__})") from None
        entries = [p.value for p in proto.metadata_props if p.key == META_KEY]
        return onnx_metadata_of(entries[0] if entries else None, path)
    from speech.checkpoint import read_checkpoint

    return check_metadata(read_checkpoint(path).get(META_KEY), path, needs_normaliser=False)


def write_section(model: str | Path, key: str, section: dict | None, target: str | Path, overwrite: bool = False) -> Path:
    """Copy the ``.ckpt``/``.onnx`` file ``model`` to ``target`` (same kind) with metadata section ``key`` set.

    Written to a temporary file and renamed (:func:`speech.files.replaced_atomically`), so a failure leaves
    ``target`` as it was; ``target`` may be ``model`` itself only with ``overwrite``.
    """
    from speech.files import replaced_atomically

    model, target = Path(model), Path(target)
    suffix = model.suffix.lower()
    if suffix not in (".ckpt", ".onnx"):
        raise ValueError(f"{model}: metadata can be stored in a .ckpt or .onnx model, not {model.suffix!r}")
    if target.suffix.lower() != suffix:
        raise ValueError(f"{target}: the output must be a {suffix} file like {model.name}")
    with replaced_atomically(target, overwrite=overwrite) as tmp:
        if suffix == ".ckpt":
            from speech.checkpoint import read_checkpoint

            ckpt = read_checkpoint(model)
            meta = check_metadata(ckpt.get(META_KEY), model, needs_normaliser=False)
            ckpt[META_KEY] = with_section(meta, key, section)
            torch.save(ckpt, tmp)
        else:
            import onnx

            proto = onnx.load(str(model))
            entries = [p for p in proto.metadata_props if p.key == META_KEY]
            meta = onnx_metadata_of(entries[0].value if entries else None, model)
            entries[0].value = json.dumps(with_section(meta, key, section))
            onnx.save(proto, str(tmp))
    return target
