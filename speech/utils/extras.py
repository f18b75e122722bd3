"""Which optional parts of the install are present.

The base install (``pip install .``) runs exported models: NumPy, ONNX Runtime, soundfile, sounddevice, rich.
Training, checkpoints, export, evaluation and plots need the ``train`` extra (``pip install ".[train]"``:
torch, torchaudio, Lightning, ...). Code that needs it calls :func:`require_training_extra` first, so a user of
the base install gets one line that says what to install instead of an ImportError.
"""

from __future__ import annotations

import importlib.util

from speech.errors import SpeechError

TRAINING_EXTRA_MODULES = ("torch", "torchaudio", "lightning", "torchmetrics", "onnx", "matplotlib")
INSTALL_TRAINING_EXTRA = "pip install 'speech[train]'"


class MissingExtraError(SpeechError, ImportError):
    """A feature of the ``train`` extra was asked for on the base install; the message says what to install
    (exit 2: the install, not the program, lacks it)."""


def missing_training_modules() -> list[str]:
    """The modules of the training extra that cannot be imported here (empty on a full install)."""
    return [name for name in TRAINING_EXTRA_MODULES if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        return False


def require_training_extra(what: str, instead: str | None = None) -> None:
    """Raise :class:`MissingExtraError` ("``what`` needs the training extra ...; ``instead``") unless it is
    installed. ``instead``: what a user of the base install can do instead, if anything."""
    missing = missing_training_modules()
    if missing:
        alternative = f"; {instead}" if instead else ""
        raise MissingExtraError(
            f"{what} needs the training extra ({missing[0]} is not installed): {INSTALL_TRAINING_EXTRA}"
            f"{alternative}"
        )
