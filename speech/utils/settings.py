"""Settings dataclasses <-> plain dictionaries (what checkpoints and ONNX metadata store)."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

T = TypeVar("T")


def settings_from_dict(cls: type[T], values: dict, what: str) -> T:
    """Build the dataclass ``cls`` from ``values``; unknown keys are an error naming ``what`` and the known keys."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}; expected some of {sorted(known)}")
    return cls(**values)
