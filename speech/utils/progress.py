"""Progress of long library calls (decoding a cache, downloading, extracting, synthesising), without output.

A function that takes ``progress`` calls it with a :class:`Step` as it goes. ``progress`` may be a callback
(``speech.cli.progress.ProgressBars`` draws rich bars for the command line), ``True`` (log a line at most every
10 % through :mod:`logging`), or ``False``/``None`` (nothing). Library code never prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("speech.utils.progress")


@dataclass(frozen=True)
class Step:
    """``done`` of ``total`` (None: unknown) ``unit`` (``"clips"``, ``"bytes"``, ...) of the task ``what``."""

    what: str
    done: int
    total: int | None
    unit: str = "items"

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total


ProgressCallback = Callable[[Step], None]


class _LogEveryTenth:
    """Logs a task's start, each further tenth and its end."""

    def __init__(self) -> None:
        self._shown: dict[str, int] = {}

    def __call__(self, step: Step) -> None:
        tenth = 10 * step.done // step.total if step.total else 0
        if self._shown.get(step.what, -1) < tenth:  # the start (tenth 0), each further tenth, the end (10)
            self._shown[step.what] = tenth
            total = f"/{step.total:,}" if step.total is not None else ""
            log.info("%s: %s%s %s", step.what, f"{step.done:,}", total, step.unit)


def _ignore(step: Step) -> None:
    return None


def reporter(progress: ProgressCallback | bool | None) -> ProgressCallback:
    """The callback for a ``progress`` argument (see the module docstring)."""
    if callable(progress):
        return progress
    return _LogEveryTenth() if progress else _ignore
