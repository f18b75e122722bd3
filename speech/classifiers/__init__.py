"""Classifier kinds: the networks that turn normalised features ``(batch, frames, n_mfcc)`` into logits
``(batch, classes)``, one file per kind in this folder, registered in :data:`KINDS`.

A kind's file defines ``SETTINGS``, a dataclass of plain settings whose ``__post_init__`` raises ``ValueError`` on a
value it cannot build, and ``NETWORK``, the ``nn.Module`` built as ``NETWORK(n_inputs, n_classes, settings)``, with
``forward(feats) -> logits``, ``config`` (its settings) and ``num_parameters``. Optional abilities, looked up by
the code that needs them: ``encode(feats) -> (frames, final state)`` (CTC pretraining, :mod:`speech.training.pretraining`)
and ``streaming_step`` with ``streaming_context`` (the stateful streaming graph, :mod:`speech.streaming.stateful`).

Settings travel as plain dictionaries with a ``"kind"`` key (configs, checkpoints, ONNX metadata), e.g.
``{"kind": "recurrent", "cell": "lstm", "bidirectional": false}``; a dictionary without one is the recurrent kind,
which is what every model file written before the registry holds. Adding a kind: write ``speech/classifiers/NAME.py``
and add its line to :data:`KINDS` (``tests/test_classifier_registry.py`` shows a kind added in a test).

Nothing here imports torch: reading a model file's metadata on the runtime install (no torch) needs only the kind
names; settings are checked in full where the network can be built.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, fields, is_dataclass

KINDS: dict[str, str] = {
    "recurrent": "speech.classifiers.recurrent",  # GRU / LSTM / plain RNN, bidirectional or not (the default)
}
DEFAULT_KIND = "recurrent"
KIND_KEY = "kind"


class ClassifierSettingsError(ValueError):
    """Classifier settings no network can be built from: an unknown kind, an unknown or invalid setting."""


def kind_module(kind: str):
    """The module of a registered kind (imports torch)."""
    if kind not in KINDS:
        raise ClassifierSettingsError(f"unknown classifier kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    return importlib.import_module(KINDS[kind])


def kind_of(settings) -> str:
    """The kind a settings dictionary (no ``"kind"``: :data:`DEFAULT_KIND`) or settings object names."""
    if isinstance(settings, dict):
        kind = settings.get(KIND_KEY, DEFAULT_KIND)
        if not isinstance(kind, str):
            raise ClassifierSettingsError(f"classifier kind must be a name, got {kind!r}")
        return kind
    return getattr(settings, KIND_KEY, DEFAULT_KIND)


def _coerced(cls, values: dict) -> dict:
    """``values`` with command-line strings (``--model.classifier.hidden_size 64`` arrives as ``"64"``) read as
    JSON (``true``/``false`` in any case) where the setting's default is not a string."""
    defaults = {f.name: f.default for f in fields(cls)}
    out = {}
    for key, value in values.items():
        if isinstance(value, str) and key in defaults and not isinstance(defaults[key], str):
            text = value.strip().lower() if value.strip().lower() in ("true", "false") else value
            try:
                value = json.loads(text)
            except ValueError:
                pass  # left as the string: the settings' own check names it
        out[key] = value
    return out


def classifier_settings(settings=None):
    """The settings object of any kind from ``settings``: a dictionary (with or without ``"kind"``), a settings
    object (returned as it is) or None (the default kind's defaults). Raises :class:`ClassifierSettingsError`
    with one line that names what is wrong and what is known."""
    if settings is not None and not isinstance(settings, dict):
        if is_dataclass(settings) and kind_of(settings) in KINDS:
            return settings
        raise ClassifierSettingsError(f"classifier settings must be a mapping with a 'kind', got {settings!r}")
    values = dict(settings or {})
    kind = kind_of(values)
    values.pop(KIND_KEY, None)
    cls = kind_module(kind).SETTINGS
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ClassifierSettingsError(f"unknown {kind} classifier settings {unknown}; expected some of {known}")
    values = _coerced(cls, values)
    for f in fields(cls):  # a number where a number belongs (a dataclass does not check its annotations)
        default, value = f.default, values.get(f.name, f.default)
        ok = (isinstance(value, bool) if isinstance(default, bool) else
              isinstance(value, int) and not isinstance(value, bool) if isinstance(default, int) else
              isinstance(value, int | float) and not isinstance(value, bool) if isinstance(default, float) else True)
        if not ok:
            wanted = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
            raise ClassifierSettingsError(f"{kind} classifier: {f.name} must be {wanted}, got {value!r}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ClassifierSettingsError(f"{kind} classifier: {exc}") from None


def settings_dict(settings) -> dict:
    """A settings object as the plain dictionary model files carry: ``{"kind": ..., **settings}``."""
    return {KIND_KEY: kind_of(settings), **{k: v for k, v in asdict(settings).items() if k != KIND_KEY}}


def has_stream_mode(classifier) -> bool:
    """Whether a built network runs as a stream with state (its settings say ``streams`` and it has
    ``streaming_step``): what the export, the scorers and the engine ask."""
    return bool(getattr(classifier.config, "streams", False)) and hasattr(classifier, "streaming_step")


def build_classifier(n_inputs: int, n_classes: int, settings=None):
    """The network ``settings`` (see :func:`classifier_settings`) describe, for ``n_inputs`` coefficients per frame
    and ``n_classes`` outputs."""
    config = classifier_settings(settings)
    return kind_module(kind_of(config)).NETWORK(n_inputs, n_classes, config)
