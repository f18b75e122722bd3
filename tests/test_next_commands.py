"""Issue #36 rows 5 and 7: the "Next:" commands a command prints run as printed. The README's set-up never puts
``.venv/bin`` on the PATH, so they call ``speech`` the way it runs from there (``.venv/bin/speech``); the
quickstart's log shows its steps, not Lightning's model summary."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PLAIN_PATH, REPO, SC_V2_TEST
from conftest import SPEECH_SCRIPT as SCRIPT


def program_in(cwd: Path, path: str) -> str:
    code = "from speech.cli.program import program; print(program())"
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, "PATH": path},
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not SCRIPT.is_file(), reason="speech is not installed as a script beside this interpreter")
def test_the_program_printed_is_the_one_that_runs(tmp_path):
    inside = program_in(REPO, PLAIN_PATH)
    assert inside == shlex.quote(os.path.relpath(SCRIPT, REPO))  # .venv/bin/speech in the checkout
    assert program_in(tmp_path, PLAIN_PATH) == shlex.quote(str(SCRIPT))  # elsewhere: the whole path
    assert program_in(REPO, f"{SCRIPT.parent}:{PLAIN_PATH}") == "speech"  # on the PATH: its name
    other = tmp_path / "bin"
    other.mkdir()
    (other / "speech").write_text("#!/bin/sh\nexit 3\n")
    (other / "speech").chmod(0o755)
    assert program_in(REPO, f"{other}:{SCRIPT.parent}:{PLAIN_PATH}") != "speech"  # another 'speech' first: not it
    for cwd, form in ((REPO, inside), (tmp_path, program_in(tmp_path, PLAIN_PATH))):
        done = subprocess.run([*shlex.split(form), "--version"], cwd=cwd, env={**os.environ, "PATH": PLAIN_PATH},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.startswith("speech "), done.stderr


@pytest.mark.skipif(not SCRIPT.is_file(), reason="speech is not installed as a script beside this interpreter")
def test_the_quickstart_next_lines_run_as_printed(tiny_quickstart, tmp_path):
    """The quickstart run as the README's first command runs it (from the checkout, .venv/bin off the PATH), at a
    tiny size (conftest's ``tiny_quickstart``); then its Next: lines, each as printed. Placeholders are filled
    (``some.wav``: a real clip); the microphone line needs a microphone and Ctrl-C (the microphone path:
    test_live_microphone.py); the download reaches a closed local port instead of the internet (nothing else of the line changed), and the training on
    the downloaded set only parses its config (``--print_config``): no network and no GPU here."""
    env = {**os.environ, "PATH": PLAIN_PATH, "OMP_NUM_THREADS": "1"}
    prog = shlex.quote(os.path.relpath(SCRIPT, REPO))
    _, done = tiny_quickstart  # run as the README's first command runs it (conftest)
    printed = done.stdout + done.stderr
    assert "Total params" not in printed and "FLOPs" not in printed and "| Name" not in printed  # no layer table
    lines = done.stdout.split("Next:\n", 1)[1].strip().splitlines()
    commands = [shlex.split(line.split("#")[0]) for line in lines]
    assert len(commands) == 6 and all(c[: len(shlex.split(prog))] == shlex.split(prog) for c in commands)
    packaged, mic, wav, download, train, synth = (c[len(shlex.split(prog)) :] for c in commands)
    assert packaged == ["live"]  # the packaged model (issue #37) comes first
    assert mic[0] == "live" and len(mic) == 2 and Path(mic[1]).is_file()

    def run(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
        return subprocess.run([*(shlex.split(prog) if cwd == REPO else [str(SCRIPT)]), *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)

    clip = next((SC_V2_TEST / "yes").glob("*.wav"))
    assert wav[-2:] == ["--wav", "some.wav"]
    result = run([*wav[:-1], str(clip)])
    assert result.returncode == 0, result.stderr
    work = tmp_path / "work"  # the relative folders of the lines (data/...) go below a scratch folder
    work.mkdir()
    result = run(synth, cwd=work)
    assert result.returncode == 0 and (work / "data" / "mine" / "word1").is_dir(), result.stderr[-2000:]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    result = run([*download, "--url-base", closed, "--no-progress"], cwd=work)
    assert result.returncode == 1 and "cannot connect" in result.stderr and not (work / "data" / "speech_commands_v0.02.tar.gz").exists()
    result = run([*train, "--print_config"])
    assert result.returncode == 0 and "speech_commands_v0.02" in result.stdout, result.stderr[-2000:]
