"""Training checkpoints as recognisers: rebuild a :class:`Recogniser` from a ``.ckpt`` file, save a lean one.

Reading the file (safely: nothing in it is ever executed) is :func:`speech.model.model_file.read_checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speech.model.model_file import (
    META_KEY,
    CheckpointError,
    ModelFileError,
    check_metadata,
    model_metadata,
    read_checkpoint,
)
from speech.model.recogniser import Recogniser, recogniser_from_metadata

STATE_PREFIX = "recogniser."


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
        raise ValueError(f"{path}: an ensemble is stored as ONNX (speech.runtime.export.export_onnx), not as a checkpoint")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {STATE_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, META_KEY: model_metadata(model), **extra}, path)
    return path
