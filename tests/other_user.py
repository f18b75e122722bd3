"""Running the ``speech`` CLI as a user who may not write somewhere (for the "unwritable output place" tests).

Root may write anywhere, so under root the command runs as ``nobody`` (``setpriv``). ``nobody`` may not be able to
read the checkout (a clone in a private ``mktemp -d`` folder, mode 700), so the ``speech`` package is copied into a
world-readable temporary folder first and put on ``PYTHONPATH``: the suite passes wherever it is cloned. When
``nobody`` cannot even run this interpreter (a virtual environment inside a private folder) the test is skipped,
saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


class OtherUser:
    """A world-readable scratch folder ``base`` with a copy of the package, and :meth:`run` to call the CLI
    there as a user without write permission to read-only folders (``readonly(name)`` makes one)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="speech-other-user-"))
        self.base.chmod(0o755)
        self.src = self.base / "src"
        shutil.copytree(REPO / "speech", self.src / "speech", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [self.src, *self.src.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        self._readonly: list[Path] = []
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                self.close()
                pytest.skip("running as root without setpriv: cannot act as a user without write permission")
            self.prefix = NOBODY
            probe = subprocess.run([*self.prefix, sys.executable, "-c", "import torch, numpy"], capture_output=True,
                                   text=True, timeout=120, cwd=self.base)  # fmt: skip
            if probe.returncode != 0:
                self.close()
                pytest.skip(f"user nobody cannot run {sys.executable} with its packages: {probe.stderr[-300:]}")

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
        env = {**os.environ, "HOME": str(self.base), "PYTHONPATH": str(self.src), "SPEECH_CACHE": str(self.base / "cache")}
        return subprocess.run([*self.prefix, sys.executable, "-m", "speech", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.base, env=env)  # fmt: skip

    def close(self) -> None:
        for path in self._readonly:
            path.chmod(0o755)
        shutil.rmtree(self.base, ignore_errors=True)
