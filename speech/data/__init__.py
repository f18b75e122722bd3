"""Speech Commands data layer: folder scan and splits (no decoding), memory-mapped waveform cache, noise.

Typical use::

    index = build_index("data/speech_commands_v0.02", labels="12")
    train = cached_waveforms(index.splits["training"], "cache/")   # int16 memmap (N, 16000)
    noise = load_noise(index)

The names below load their module on first use, so that the runtime importing ``speech.data.labels`` for two label
constants loads nothing else of the data layer (the index, the cache, the splits).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "speech.data.cache": ("CachedSplit", "cache_key", "cached_waveforms"),
    "speech.data.decode": ("decode_int16",),
    "speech.data.errors": ("CacheError", "DatasetError"),
    "speech.data.index": ("DatasetIndex", "Example", "build_index", "parse_clip_name"),
    "speech.data.labels": ("LABELS_12", "SILENCE_LABEL", "UNKNOWN_LABEL", "resolve_labels"),
    "speech.data.noise": ("generated_noise", "load_noise"),
    "speech.data.splits": ("SPLITS", "SplitSettings", "speaker_split", "which_set"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'speech.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value
