"""Streaming keyword spotting: resampling, incremental MFCC, sliding-window scoring, detection, sources.

Typical use::

    from speech.runtime.scorers import load_scorer
    from speech.streaming import StreamingRecogniser, StreamingConfig

    engine = StreamingRecogniser(load_scorer("model.onnx"), StreamingConfig(hop_ms=100), input_rate=48_000)
    for chunk in chunks:                      # int16 or float PCM at 48 kHz, any size
        for detection in engine.feed(chunk):  # Detection(label, score, time in seconds)
            print(detection)
    engine.finish()                           # end of input: flush, so the last word is decided

This package is the runtime only. Test streams, their figures, threshold sweeps and the calibration of
per-keyword thresholds stored in a model are evaluation: :mod:`speech.evaluation.streams`.
"""

from speech.streaming.detection import (
    NEVER_REPORTED,
    CommandDetector,
    Detection,
    DetectorConfig,
    SmoothedScores,
    replay,
    smooth_scores,
)
from speech.streaming.engine import (
    HopResult,
    StreamingConfig,
    StreamingRecogniser,
    stream_array,
    to_float_mono,
)
from speech.streaming.frames import IncrementalFeatures, frame_levels_db

__all__ = [
    "NEVER_REPORTED",
    "CommandDetector",
    "Detection",
    "DetectorConfig",
    "HopResult",
    "IncrementalFeatures",
    "SmoothedScores",
    "StreamingConfig",
    "StreamingRecogniser",
    "frame_levels_db",
    "replay",
    "smooth_scores",
    "stream_array",
    "to_float_mono",
]
