"""Speech Commands data layer: folder scan and splits (no decoding), memory-mapped waveform cache, noise.

Typical use::

    index = build_index("data/speech_commands_v0.02", labels="12")
    train = cached_waveforms(index.splits["training"], "cache/")   # int16 memmap (N, 16000)
    noise = load_noise(index)
"""

from speech.data.cache import CachedSplit, cache_key, cached_waveforms
from speech.data.decode import decode_int16
from speech.data.errors import CacheError, DatasetError
from speech.data.index import DatasetIndex, Example, build_index, parse_clip_name
from speech.data.labels import LABELS_12, SILENCE_LABEL, UNKNOWN_LABEL, resolve_labels
from speech.data.noise import generated_noise, load_noise
from speech.data.splits import SPLITS, SplitSettings, speaker_split, which_set

__all__ = [
    "LABELS_12",
    "SILENCE_LABEL",
    "SPLITS",
    "UNKNOWN_LABEL",
    "CacheError",
    "CachedSplit",
    "DatasetError",
    "DatasetIndex",
    "Example",
    "SplitSettings",
    "build_index",
    "cache_key",
    "cached_waveforms",
    "decode_int16",
    "generated_noise",
    "load_noise",
    "parse_clip_name",
    "resolve_labels",
    "speaker_split",
    "which_set",
]
