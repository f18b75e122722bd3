"""Ensembles: several trained recognisers run as one model whose class probabilities are their average.

Averaging models trained with different seeds is the plainest way to cut the variance of a classifier trained on
little data. In a stream it matters most where a single model is confidently wrong (a non-keyword read as a
keyword): two models rarely make the same confident mistake. Measured in the README ("Live microphone and
streaming").

:func:`build_ensemble` checks that the members agree on what goes in and out (labels, front-end settings) and
returns a :class:`~speech.model.recogniser.Recogniser` whose classifier is an :class:`EnsembleClassifier`. The
ensemble takes the features of the first member's normaliser and maps them onto each member's own normalisation
(one affine map per coefficient), so the front end runs once per window whatever the number of members. Its
output is the logarithm of the averaged probabilities, so a softmax of it gives the average back exactly: the
ONNX export, the scorers, the streaming engine and calibration treat it like any single model.

Metadata: ``classifier`` holds the first member's settings, ``num_parameters`` the members' total and the
``ensemble`` section one entry per member (file, parameters, classifier settings). The ``data`` record becomes
the union of the members' training speakers, so the held-out checks refuse a clip that any member trained on; the
members must share the split settings for the held-out partition to be one. A member's calibrated thresholds do
not hold for the ensemble and are left out: calibrate the ensemble itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from speech.classifiers import settings_dict
from speech.data.record import DataRecord, speakers_hash
from speech.errors import SpeechError
from speech.model.recogniser import Recogniser

log = logging.getLogger(__name__)

# the split settings every member must share for the ensemble's held-out partition to be well defined (in the
# record's spelling, as the error names them)
SHARED_SPLIT_FIELDS = ("root", "split_rule", "validation_percent", "testing_percent", "silence_percent", "seed")


class EnsembleError(SpeechError, ValueError):
    """Models that cannot be combined; the message names the member and what differs."""


class EnsembleClassifier(nn.Module):
    """Normalised features ``(batch, frames, n_mfcc)`` of the first member -> log of the members' mean
    probabilities ``(batch, classes)``."""

    def __init__(self, recognisers: Sequence[Recogniser]) -> None:
        super().__init__()
        reference = recognisers[0].frontend
        self.members = nn.ModuleList(r.classifier for r in recognisers)
        self.config = recognisers[0].classifier.config
        # member i sees (raw - mean_i) / std_i = feats * (std_0 / std_i) + (mean_0 - mean_i) / std_i
        stds = torch.stack([r.frontend.std for r in recognisers])
        means = torch.stack([r.frontend.mean for r in recognisers])
        self.register_buffer("scale", reference.std / stds)
        self.register_buffer("shift", (reference.mean - means) / stds)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        total = None
        for i, member in enumerate(self.members):
            probs = torch.softmax(member(feats * self.scale[i] + self.shift[i]), dim=-1)
            total = probs if total is None else total + probs
        return torch.log((total / len(self.members)).clamp_min(1e-30))


def merge_records(records: Sequence[dict | None], names: Sequence[str]) -> dict | None:
    """One ``data`` record for the ensemble: the first member's, with every member's training speakers and files.

    None when no member has a record; raises :class:`EnsembleError` when some members have none (their training
    speakers are unknown) or when the members were split differently."""
    parsed = [DataRecord.from_dict(r) for r in records]
    if all(r is None for r in parsed):
        return None
    missing = [name for name, r in zip(names, parsed, strict=True) if r is None]
    if missing:
        raise EnsembleError(f"{missing[0]}: carries no record of its training data, unlike {names[0]}; the "
                            "ensemble could not check that its test clips are unseen")
    first = parsed[0]
    merged = first.to_dict()
    for name, record in zip(names[1:], parsed[1:], strict=True):
        values = record.to_dict()
        for key in SHARED_SPLIT_FIELDS:
            if values[key] != merged[key]:
                raise EnsembleError(f"{name}: trained with {key} {values[key]!r}, but {names[0]} with "
                                    f"{merged[key]!r}; the members of an ensemble must share the data split")
    speakers = sorted({s for r in parsed for s in r.training_speakers})
    merged.update(
        training_speakers=speakers,
        training_files=sorted({f for r in parsed for f in r.training_files}),
        speakers_hash=speakers_hash(speakers),
        extra_roots=list(dict.fromkeys(root for r in parsed for root in r.extra_roots)),
        sources=list({s.root: s.to_dict() for r in parsed for s in r.sources}.values()),
        speakers={**first.speakers, "training": len(speakers)},
    )
    return merged


def build_ensemble(recognisers: Sequence[Recogniser], names: Sequence[str] | None = None) -> Recogniser:
    """One :class:`Recogniser` averaging the probabilities of ``recognisers`` (two or more; ``names``, e.g. their
    files, are used in errors and stored in the ``ensemble`` section). Raises :class:`EnsembleError` when the
    labels or the front-end settings differ, or when the members were trained on different splits."""
    names = [str(n) for n in (names or [f"model {i + 1}" for i in range(len(recognisers))])]
    if len(recognisers) < 2:
        raise EnsembleError(f"an ensemble needs at least two models, got {len(recognisers)}")
    if len(names) != len(recognisers):
        raise ValueError(f"{len(names)} names for {len(recognisers)} models")
    first = recognisers[0]
    for name, r in zip(names[1:], recognisers[1:], strict=True):
        if r.labels != first.labels:
            raise EnsembleError(f"{name}: labels {r.labels} differ from {names[0]}'s {first.labels}")
        if r.frontend.config != first.frontend.config:
            raise EnsembleError(f"{name}: front-end settings {r.frontend.config.to_dict()} differ from "
                                f"{names[0]}'s {first.frontend.config.to_dict()}; the members must share one front end")
    data = merge_records([r.sections.get("data") for r in recognisers], names)
    if any(r.sections.get("detection") for r in recognisers):
        log.info("the members' calibrated thresholds do not hold for the ensemble and are left out; calibrate it")
    ensemble = Recogniser(first.labels, first.frontend.config, first.classifier.config)
    ensemble.frontend.load_state_dict(first.frontend.state_dict())
    ensemble.classifier = EnsembleClassifier(recognisers)
    ensemble.sections = {
        "ensemble": {
            "members": [
                {"file": Path(name).name, "num_parameters": int(r.classifier.num_parameters),
                 "classifier": settings_dict(r.classifier.config)}
                for name, r in zip(names, recognisers, strict=True)
            ],
            "combine": "mean of the members' probabilities",
        },
    }
    if data is not None:
        ensemble.sections["data"] = data
    return ensemble.eval()


def load_ensemble(paths: Sequence[str | Path]) -> Recogniser:
    """The recogniser of one ``.ckpt`` path, or the ensemble (:func:`build_ensemble`) of several, each loaded
    safely (:func:`speech.model.checkpoint.load_recogniser`). Raises ``ValueError`` for no path."""
    from speech.model.checkpoint import load_recogniser

    paths = list(paths)
    if not paths:
        raise ValueError("no checkpoint given")
    for i, path in enumerate(paths):  # one model twice is no ensemble: it would only cost twice the time
        for other in paths[:i]:
            if Path(path).resolve() == Path(other).resolve():
                raise EnsembleError(f"{path} is given twice; an ensemble needs different models (e.g. other seeds)")
    if len(paths) == 1:
        return load_recogniser(paths[0])
    return build_ensemble([load_recogniser(p) for p in paths], names=[str(p) for p in paths])
