"""Safe loading of the project's checkpoints: nothing in a file is ever executed.

Checkpoints are read with ``torch.load(weights_only=True)``, PyTorch's restricted unpickler that only
builds tensors and plain containers; anything else (a class, a function call such as ``os.system``)
is refused with :class:`CheckpointError`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from speech.model_file import META_KEY, ModelFileError, check_metadata, model_metadata
from speech.recogniser import Recogniser, recogniser_from_metadata

STATE_PREFIX = "recogniser."


class CheckpointError(ModelFileError):
    """A checkpoint that cannot be used; the message names the file and what was expected."""


def _unpickling_reason(message: str) -> str:
    """The specific line of torch's weights-only error (e.g. "Trying to load unsupported GLOBAL posix.system")."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    specific = [line for line in lines if line.startswith(("Trying to load", "Unsupported")) or "GLOBAL" in line]
    return (specific or lines or ["UnpicklingError"])[0]


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6 (and Lightning's checkpoints)
PICKLE_MAGIC = b"\x80"  # a legacy torch.save file: a pickle, protocol 2 or later


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
    if not (head.startswith(ZIP_MAGIC) or head.startswith(PICKLE_MAGIC)):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (it starts with {head!r}; expected a .ckpt file written by "
            "'speech train', or an .onnx export)"
        )


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dictionary with the weights-only unpickler (tensors and plain data only)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; expected a checkpoint file (.ckpt)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    _check_magic(path)
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


def load_recogniser(path: str | Path) -> Recogniser:
    """Rebuild the trained :class:`Recogniser` (in eval mode, on CPU) from a training checkpoint."""
    ckpt = read_checkpoint(path)
    meta = ckpt.get(META_KEY)
    if not isinstance(meta, dict) or "labels" not in meta:
        raise CheckpointError(
            f"{path}: not a speech checkpoint (no '{META_KEY}' entry with labels and front-end settings)"
        )
    try:
        model = recogniser_from_metadata(check_metadata(meta, path, needs_normaliser=False))
    except ModelFileError as exc:
        raise CheckpointError(str(exc)) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: invalid model description in the checkpoint ({exc})") from None
    weights = ckpt.get("state_dict", {})
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: its 'state_dict' is a {type(weights).__name__}, expected a dictionary")
    state = {k[len(STATE_PREFIX) :]: v for k, v in weights.items() if isinstance(k, str) and k.startswith(STATE_PREFIX)}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the described model ({exc})") from None
    return model.eval()


def save_checkpoint(model: Recogniser, path: str | Path, overwrite: bool = False, **extra) -> Path:
    """Write a lean checkpoint (weights + description, no optimiser state) that :func:`load_recogniser` reads.

    Refuses to replace an existing file unless ``overwrite`` is true, and an ensemble (it has no checkpoint form).
    """
    path = Path(path)
    if "ensemble" in model.sections:
        raise ValueError(f"{path}: an ensemble is stored as ONNX (speech.export.export_onnx), not as a checkpoint")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {STATE_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, META_KEY: model_metadata(model), **extra}, path)
    return path
