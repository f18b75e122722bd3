"""The one error base of the library: :class:`SpeechError` (no torch, no numpy: importable anywhere).

Every error the library raises because of its *input* (a file, a folder, a setting, an output place) derives from
:class:`SpeechError`. It carries the parameter it concerns (``param``, the library's name for it, e.g.
``"out_dir"``, ``"split"``; each front end maps it to its own spelling, a command-line flag or a config key) and
the exit code a command line should end with (``exit_code``: 2 bad input, 1 a failure while running). The ``speech``
command maps them to exit codes in one place (``speech.cli._dispatch``); anything else that escapes a command is a
bug, reported as an internal error (exit 1).

Subclasses keep the built-in class they always had as a second base (``ValueError``, ``FileExistsError``,
``RuntimeError``), so ``except ValueError`` in older callers still catches them.
"""

from __future__ import annotations

BAD_INPUT = 2
RUNTIME_FAILURE = 1


class SpeechError(Exception):
    """An error a user can act on; the message names the file or setting and what was expected.

    ``param``: the parameter to change, when one is to blame; ``exit_code``: 2 for bad input (the default), 1 for a
    failure while running (a class attribute; a subclass or an instance may set another).
    """

    exit_code: int = BAD_INPUT

    def __init__(self, message: str = "", *, param: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.param = param
        if exit_code is not None:
            self.exit_code = exit_code


class SettingError(SpeechError, ValueError):
    """A setting (an option's value, a function argument) outside what is accepted."""


class InputFileError(SpeechError, ValueError):
    """An input file or folder that is missing or cannot be used."""


class OutputPlaceError(SpeechError, PermissionError):
    """An output file or folder that cannot be written there (read-only place, a file in the way)."""


class OutputExistsError(SpeechError, FileExistsError):
    """An output file or folder that exists (or is a folder where a file is wanted). ``param``: the parameter that
    names the output (``"out_dir"``, ``"json_path"``) or that would allow replacing it (``"overwrite"``)."""


class RuntimeFailure(SpeechError, RuntimeError):
    """A failure while running (a download, a subprocess, a lost device): exit 1."""

    exit_code = RUNTIME_FAILURE
