"""Issue #36 row 6: when a file (or stdin) ends, ``speech live``'s human output is the whole run: every detection
(not only the panel's last ten), a count per keyword, the length of the audio, a final newline when piped; no
"Ctrl-C to stop" once the input has ended, and no level meter left at the level of the last chunk."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from conftest import clips_the_model_knows

from speech.audio.io import float_to_int16, load_audio, write_wav
from speech.cli import main
from speech.cli.display import keyword_counts


@pytest.fixture(scope="module")
def many_words(tiny_checkpoint, sc_v2_clips, tmp_path_factory):
    """Three words the tiny model knows, each said 5 times, 1.5 s apart, then 2 s of digital silence (a last
    chunk at -120 dBFS): a 26.5 s file with more detections than the live panel lists."""
    known = clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 3)
    parts = []
    for _ in range(5):
        for _, path in known:
            parts += [load_audio(path), np.zeros(8000, np.float32)]
    wave = np.concatenate([*parts, np.zeros(32000, np.float32)])
    path = tmp_path_factory.mktemp("end") / "many.wav"
    write_wav(path, wave)
    return path, wave


def summary_checks(out: str, events: list[dict], seconds: float) -> None:
    assert out.endswith("\n") and not out.endswith("\n\n")  # one final newline, piped
    assert "Ctrl-C to stop" not in out and "-120" not in out and " t = " not in out and "dBFS   t" not in out
    assert f"input  {seconds:.1f} s of audio" in out
    assert f"{len(events)} detections: {keyword_counts_of(events)}" in out
    rows = [line.split()[1:4] for line in out.splitlines() if line.split()[1:2] and _is_time(line.split()[1])]
    assert rows == [[f"{e['time']:.2f}", e["label"], f"{e['score']:.2f}"] for e in events]  # every one, in order


def keyword_counts_of(events: list[dict]) -> str:
    counts = Counter(e["label"] for e in events)
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _is_time(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "." in text


def test_the_end_of_a_file_shows_every_detection_the_counts_and_the_length(tiny_checkpoint, many_words, capsys):
    path, wave = many_words
    assert main(["live", str(tiny_checkpoint), "--wav", str(path), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(events) > 10  # more than the live panel's history of ten
    assert main(["live", str(tiny_checkpoint), "--wav", str(path)]) == 0
    out = capsys.readouterr().out
    summary_checks(out, events, wave.size / 16000)
    assert "end of file" in out
    assert keyword_counts([]) == "none"


def test_the_end_of_stdin_too(tiny_checkpoint, many_words):
    path, wave = many_words
    pcm = float_to_int16(wave).tobytes()
    run = [sys.executable, "-m", "speech", "live", str(tiny_checkpoint), "--stdin", "--rate", "16000"]
    events = [json.loads(line) for line in subprocess.run([*run, "--json"], input=pcm, capture_output=True,
                                                          timeout=300).stdout.decode().splitlines()]
    done = subprocess.run(run, input=pcm, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    summary_checks(out, events, wave.size / 16000)
    assert "end of input" in out
