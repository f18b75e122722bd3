"""The models that come with ``speech`` (package data), and the one rule that turns "a name or a path" into a model.

``speech/models/`` holds each packaged model as an ONNX file with its metadata (labels, front end, normaliser,
the record of its training data, calibrated thresholds) and a JSON card of its measured figures
(``docs/model-card.md``; both written by ``scripts/package_model.py``). They install with the base install
(``pip install .``, no torch) as package data.

:func:`resolve_model` is the rule every entry point follows (``speech.load``, ``speech live``, ``evaluate``,
``stream-test``, ``calibrate``):

- nothing given: the default packaged model (:data:`DEFAULT_MODEL`);
- a :class:`~pathlib.Path`, a string that names an existing file, or a string that looks like a path (it holds a
  ``/`` or has a suffix such as ``.onnx``): that file. An explicit path always wins: a file ``commands`` in the
  working folder is that file, not the packaged model;
- a packaged name (:data:`PACKAGED`): its file in this folder;
- anything else is bad input (:class:`UnknownModelError`, exit 2): one line that lists the packaged names and says
  that a path to a ``.ckpt`` or ``.onnx`` file was expected otherwise.

A packaged model whose file is missing or unreadable is a damaged installation, not bad input:
:class:`PackagedModelError` (exit 1), one line that says to reinstall.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from speech.errors import RuntimeFailure, SpeechError

MODELS_DIR = Path(__file__).resolve().parent
# packaged name -> (file in MODELS_DIR, what it is)
PACKAGED: dict[str, tuple[str, str]] = {
    "commands": ("commands.onnx", "the 10 Speech Commands words (yes no up down left right on off stop go), "
                 "_unknown_ and _silence_; calibrated for live use"),
}
DEFAULT_MODEL = "commands"
CARD_SUFFIX = ".json"  # the card of a packaged model: its file with this suffix (commands.json)


class UnknownModelError(SpeechError, ValueError):
    """A model given by a name that is no packaged model and no file (exit 2)."""


class PackagedModelError(RuntimeFailure):
    """A packaged model whose file is missing or cannot be read: the installation is damaged (exit 1)."""


@dataclass(frozen=True)
class ModelChoice:
    """The file a name or path stands for: ``path``; ``name``, the packaged name (None for a file given by path)."""

    path: Path
    name: str | None = None

    def describe(self) -> str:
        """How commands name it: ``packaged model 'commands'`` or the path as given."""
        return f"packaged model '{self.name}'" if self.name else str(self.path)


def packaged_names() -> list[str]:
    """The names :func:`resolve_model` knows, default first."""
    return sorted(PACKAGED, key=lambda name: (name != DEFAULT_MODEL, name))


def packaged_path(name: str) -> Path:
    """The file of the packaged model ``name`` (whether or not it is there)."""
    return MODELS_DIR / PACKAGED[name][0]


def card_path(name: str) -> Path:
    """The card (measured figures, JSON) of the packaged model ``name``."""
    return packaged_path(name).with_suffix(CARD_SUFFIX)


def read_card(name: str = DEFAULT_MODEL) -> dict:
    """The figures of the packaged model ``name`` as ``scripts/package_model.py`` measured them; a missing or
    unreadable card is a :class:`PackagedModelError`."""
    path = card_path(name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackagedModelError(f"the card of the packaged model '{name}' cannot be read ({path}: "
                                 f"{getattr(exc, 'strerror', None) or exc}); reinstall speech") from None


def names_text() -> str:
    return ", ".join(packaged_names())


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or bool(Path(text).suffix)


def resolve_model(model: str | os.PathLike | None = None) -> ModelChoice:
    """The model file ``model`` stands for (see the module docstring): a :class:`ModelChoice`.

    Raises :class:`UnknownModelError` (bad input) for a name that is no packaged model and no file, and
    :class:`PackagedModelError` (exit 1) when a packaged model's file is missing.
    """
    if model is None:
        model = DEFAULT_MODEL
    if not isinstance(model, str) and isinstance(model, os.PathLike):
        return ModelChoice(Path(model))
    if not isinstance(model, str):
        raise UnknownModelError(f"model must be a packaged model name ({names_text()}) or a path to a .ckpt or "
                                f".onnx file, got {type(model).__name__}", param="model")
    path = Path(model)
    if path.is_file() or _looks_like_path(model):
        return ModelChoice(path)
    if model in PACKAGED:
        packaged = packaged_path(model)
        if not packaged.is_file():
            raise PackagedModelError(f"the packaged model '{model}' is missing (no file {packaged}): the "
                                     "installation is incomplete; reinstall speech, or give a model file")
        return ModelChoice(packaged, model)
    what = "is a folder, not a model file" if path.is_dir() else "no such model file, and no packaged model of that name"
    raise UnknownModelError(f"{model}: {what}; expected a path to a .ckpt or .onnx file, or a packaged model name: "
                            f"{names_text()}", param="model")


def open_model(model: str | os.PathLike | None = None, backend: str = "auto", threads: int = 1):
    """Resolve ``model`` (:func:`resolve_model`) and open it: ``(scorer, choice)``. A file given by path that
    cannot be used is the loader's :class:`~speech.model.model_file.ModelFileError` (bad input, naming it); a packaged
    one is a :class:`PackagedModelError` (exit 1)."""
    from speech.model.model_file import ModelFileError
    from speech.runtime.scorers import load_scorer

    choice = resolve_model(model)
    if choice.name is not None and backend == "torch":
        raise UnknownModelError(f"the packaged model '{choice.name}' is an ONNX file; backend 'torch' needs a .ckpt "
                                "checkpoint (use 'auto' or 'onnx')", param="backend")
    if choice.name is None:
        if not choice.path.exists():
            raise UnknownModelError(f"{choice.path}: no such model file; expected a path to a .ckpt or .onnx file, "
                                    f"or a packaged model name: {names_text()}", param="model")
        return load_scorer(choice.path, backend, threads), choice
    try:
        return load_scorer(choice.path, backend, threads), choice
    except ModelFileError as exc:
        message = " ".join(str(exc).split())
        raise PackagedModelError(f"the packaged model '{choice.name}' cannot be used ({message}): the installation "
                                 "is damaged; reinstall speech, or give a model file") from None
