"""speech: keyword recognition with an MFCC front end and a bidirectional GRU (PyTorch Lightning).

The public API (imported on first use, so ``import speech`` stays light)::

    import speech

    model = speech.load("model.onnx")     # speech.Model, from a .ckpt or .onnx file
    model.predict("clip.wav")             # {label: probability}
    model.stream(chunks, sample_rate=48_000)  # Detection(label, score, time) as words are decided

    run = speech.train("configs/quickstart.yaml", {"data.root": "data/mine", "data.labels": "all"})  # a run folder

``speech.train`` (:func:`speech.training.train.train`) needs the training extra (torch, Lightning).

``speech.Scorer`` is the protocol of the model back ends (``speech.runtime.scorers.TorchScorer``, ``OnnxScorer``).
``speech.SpeechError`` is the base of every error about the input (``param``: the parameter it concerns,
``exit_code``: 2 bad input, 1 a failure while running; :mod:`speech.errors`).
"""

from __future__ import annotations

from speech.version import __version__ as __version__

__all__ = ["Model", "Scorer", "SpeechError", "load", "train"]


def __getattr__(name: str):
    if name in ("Model", "load"):
        from speech import api

        return getattr(api, name)
    if name == "train":
        from speech.training.train import train

        return train
    if name == "SpeechError":
        from speech.errors import SpeechError

        return SpeechError
    if name == "Scorer":
        from speech.runtime.scorers import Scorer

        return Scorer
    raise AttributeError(f"module 'speech' has no attribute {name!r}")
