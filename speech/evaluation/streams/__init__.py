"""Evaluation on generated streams of held-out speakers: ``speech stream-test`` and ``speech calibrate``.

One pipeline (:mod:`~speech.evaluation.streams.experiment`): check the outputs, gather the clips
(:mod:`~speech.evaluation.streams.source`), build the streams and score them once
(:mod:`~speech.evaluation.streams.build`, :mod:`~speech.evaluation.streams.recording`, and a running-speech stream:
:mod:`~speech.evaluation.streams.running`); then an analysis replays the stored scores under any detector
settings: the stream test (:mod:`~speech.evaluation.streams.testing`: :mod:`~speech.evaluation.streams.figures`,
detections matched to words by :mod:`~speech.evaluation.streams.matching`) or the calibration
(:mod:`~speech.evaluation.streams.calibration`, its maths in :mod:`~speech.evaluation.streams.fitting`).

The runtime these streams exercise (engine, detection, thresholds) is :mod:`speech.streaming`.
"""
