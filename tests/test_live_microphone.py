"""The microphone path for real: PulseAudio with a null sink as a virtual microphone, PortAudio through
ALSA's "pulse" plugin, keyword clips played into it with ``paplay``, heard by ``speech live`` (subprocess).

The daemon is private to the test (own runtime dir, socket, HOME with an ``.asoundrc`` routing ALSA's
default device to it) and killed at the end. Its sink runs at 48 kHz stereo while PortAudio opens the
device at its native 44.1 kHz, so the resampler and the downmix are on the path too.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, clips_the_model_knows

ASOUNDRC = """pcm.!default { type pulse }
ctl.!default { type pulse }
pcm.pulse { type pulse }
ctl.pulse { type pulse }
"""


class VirtualMicrophone:
    """A private PulseAudio daemon whose null sink's monitor is the default source."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "run"
        self.home = root / "home"
        self.socket = self.runtime / "native"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE")}
        self.env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.runtime),
            PULSE_RUNTIME_PATH=str(self.runtime / "pulse"),
            PULSE_SERVER=f"unix:{self.socket}",
        )
        self.pid: int | None = None

    def start(self) -> None:
        for tool in ("pulseaudio", "paplay", "pactl"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is missing: install pulseaudio and pulseaudio-utils (scripts/setup.sh does)")
        self.runtime.mkdir(parents=True)
        self.home.mkdir(parents=True)
        os.chmod(self.runtime, 0o700)
        (self.home / ".asoundrc").write_text(ASOUNDRC)
        script = self.root / "virtual-mic.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            "load-module module-null-sink sink_name=virtual_mic rate=48000 channels=2\n"
            "set-default-sink virtual_mic\n"
            "set-default-source virtual_mic.monitor\n"
        )
        subprocess.run(
            ["pulseaudio", "-n", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=yes",
             "-F", str(script), f"--log-target=file:{self.root / 'pulseaudio.log'}"],
            env=self.env, check=True, timeout=30,
        )
        pid_file = self.runtime / "pulse" / "pid"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready = subprocess.run(["pactl", "info"], env=self.env, capture_output=True, text=True, timeout=10)
            if ready.returncode == 0 and pid_file.is_file():
                self.pid = int(pid_file.read_text().split()[0])
                assert "Default Source: virtual_mic.monitor" in ready.stdout
                return
            time.sleep(0.2)
        log = (self.root / "pulseaudio.log").read_text() if (self.root / "pulseaudio.log").exists() else ""
        pytest.fail(f"the PulseAudio daemon did not come up:\n{log[-2000:]}")

    def play(self, path: Path) -> None:
        subprocess.run(["paplay", str(path)], env=self.env, check=True, timeout=30)

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None


@pytest.fixture
def virtual_microphone(tmp_path):
    mic = VirtualMicrophone(tmp_path / "pulse")
    mic.start()
    try:
        yield mic
    finally:
        mic.stop()


@pytest.fixture(scope="module")
def loud_known_words(tiny_checkpoint, sc_v2_clips) -> list[tuple[str, Path]]:
    """Two (word, clip) pairs the tiny checkpoint scores above 0.9 offline."""
    return clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 2)


def load_wav(path: Path):
    from speech.audio.io import load_audio

    return load_audio(path, 16_000, None)


def pump(stream, sink: queue.Queue) -> None:
    threading.Thread(target=lambda: [sink.put(line) for line in iter(stream.readline, "")], daemon=True).start()


