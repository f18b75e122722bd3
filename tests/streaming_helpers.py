"""Helpers for the streaming CLI tests: a checkpoint that carries a record of its (declared) training data."""

from __future__ import annotations

from pathlib import Path

from conftest import SC_V2_TEST

from speech.checkpoint import load_recogniser, save_checkpoint
from speech.data import SplitSettings, build_index
from speech.data.record import DataRecord
from speech.data.splits import DEFAULT_SEED


def recorded_checkpoint(checkpoint: Path, out: Path, validation: float = 10.0, testing: float = 10.0) -> Path:
    """``checkpoint`` saved again with a data record: a speaker split of the shared clips with ``validation`` /
    ``testing`` percent held out and the rest declared as its training speakers.

    (The tiny test model was really trained on clips of all speakers; the record only drives the commands'
    split defaults and their refusal of training speakers, which is what these tests check.)
    """
    split = SplitSettings("speaker", validation, testing, seed=DEFAULT_SEED)
    index = build_index(SC_V2_TEST, "12", split)
    record = DataRecord.from_index(index, labels="12", split=split)
    model = load_recogniser(checkpoint)
    model.sections["data"] = record.to_dict()
    return save_checkpoint(model, out)


def held_out_speakers(partition: str, validation: float = 10.0, testing: float = 10.0) -> set[str]:
    """Speakers of one partition of the split :func:`recorded_checkpoint` declares."""
    index = build_index(SC_V2_TEST, "12", SplitSettings("speaker", validation, testing, seed=DEFAULT_SEED))
    return index.speakers({"validation": "validation", "test": "testing"}[partition])
