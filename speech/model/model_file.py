"""Model files: one versioned metadata schema for ``.ckpt`` and ``.onnx`` files, and reading and writing it.

The **metadata** a model file carries (a checkpoint under ``checkpoint["speech"]``, an ONNX file as JSON in
``metadata_props["speech"]``) is one versioned schema (:func:`model_metadata`), checked on load
(:func:`check_metadata`)::

    schema "speech-model", version 3
    labels            class names, in output order
    frontend          FrontEndConfig settings
    normaliser        {"mean": [...], "std": [...], "fitted": bool}: per-coefficient feature statistics
    classifier        the classifier's kind and settings ({"kind": ..., ...}: speech.classifiers; no kind: recurrent)
    num_parameters    classifier parameters
    frames_per_clip   feature frames of one window (the front end's window_ms)
    torch_version     the PyTorch that wrote it
    speech_version    the speech that wrote it (files before version 3 lack it)
    data              optional: the DataRecord of the training data (split, training speakers)
    detection         optional: calibrated streaming thresholds
    ensemble          optional: the members of an ensemble (speech.model.ensemble); then ``classifier`` is the first
                      member's settings and ``num_parameters`` the members' total
    onnx              ONNX files only: graph input and outputs (and ``stream``: the stream-mode graph's, when the file
                      carries one under metadata_props["speech_stream_graph"])

Version-1 files (checkpoints with ``"format": 1``, ONNX files with ``"format": "speech-onnx"``) and version-2 files
(a classifier without a kind: the recurrent one) are read and upgraded; a newer version is refused with a message that says so.

Nothing here imports torch at module level: the runtime (:mod:`speech.runtime.scorers`) reads ONNX files with ONNX
Runtime alone; reading a checkpoint (:func:`read_checkpoint`) needs the training extra (torch), and
:mod:`speech.model.checkpoint` builds recognisers from them.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from speech.classifiers import KIND_KEY, KINDS, kind_of
from speech.errors import SpeechError
from speech.frontend.mfcc import FrontEndConfig
from speech.utils.extras import require_training_extra

INFO_SECTIONS = ("data", "detection", "ensemble")  # optional plain-data sections (see the module docstring)
META_KEY = "speech"  # where the metadata lives in both file kinds
SCHEMA = "speech-model"
SCHEMA_VERSION = 3  # 3: the classifier kind (speech.classifiers) and speech_version
_LEGACY_ONNX_FORMAT = "speech-onnx"  # version 1 of the ONNX files
ONNX_INPUT = "features"
ONNX_OUTPUTS = ("logits", "probs")
STREAM_GRAPH_KEY = "speech_stream_graph"  # metadata_props: the stream-mode graph (base64 ONNX) of a model that has one
STREAM_INPUTS = ("frames", "state")
STREAM_OUTPUTS = ("probs", "state_out")


class ModelFileError(SpeechError, ValueError):
    """A model file that cannot be used (missing, corrupt, not ours, a newer schema); the message names it."""


class OnnxModelError(ModelFileError):
    """An ONNX file that cannot be used (corrupt, not ours, or failing the export check)."""


def speech_version() -> str:
    from speech.version import __version__

    return __version__


def model_metadata(recogniser) -> dict:
    """The plain-data description (str/int/float/bool/list/dict only) that rebuilds ``recogniser``
    (a :class:`speech.model.recogniser.Recogniser`)."""
    import torch

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
        "frames_per_clip": fe.config.window_frames,
        "torch_version": str(torch.__version__),
        "speech_version": speech_version(),
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
        kind = kind_of(meta["classifier"])
    except ValueError as exc:
        raise ModelFileError(f"{source}: invalid settings in the metadata ({exc})") from None
    if kind not in KINDS:
        writer = meta.get("speech_version")
        reader = (f"the file was written by speech {writer}: read it with that version or later" if writer
                  else "read it with the newer speech that wrote it")
        raise ModelFileError(f"{source}: a {kind!r} classifier, which this speech {speech_version()} cannot run (it "
                             f"knows {', '.join(sorted(KINDS))}); {reader}")
    try:  # the classifier's settings are checked where its network is built (a checkpoint: load_recogniser), so
        FrontEndConfig.from_dict(meta["frontend"])  # that reading an ONNX file imports no torch
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
    meta["classifier"] = {KIND_KEY: kind, **{k: v for k, v in meta["classifier"].items() if k != KIND_KEY}}
    meta["version"] = SCHEMA_VERSION
    return meta


def with_section(meta: dict, key: str, section: dict | None) -> dict:
    """``meta`` with the optional section ``key`` (one of :data:`~speech.model.recogniser.INFO_SECTIONS`) set, or removed for None."""
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


class CheckpointError(ModelFileError):
    """A checkpoint that cannot be used; the message names the file and what was expected."""


def _unpickling_reason(message: str) -> str:
    """The specific line of torch's weights-only error (e.g. "Trying to load unsupported GLOBAL posix.system")."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    specific = [line for line in lines if line.startswith(("Trying to load", "Unsupported")) or "GLOBAL" in line]
    return (specific or lines or ["UnpicklingError"])[0]


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6 (and Lightning's checkpoints)
PICKLE_MAGIC = b"\x80"  # a legacy torch.save file: a pickle, protocol 2 or later
ONNX_MAGIC = b"\x08"  # an ONNX ModelProto starts with its field 1, ir_version, a varint


def _check_magic(path: Path) -> None:
    """Refuse files that cannot be a ``torch.save`` checkpoint (text, audio, ...) before the unpickler sees them:
    on text it fails with errors such as ``KeyError: 101`` or ``IndexError: pop from empty list``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(f"{path}: empty file; expected a checkpoint written by 'speech train' (.ckpt)")
    if head.startswith(ZIP_MAGIC) or head.startswith(PICKLE_MAGIC):
        return
    if path.suffix.lower() == ".onnx" or head.startswith(ONNX_MAGIC):
        raise CheckpointError(f"{path}: an ONNX model, not a PyTorch checkpoint; this needs the .ckpt checkpoint "
                              "written by 'speech train' (the one the .onnx was exported from)")
    raise CheckpointError(f"{path}: not a PyTorch checkpoint (it starts with {head!r}; expected a .ckpt file "
                          "written by 'speech train')")


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dictionary with the weights-only unpickler (tensors and plain data only): nothing in the
    file is ever executed (a class, a function call such as ``os.system`` is refused with :class:`CheckpointError`).
    Needs the training extra (torch)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; expected a checkpoint file (.ckpt)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    _check_magic(path)
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(str(exc))
        if "Unsupported operand" in reason:  # not a pickle at all (text, random bytes)
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects outside the weights-only allow-list "
            f"(tensors, numbers, strings, lists, dicts), so loading it could run code. ({reason})"
        ) from None
    except Exception as exc:  # a damaged file fails in many ways (RuntimeError, EOFError, KeyError, ...)
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dictionary, found {type(ckpt).__name__}")
    return ckpt


def onnx_session(path: str | Path, intra_op_threads: int = 1, graph: bytes | None = None):
    """An ONNX Runtime CPU session of ``path`` (sequential, fully optimised, quiet); a file that is missing or
    not a valid ONNX model is an :class:`OnnxModelError` naming it. ``graph``: run these bytes (a graph the file
    carries) instead of the file's own graph."""
    import onnxruntime as ort

    path = Path(path)
    if graph is None and not path.is_file():
        raise OnnxModelError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(intra_op_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(graph if graph is not None else str(path), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own (InvalidProtobuf, Fail, ...) types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxModelError(f"{path}: not a valid ONNX model ({first})") from None


def onnx_stream_session(session, path: str | Path, intra_op_threads: int = 1):
    """An ONNX Runtime session of the stream-mode graph that the file ``path`` (open as ``session``) carries."""
    import base64

    raw = session.get_modelmeta().custom_metadata_map.get(STREAM_GRAPH_KEY)
    if raw is None:
        raise OnnxModelError(f"{path}: its metadata promises a stream mode but the file lacks the graph "
                             f"('{STREAM_GRAPH_KEY}'); export it again with 'speech export'")
    try:
        graph = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise OnnxModelError(f"{path}: the stream-mode graph is not base64 ({exc})") from None
    return onnx_session(path, intra_op_threads, graph=graph)


def session_metadata(session, path: str | Path) -> dict:
    """The checked metadata of the ONNX file ``path`` opened as ``session``."""
    return onnx_metadata_of(session.get_modelmeta().custom_metadata_map.get(META_KEY), path)


def read_metadata(path: str | Path) -> dict:
    """The checked metadata of a ``.ckpt`` or ``.onnx`` model file, without building the model."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return session_metadata(onnx_session(path), path)
    require_training_extra(f"{path}: reading a training checkpoint")
    return check_metadata(read_checkpoint(path).get(META_KEY), path, needs_normaliser=False)


def write_section(model: str | Path, key: str, section: dict | None, target: str | Path, overwrite: bool = False) -> Path:
    """Copy the ``.ckpt``/``.onnx`` file ``model`` to ``target`` (same kind) with metadata section ``key`` set.

    Written to a temporary file and renamed (:func:`speech.utils.files.replaced_atomically`), so a failure leaves
    ``target`` as it was; ``target`` may be ``model`` itself only with ``overwrite``.
    """
    from speech.utils.files import replaced_atomically

    model, target = Path(model), Path(target)
    suffix = model.suffix.lower()
    if suffix not in (".ckpt", ".onnx"):
        raise ValueError(f"{model}: metadata can be stored in a .ckpt or .onnx model, not {model.suffix!r}")
    if target.suffix.lower() != suffix:
        raise ValueError(f"{target}: the output must be a {suffix} file like {model.name}")
    require_training_extra(f"{model}: writing a model file")
    with replaced_atomically(target, overwrite=overwrite) as tmp:
        if suffix == ".ckpt":
            import torch

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
