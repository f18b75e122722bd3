"""Classification metrics of one scorer on labelled clips: confusion matrix, accuracy, macro-F1, per-class
precision/recall/F1 and the most confused pairs. Pure functions on arrays.

Confusion matrices are ``(classes, classes)`` int64 with rows = true class, columns = predicted class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from speech.evaluation.errors import EvaluationError


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts; row = true class, column = predicted class."""
    targets = np.asarray(targets, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    if targets.shape != predictions.shape:
        raise ValueError(f"targets {targets.shape} and predictions {predictions.shape} differ in length")
    for name, values in (("targets", targets), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), found {values.min()}..{values.max()}")
    flat = np.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


@dataclass
class ClassMetrics:
    """One class: precision, recall and F1 in [0, 1] (0 when undefined), support = true clips of the class."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int  # clips predicted as this class


@dataclass
class ConfusedPair:
    """``count`` clips of class ``true`` predicted as ``predicted`` (``fraction`` of the true class's clips)."""

    true: str
    predicted: str
    count: int
    fraction: float


@dataclass
class Metrics:
    """Everything derived from one confusion matrix."""

    labels: list[str]
    confusion: np.ndarray  # (C, C) int64, rows = true
    accuracy: float  # trace / sum, in [0, 1]
    macro_f1: float  # torchmetrics' macro F1 (classes with clips or predictions), as training logs it
    per_class: list[ClassMetrics]
    confused_pairs: list[ConfusedPair]
    macro_f1_present: float | None = None  # mean F1 of the classes with clips, when some class has none

    @property
    def num_clips(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "macro_f1_present": self.macro_f1_present,
            "clips": self.num_clips,
            "per_class": [vars(c).copy() for c in self.per_class],
            "confused_pairs": [vars(p).copy() for p in self.confused_pairs],
            "confusion": {"labels": list(self.labels), "matrix": self.confusion.tolist()},
        }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = num.astype(np.float64), den.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def most_confused_pairs(confusion: np.ndarray, labels: list[str], top: int = 10) -> list[ConfusedPair]:
    """The ``top`` largest off-diagonal cells, biggest first (ties: by true then predicted class index)."""
    c = np.asarray(confusion)
    support = c.sum(axis=1)
    cells = [
        (int(c[i, j]), i, j) for i in range(c.shape[0]) for j in range(c.shape[1]) if i != j and c[i, j] > 0
    ]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [ConfusedPair(labels[i], labels[j], n, n / int(support[i])) for n, i, j in cells[:top]]


def classification_scores(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict[str, object]:
    """Accuracy, macro-F1 and per-class precision/recall/F1 from torchmetrics, the definitions training logs
    (``val/acc`` is micro accuracy, ``val/f1`` macro F1).

    Macro-F1 follows torchmetrics: classes with neither clips nor predictions are left out of the mean, a class
    predicted but absent from the data counts with F1 0. Undefined per-class values are 0.
    """
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    preds = torch.as_tensor(np.asarray(predictions, dtype=np.int64))
    target = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    return {
        "accuracy": float(multiclass_accuracy(preds, target, num_classes, average="micro")),
        "macro_f1": float(multiclass_f1_score(preds, target, num_classes, average="macro")),
        "precision": multiclass_precision(preds, target, num_classes, average="none").numpy().astype(np.float64),
        "recall": multiclass_recall(preds, target, num_classes, average="none").numpy().astype(np.float64),
        "f1": multiclass_f1_score(preds, target, num_classes, average="none").numpy().astype(np.float64),
    }


def metrics_from_confusion(confusion: np.ndarray, labels: list[str], top_pairs: int = 10) -> Metrics:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the most confused pairs.

    The scores come from torchmetrics (:func:`classification_scores`) on the clips the matrix counts, so they
    are the numbers training logs for the same predictions. When some classes have no clips (a folder that holds
    some of the model's labels), ``macro_f1_present`` is the mean F1 over the classes that have clips: torchmetrics'
    macro F1 counts each absent class the model predicted now and then as an F1 of 0.
    """
    c = np.asarray(confusion, dtype=np.int64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] != len(labels):
        raise ValueError(f"confusion matrix of shape {c.shape} does not fit {len(labels)} labels")
    total = int(c.sum())
    if total == 0:
        raise EvaluationError("no clips were evaluated (the confusion matrix is empty)")
    n = len(labels)
    cells = np.repeat(np.arange(n * n), c.ravel())
    scores = classification_scores(cells // n, cells % n, n)
    support = c.sum(axis=1)
    predicted = c.sum(axis=0)
    per_class = [
        ClassMetrics(
            labels[i],
            float(scores["precision"][i]),
            float(scores["recall"][i]),
            float(scores["f1"][i]),
            int(support[i]),
            int(predicted[i]),
        )
        for i in range(n)
    ]
    present = support > 0
    return Metrics(
        labels=list(labels),
        confusion=c,
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        macro_f1_present=None if present.all() else float(np.mean(scores["f1"][present])),
        per_class=per_class,
        confused_pairs=most_confused_pairs(c, labels, top_pairs),
    )


