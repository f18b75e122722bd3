"""Errors raised by the data layer. Messages name the folder or file and what was expected."""

from __future__ import annotations


class DatasetError(ValueError):
    """A data folder that does not fit any supported layout, or a request it cannot satisfy."""


class CacheError(RuntimeError):
    """A cache file that cannot be written or read without clobbering something that is not ours."""
