"""Terminal output for ``speech live``: a rich Live panel, or one JSON object per detection."""

from __future__ import annotations

import json
import sys
from collections import deque
from typing import TextIO

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from speech.streaming.detection import Detection
from speech.streaming.engine import HopResult

METER_FLOOR_DB = -60.0


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``width`` cells filled to ``fraction`` (clipped to [0, 1])."""
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "█" * filled + "·" * (width - filled)


def top_scores(labels: list[str], scores: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` best ``(label, probability)`` pairs, best first."""
    order = np.argsort(-np.asarray(scores))[:k]
    return [(labels[i], float(scores[i])) for i in order]


class LiveDisplay:
    """Input level meter, top-3 scores of the latest window and a log of detections (newest first)."""

    def __init__(self, labels: list[str], source: str, history: int = 10, console: Console | None = None) -> None:
        self.labels = labels
        self.source = source
        self.detections: deque[Detection] = deque(maxlen=history)
        self.level_db = METER_FLOOR_DB
        self.last: HopResult | None = None
        self.stream_time = 0.0
        self.console = console or Console(stderr=False)
        self._live: Live | None = None

    def __enter__(self) -> LiveDisplay:
        self._live = Live(self.render(), console=self.console, refresh_per_second=12, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)

    def update(self, level_db: float, last: HopResult | None, stream_time: float, found: list[Detection]) -> None:
        self.level_db, self.last, self.stream_time = level_db, last, stream_time
        for detection in found:
            self.detections.appendleft(detection)
        if self._live is not None:
            self._live.update(self.render())

    def render(self) -> Panel:
        level = Text.assemble(
            ("input  ", "bold"),
            (bar((self.level_db - METER_FLOOR_DB) / -METER_FLOOR_DB, 40), "green" if self.level_db > -45 else "dim"),
            f"  {self.level_db:6.1f} dBFS   t = {self.stream_time:7.1f} s",
        )
        scores = Table.grid(padding=(0, 2))
        if self.last is not None:
            for label, p in top_scores(self.labels, self.last.scores):
                scores.add_row(f"{label:>10}", Text(bar(p, 30), style="cyan"), f"{p:5.2f}")
            if self.last.gated:
                scores.add_row("", Text("(quiet: below the energy gate, model skipped)", style="dim"), "")
        else:
            scores.add_row(Text("waiting for the first second of audio…", style="dim"))
        log = Table("time (s)", "word", "score", box=None, header_style="bold")
        for d in self.detections:
            log.add_row(f"{d.time:8.2f}", Text(d.label, style="bold yellow"), f"{d.score:.2f}")
        if not self.detections:
            log.add_row("", Text("no keyword yet", style="dim"), "")
        return Panel(Group(level, Text(""), scores, Text(""), log), title=f"speech live: {self.source}", subtitle="Ctrl-C to stop")


class JsonLines:
    """Prints each detection as one JSON object per line (``label``, ``score``, ``time`` in seconds)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __enter__(self) -> JsonLines:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, level_db: float, last: HopResult | None, stream_time: float, found: list[Detection]) -> None:
        for detection in found:
            self.stream.write(json.dumps(detection.to_dict()) + "\n")
        if found:
            self.stream.flush()
