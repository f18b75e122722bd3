"""Evaluation: a scorer on labelled 1 s clips -> confusion matrix, accuracy, macro-F1, per-class metrics.

One file per idea:

* :mod:`~speech.evaluation.metrics` -- the maths on arrays: confusion matrix, per-class precision/recall/F1
  (torchmetrics' definitions), most confused pairs;
* :mod:`~speech.evaluation.noise` -- background noise mixed in at a given SNR against active-speech power;
* :mod:`~speech.evaluation.scoring` -- a scorer run over waveforms in batches (clean or noisy), batch-1 latency;
* :mod:`~speech.evaluation.eval_set` -- one split of a data folder decoded for a model (:class:`EvalSet`);
* :mod:`~speech.evaluation.model_eval` -- one model file scored on a folder's held-out split
  (:class:`ModelEvaluation`, what :mod:`speech.evaluation.report` writes);
* :mod:`~speech.evaluation.errors` -- errors that name the parameter they are about (``param``);
* :mod:`~speech.evaluation.streams` -- generated streams of held-out speakers: the stream test and calibration.

Conventions: waveforms are ``(clips, samples)`` at 16 kHz, float32 in [-1, 1] or int16 (divided by 32768);
confusion matrices are ``(classes, classes)`` int64 with rows = true class, columns = predicted class.
"""

from speech.evaluation.errors import EvaluationError, OutputExistsError
from speech.evaluation.eval_set import EvalSet, evaluate_set, load_eval_set
from speech.evaluation.metrics import (
    ClassMetrics,
    ConfusedPair,
    Metrics,
    classification_scores,
    confusion_matrix,
    metrics_from_confusion,
    most_confused_pairs,
)
from speech.evaluation.model_eval import ModelEvaluation, clip_set_id, evaluate_model, model_names
from speech.evaluation.noise import (
    DEFAULT_NOISE_SEED,
    NoiseMix,
    mix_at_snr,
    noise_mixes,
    noise_offsets,
    reference_speech_power,
)
from speech.evaluation.scoring import (
    Latency,
    Result,
    evaluate_waves,
    evaluate_with_noise,
    measure_latency,
    predict,
)

__all__ = [
    "DEFAULT_NOISE_SEED",
    "ClassMetrics",
    "ConfusedPair",
    "EvalSet",
    "EvaluationError",
    "Latency",
    "Metrics",
    "ModelEvaluation",
    "NoiseMix",
    "OutputExistsError",
    "Result",
    "classification_scores",
    "clip_set_id",
    "confusion_matrix",
    "evaluate_model",
    "evaluate_set",
    "evaluate_waves",
    "evaluate_with_noise",
    "load_eval_set",
    "measure_latency",
    "metrics_from_confusion",
    "mix_at_snr",
    "model_names",
    "most_confused_pairs",
    "noise_mixes",
    "noise_offsets",
    "predict",
    "reference_speech_power",
]
