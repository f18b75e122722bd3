"""Running the ``speech`` CLI where it may not write (for the "unwritable output place" tests).

A folder made with mode 555 stops an ordinary user, not root. Under root the command therefore runs in a private
mount namespace (``unshare -m``) in which each such folder is bind-mounted read-only: the same user, the same
checkout and interpreter, but the kernel refuses every write there (``EROFS``, and ``os.access`` says so). That
needs nothing the user ``nobody`` would have to read, so it works wherever the suite is cloned (a private
``mktemp -d`` folder too). Where ``unshare`` is not allowed, it falls back to running as ``nobody`` with a copy of
the package in a world-readable folder, and skips, saying why, if ``nobody`` cannot run this interpreter.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


class OtherUser:
    """A scratch folder ``base`` (world-readable) and :meth:`run` to call the CLI there, unable to write into the
    folders made with :meth:`readonly`."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="speech-other-user-"))
        self.base.chmod(0o755)
        self._readonly: list[Path] = []
        self.mode = "user"  # an ordinary user: mode 555 is enough
        self.pythonpath = str(REPO)
        if os.geteuid() == 0:
            if _unshare_works():
                self.mode = "read-only mounts"
            elif shutil.which("setpriv"):
                self.mode = "nobody"
                src = self.base / "src"  # nobody may not read the checkout: a copy it can read
                shutil.copytree(REPO / "speech", src / "speech", ignore=shutil.ignore_patterns("__pycache__"))
                for path in [src, *src.rglob("*")]:
                    path.chmod(0o755 if path.is_dir() else 0o644)
                self.pythonpath = str(src)
                probe = subprocess.run([*NOBODY, sys.executable, "-c", "import torch, speech"], capture_output=True,
                                       text=True, timeout=120, cwd=self.base, env=self._env())  # fmt: skip
                if probe.returncode != 0:
                    self.close()
                    pytest.skip(f"as root, without unshare, and nobody cannot run {sys.executable}: {probe.stderr[-300:]}")
            else:
                self.close()
                pytest.skip("running as root without unshare or setpriv: cannot make a folder unwritable")

    def _env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.base), "PYTHONPATH": self.pythonpath,
                "SPEECH_CACHE": str(self.base / "cache")}  # fmt: skip

    def readable(self, path: Path, name: str | None = None) -> Path:
        """A world-readable copy of the file ``path`` in the scratch folder."""
        target = self.base / (name or path.name)
        shutil.copy(path, target)
        target.chmod(0o644)
        return target

    def folder(self, name: str, mode: int = 0o777) -> Path:
        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        return path

    def readonly(self, name: str = "ro") -> Path:
        path = self.folder(name, 0o555)
        self._readonly.append(path)
        return path

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "speech", *args]
        if self.mode == "nobody":
            command = [*NOBODY, *command]
        elif self.mode == "read-only mounts":
            mounts = " && ".join(f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))} && "
                                 f"mount -o remount,bind,ro {shlex.quote(str(p))}" for p in self._readonly)  # fmt: skip
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c", f'{mounts or "true"} && exec "$@"',
                       "sh", *command]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.base, env=self._env())

    def close(self) -> None:
        for path in self._readonly:
            path.chmod(0o755)
        shutil.rmtree(self.base, ignore_errors=True)
