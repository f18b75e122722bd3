"""The learning-rate schedule shared by the keyword module and the encoder pretraining: warm-up, then cosine."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine decay to ``final_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
