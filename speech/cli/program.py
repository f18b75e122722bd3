"""How to call ``speech`` again from here: the program the "Next:" lines of a command print.

The README's set-up installs into ``.venv`` and never puts ``.venv/bin`` on the PATH, so a bare ``speech`` in a
printed command would fail where the command that printed it ran. :func:`program` gives the form that runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def program() -> str:
    """``speech`` when that name on the PATH is this installation's; else this installation's ``speech`` script as
    a user would type it (relative to the working folder when it lies below it, e.g. ``.venv/bin/speech``, else
    absolute); else ``python -m speech`` with this interpreter. Shell-quoted."""
    script = Path(sys.executable).parent / "speech"
    found = shutil.which("speech")
    try:
        if found and script.is_file() and os.path.samefile(found, script):
            return "speech"
    except OSError:
        pass
    if script.is_file():
        relative = os.path.relpath(script)
        return shlex.quote(relative if not relative.startswith("..") else str(script))
    return f"{shlex.quote(sys.executable)} -m speech"
