"""Errors raised by the data layer. Messages name the folder or file and what was expected."""

from __future__ import annotations

from speech.errors import SpeechError


class DatasetError(SpeechError, ValueError):
    """A data folder that does not fit any supported layout, or a request it cannot satisfy (exit 2)."""


class CacheError(SpeechError, RuntimeError):
    """A cache file that cannot be written or read without clobbering something that is not ours (exit 1)."""

    exit_code = 1
