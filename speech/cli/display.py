"""Terminal output for ``speech live``: a rich Live panel, or one JSON object per detection.

While audio comes, the panel shows the input level, the top-3 scores and the latest detections; when the input
ends (the end of a file or of stdin, ``--seconds``, Ctrl-C, a lost device) :meth:`LiveDisplay.end` replaces it
with the whole run: every detection in time order, a count per keyword and the length of the audio.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, deque
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


def keyword_counts(detections: list[Detection]) -> str:
    """``"yes x3, no x1"``: detections per keyword, most first (then alphabetical); ``"none"`` without any."""
    counts = Counter(d.label for d in detections)
    return ", ".join(f"{label} x{n}" for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


class LiveDisplay:
    """Input level meter, top-3 scores of the latest window and a log of detections (newest first); at the end of
    the input (:meth:`end`), every detection, a count per keyword and the length of the audio."""

    def __init__(self, labels: list[str], source: str, history: int = 10, console: Console | None = None) -> None:
        self.labels = labels
        self.source = source
        self.detections: deque[Detection] = deque(maxlen=history)
        self.found: list[Detection] = []  # every detection, in time order
        self.level_db = METER_FLOOR_DB
        self.last: HopResult | None = None
        self.stream_time = 0.0
        self.ended: tuple[float, str] | None = None  # (seconds of audio, why it ended) once the input has ended
        self.loudest_db = -math.inf  # the loudest chunk so far (RMS, dBFS)
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
            if not self.console.is_terminal:  # rich ends a piped panel without a newline
                self.console.line()

    def update(self, level_db: float, last: HopResult | None, stream_time: float, found: list[Detection]) -> None:
        self.level_db, self.last, self.stream_time = level_db, last, stream_time
        self.loudest_db = max(self.loudest_db, level_db)
        for detection in found:
            self.detections.appendleft(detection)
        self.found += found
        if self._live is not None:
            self._live.update(self.render())

    def end(self, seconds: float, why: str) -> None:
        """The input has ended after ``seconds`` of audio (``why``: e.g. "end of file"): show the whole run."""
        self.ended = (seconds, why)
        if self._live is not None:
            self._live.update(self.render())

    def summary(self) -> Panel:
        """The whole run: every detection in time order, the count per keyword, the audio's length."""
        seconds, why = self.ended
        log = Table("time (s)", "word", "score", box=None, header_style="bold")
        for d in self.found:
            log.add_row(f"{d.time:8.2f}", Text(d.label, style="bold yellow"), f"{d.score:.2f}")
        if not self.found:
            log.add_row("", Text("no keyword detected", style="dim"), "")
        loudest = f", loudest {self.loudest_db:.1f} dBFS" if math.isfinite(self.loudest_db) else ""
        total = Text.assemble((f"{len(self.found)} detection{'s' if len(self.found) != 1 else ''}", "bold"),
                              f": {keyword_counts(self.found)}")
        heard = Text(f"input  {seconds:.1f} s of audio{loudest}")
        return Panel(Group(heard, total, Text(""), log), title=f"speech live: {self.source}", subtitle=why)

    def render(self) -> Panel:
        if self.ended is not None:
            return self.summary()
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

    def end(self, seconds: float, why: str) -> None:
        """Nothing more to print: each detection was its own line."""

    def update(self, level_db: float, last: HopResult | None, stream_time: float, found: list[Detection]) -> None:
        for detection in found:
            self.stream.write(json.dumps(detection.to_dict()) + "\n")
        if found:
            self.stream.flush()