def wait_for_line(lines: queue.Queue, seen: list[str], predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            continue
        if predicate(seen):
            return True
    return False


def test_list_devices_sees_the_virtual_microphone(virtual_microphone):
    result = subprocess.run([sys.executable, "-m", "speech", "live", "--list-devices"], env=virtual_microphone.env,
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "pulse" in result.stdout and "default" in result.stdout


@pytest.fixture(scope="module")
def two_words_wav(loud_known_words, tmp_path_factory) -> Path:
    """The two words in one 16 kHz file, 1 s of silence after each (the pause is in the audio, not a sleep)."""
    import numpy as np

    from speech.audio.io import load_audio, write_wav

    quiet = np.zeros(16_000, np.float32)
    parts = [quiet[:4800]]
    for _, path in loud_known_words:
        parts += [load_audio(path), quiet]
    out = tmp_path_factory.mktemp("mic") / "two-words.wav"
    write_wav(out, np.concatenate(parts))
    return out


def test_microphone_hears_played_keywords_then_survives_the_server_vanishing(
    virtual_microphone, tiny_checkpoint, loud_known_words, two_words_wav
):
    """Keywords played into the virtual microphone come out as JSON events; when the sound server dies
    mid-stream, ``speech live`` stops cleanly with a message and exit code 1. Nothing waits a guessed time: the
    words are played once ``speech live`` says the capture started, and their pause is in the file."""
    import speech

    expected = [w for w, _ in loud_known_words]
    offline = list(speech.load(tiny_checkpoint).stream([load_wav(two_words_wav)], sample_rate=16_000))
    assert [d.label for d in offline] == expected  # what the file holds, heard without the sound server
    proc = subprocess.Popen(
        [sys.executable, "-m", "speech", "live", str(tiny_checkpoint), "--json"],
        env=virtual_microphone.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        out: queue.Queue = queue.Queue()
        err: queue.Queue = queue.Queue()
        pump(proc.stdout, out)
        pump(proc.stderr, err)
        err_seen: list[str] = []
        assert wait_for_line(err, err_seen, lambda s: "Ctrl-C to stop" in "".join(s), 120), "".join(err_seen)
        assert "44100 Hz, 2 ch" in "".join(err_seen)  # PortAudio's native rate and channels, not 16 kHz mono
        # audio flows from the virtual microphone: what is played now is heard
        assert wait_for_line(err, err_seen, lambda s: "speech live: capture started on" in "".join(s), 60), \
            "".join(err_seen)
        virtual_microphone.play(two_words_wav)  # returns once the sink has played it
        seen: list[str] = []
        wait_for_line(out, seen, lambda s: len(s) >= len(expected), 20)
        found = [json.loads(line) for line in seen]
        assert [e["label"] for e in found] == expected, f"events {found}; stderr {''.join(err_seen)}"
        assert all(0.7 < e["score"] <= 1.0 for e in found)
        # as far apart in the stream as in the file (a hop either way; the sound server may add silence, not remove)
        apart, offline_apart = found[1]["time"] - found[0]["time"], offline[1].time - offline[0].time
        assert offline_apart - 0.2 <= apart, (apart, offline_apart)

        virtual_microphone.stop()  # the "device" disappears mid-stream
        code = proc.wait(timeout=30)
        while not err.empty():
            err_seen.append(err.get())
        messages = "".join(err_seen)
        assert code == 1, messages
        assert "speech live: error: input device" in messages and "stopped" in messages
        assert "Traceback" not in messages
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_device_gone_before_the_stream_opens_is_a_clear_error(virtual_microphone):
    """PortAudio listed the device, but it cannot be opened any more (server gone, like a busy or unplugged
    device): the source raises SourceError with a message instead of a PortAudio traceback."""
    script = (
        "import sys\n"
        "from speech.streaming.sources import MicrophoneSource, SourceError\n"
        "source = MicrophoneSource(None)\n"
        "print('resolved', source.name, flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    next(iter(source))\n"
        "except SourceError as exc:\n"
        "    print('SourceError:', exc)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=virtual_microphone.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().startswith("resolved"), proc.stderr.read()
        virtual_microphone.stop()
        out, err = proc.communicate("\n", timeout=60)
        assert proc.returncode == 0, err
        assert "SourceError: cannot open input device" in out and "busy, unplugged" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
