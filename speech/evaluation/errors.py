"""Errors of an evaluation that cannot run as asked. Each names the parameter it is about (``param``), so that a
front end can point at its own spelling of it (a command-line flag, a config key) without the library naming one."""

from __future__ import annotations

from speech.errors import OutputExistsError, SpeechError

__all__ = ["EvaluationError", "OutputExistsError"]


class EvaluationError(SpeechError, ValueError):
    """An evaluation that cannot be run as asked (empty split, labels that do not fit, bad shapes, bad stream
    lengths). ``param``: the parameter to change, when one is to blame (e.g. ``"split"``, ``"minutes"``)."""

