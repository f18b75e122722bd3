"""Helpers for the streaming CLI tests: a checkpoint that carries a record of its (declared) training data."""

from __future__ import annotations

from pathlib import Path

from conftest import SC_V2_TEST

from speech.data import SplitSettings, build_index
from speech.data.record import DataRecord
from speech.data.splits import DEFAULT_SEED
from speech.model.checkpoint import load_recogniser, save_checkpoint


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


def assert_budget_holds_except_over_target(summary: dict, printed: str) -> None:
    """Every keyword that calibration does not report over target keeps, with the others that meet it, within
    both budgets (its false accepts and false alarms with only it firing, at its threshold); the keywords over
    target are exactly those named, in the JSON and on their rows of the printed table."""
    rows = summary["per_keyword"]
    meeting = [row for row in rows if row["meets_target"]]
    assert sum(row["false_accepts"] for row in meeting) <= summary["budgets_in_streams"]["false_accepts"]
    assert sum(row["false_alarms"] for row in meeting) <= summary["budgets_in_streams"]["false_alarms"]
    assert summary["over_target"] == [row["keyword"] for row in rows if not row["meets_target"]]
    for row in rows:
        line = next(line for line in printed.splitlines() if line.split()[:1] == [row["keyword"]])
        assert ("OVER TARGET" in line) == (row["keyword"] in summary["over_target"]), line
