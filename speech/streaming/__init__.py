"""Streaming keyword spotting: resampling, incremental MFCC, sliding-window scoring, detection, sources.

Typical use::

    from speech.inference import load_scorer
    from speech.streaming import StreamingRecogniser, StreamingConfig

    engine = StreamingRecogniser(load_scorer("model.onnx"), StreamingConfig(hop_ms=100), input_rate=48_000)
    for chunk in chunks:                      # int16 or float PCM at 48 kHz, any size
        for detection in engine.feed(chunk):  # Detection(label, score, time in seconds)
            print(detection)
"""

from speech.streaming.detection import (
    NEVER_REPORTED,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    CommandDetector,
    Detection,
    DetectorConfig,
)
from speech.streaming.engine import (
    HopResult,
    StreamingConfig,
    StreamingRecogniser,
    stream_array,
    to_float_mono,
)
from speech.streaming.frames import IncrementalFeatures, frame_levels_db
from speech.streaming.resample import StreamResampler

__all__ = [
    "NEVER_REPORTED",
    "SILENCE_LABEL",
    "UNKNOWN_LABEL",
    "CommandDetector",
    "Detection",
    "DetectorConfig",
    "HopResult",
    "IncrementalFeatures",
    "StreamResampler",
    "StreamingConfig",
    "StreamingRecogniser",
    "frame_levels_db",
    "stream_array",
    "to_float_mono",
]
