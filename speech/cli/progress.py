"""Rich progress bars on stderr for the library's :class:`speech.utils.progress.Step` reports (stdout stays clean), or
plain log lines when stderr is not a terminal."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from speech.utils.progress import Step, reporter


def on_terminal() -> bool:
    """Whether stderr is a terminal (bars) or a file or pipe (plain lines)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBars:
    """A ``progress`` callback that draws one bar per task. The display stops by itself once every task on it
    has finished (so it never overlaps another live display, e.g. Lightning's); use it as a context manager so
    that it also stops when a call fails. When stderr is not a terminal (a log file, a pipe), bars would reach
    it only at the end: it logs a plain line at the start, every tenth and the end of each task instead."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bars: dict[str, Progress] = {}  # one per unit: bytes and counts want different columns
        self._tasks: dict[str, tuple[Progress, TaskID]] = {}
        self._lines = reporter(True) if enabled and not on_terminal() else None

    def _bar(self, unit: str) -> Progress:
        kind = "bytes" if unit == "bytes" else "count"
        if kind not in self._bars:
            columns = (
                (DownloadColumn(), TransferSpeedColumn())
                if kind == "bytes"
                else (MofNCompleteColumn(), TimeElapsedColumn())
            )
            bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), *columns, TimeRemainingColumn(),
                console=Console(stderr=True), disable=not self.enabled,
            )  # fmt: skip
            bar.start()
            self._bars[kind] = bar
        return self._bars[kind]

    def __call__(self, step: Step) -> None:
        if self._lines is not None:
            self._lines(step)
            return
        if step.what not in self._tasks:
            bar = self._bar(step.unit)
            self._tasks[step.what] = (bar, bar.add_task(step.what, total=step.total))
        bar, task = self._tasks[step.what]
        bar.update(task, completed=step.done, total=step.total)
        if step.finished and all(t.finished for t in bar.tasks):
            bar.stop()
            self._bars = {kind: b for kind, b in self._bars.items() if b is not bar}
            self._tasks = {what: entry for what, entry in self._tasks.items() if entry[0] is not bar}

    @property
    def showing(self) -> set[str]:
        """The kinds of bar (``"bytes"``, ``"count"``) on screen now; empty once the display has stopped."""
        return set(self._bars)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.stop()
        self._bars.clear()
        self._tasks.clear()

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
