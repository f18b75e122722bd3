"""Audio sources for the live engine: microphone (sounddevice / PortAudio), WAV file, raw PCM on stdin.

Each source has ``rate`` (Hz), ``channels`` and ``name``, and iterates over PCM chunks shaped
``(samples,)`` or ``(samples, channels)`` (float32 or int16) at its own rate; the engine downmixes and
resamples. Problems that stop a stream (no device, PortAudio missing, device busy or gone) raise
:class:`SourceError` with a message meant for the user.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from speech.errors import SpeechError

log = logging.getLogger(__name__)


class SourceError(SpeechError, RuntimeError):
    """An audio source that cannot start or that stopped; the message says what to do. Exit code 1 (a failure
    while running: no device, a device lost), or 2 for bad input (a missing or broken file, a bad rate)."""

    exit_code = 1


def import_sounddevice():
    """Import :mod:`sounddevice`, turning a missing PortAudio library into a :class:`SourceError`."""
    try:
        import sounddevice
    except OSError as exc:  # raised by sounddevice when libportaudio cannot be loaded
        raise SourceError(
            f"the PortAudio library is missing ({exc}); microphone input needs it: "
            "install it (Debian/Ubuntu: apt-get install libportaudio2), or read the audio from a file or standard input"
        ) from None
    return sounddevice


def list_input_devices() -> list[dict]:
    """Input-capable devices as dicts with ``index``, ``name``, ``channels``, ``rate`` (Hz), ``default``."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise SourceError(f"cannot list audio devices: {exc}") from None
    return [
        {
            "index": d["index"],
            "name": d["name"],
            "channels": d["max_input_channels"],
            "rate": d["default_samplerate"],
            "default": d["index"] == default_in,
        }
        for d in devices
        if d["max_input_channels"] > 0
    ]


def resolve_input_device(device: str | int | None) -> dict:
    """PortAudio's description of the input device named by ``device``: an index, a (part of a) name, or
    None for the system default. Raises :class:`SourceError` naming the available devices."""
    sd = import_sounddevice()
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        try:
            names = [f"{d['index']}: {d['name']}" for d in list_input_devices()]
        except SourceError:
            names = []
        available = "; ".join(names) if names else "none"
        what = "no default input device" if device is None else f"no input device matching {device!r}"
        raise SourceError(f"{what} ({exc}); available input devices: {available}") from None
    if info["max_input_channels"] < 1:
        raise SourceError(f"device {info['index']} ({info['name']}) has no input channels")
    return info


class MicrophoneSource:
    """Live input through sounddevice at the device's native rate, up to 2 channels (downmixed later).

    Chunks are ``(block, channels)`` float32 every ``block_ms``. If no audio arrives for ``stall_s`` seconds
    or PortAudio ends the stream (device unplugged, server gone), iteration raises :class:`SourceError`.
    """

    def __init__(
        self,
        device: str | int | None = None,
        block_ms: float = 20.0,
        stall_s: float = 2.0,
    ) -> None:
        self.sd = import_sounddevice()
        self.info = resolve_input_device(device)
        self.name = f"{self.info['name']} (device {self.info['index']})"
        self.rate = int(round(self.info["default_samplerate"]))
        self.channels = min(2, int(self.info["max_input_channels"]))
        self.block = max(1, int(round(self.rate * block_ms / 1000)))
        self.stall_s = stall_s
        self.overflows = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        sd = self.sd
        chunks: queue.Queue = queue.Queue()

        def callback(indata, frames, time_info, status) -> None:
            if status.input_overflow:
                self.overflows += 1
            chunks.put(indata.copy())

        try:
            stream = sd.InputStream(
                device=self.info["index"],
                channels=self.channels,
                samplerate=self.rate,
                blocksize=self.block,
                dtype="float32",
                callback=callback,
                finished_callback=lambda: chunks.put(None),
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise SourceError(f"cannot open input device {self.name}: {exc} (busy, unplugged or unsupported?)") from None
        try:
            while True:
                try:
                    chunk = chunks.get(timeout=self.stall_s)
                except queue.Empty:
                    raise SourceError(
                        f"input device {self.name} delivered no audio for {self.stall_s:g} s "
                        "(unplugged, busy or the sound server stopped); stopped"
                    ) from None
                if chunk is None:
                    raise SourceError(f"input device {self.name} stopped the stream (unplugged?); stopped")
                yield chunk
        finally:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except sd.PortAudioError:  # the device may already be gone
                pass


class WavSource:
    """A sound file read in ``block_ms`` chunks ``(block, channels)`` float32, paced in real time if asked."""

    def __init__(self, path: str | Path, realtime: bool = False, block_ms: float = 20.0) -> None:
        from speech.audio.io import audio_problem, read_header

        self.path = Path(path)
        if not self.path.is_file():
            what = "is a folder" if self.path.is_dir() else "no such sound file"
            raise SourceError(f"{self.path}: {what}", param="wav", exit_code=2)
        # the one header check of every command (speech.audio.io.audio_problem): a truncated WAV is refused here
        # as it is by 'speech evaluate', 'speech.load(...).predict' and the data scan
        problem = audio_problem(self.path)
        info = read_header(self.path) if problem is None else problem
        if isinstance(info, str):
            raise SourceError(f"{self.path}: {info}", param="wav", exit_code=2)
        self.name = str(self.path)
        self.rate = int(info.samplerate)
        self.channels = int(info.channels)
        self.seconds = info.frames / info.samplerate
        self.realtime = realtime
        self.block = max(1, int(round(self.rate * block_ms / 1000)))

    def __iter__(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        sent = 0
        try:
            blocks = sf.blocks(str(self.path), blocksize=self.block, dtype="float32", always_2d=True)
            yield from self._paced(blocks, start, sent)
        except (sf.LibsndfileError, RuntimeError) as exc:  # damaged audio data behind a sound header
            raise SourceError(f"{self.path}: cannot decode the audio ({exc})", param="wav", exit_code=2) from None

    def _paced(self, blocks, start: float, sent: int) -> Iterator[np.ndarray]:
        for block in blocks:
            if self.realtime:  # release each block when its last sample would have been recorded
                delay = start + (sent + block.shape[0]) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent += block.shape[0]
            yield block


class StdinSource:
    """Raw little-endian signed 16-bit PCM (``channels`` interleaved) from a binary stream (stdin by default).

    Chunks are int16 ``(samples, channels)`` of at most ``block_ms``; ends at end of file.
    """

    def __init__(
        self, rate: int, channels: int = 1, stream: BinaryIO | None = None, block_ms: float = 20.0
    ) -> None:
        if rate <= 0 or channels <= 0:
            raise SourceError(f"the sample rate and channel count of raw PCM must be positive, got {rate} Hz and "
                              f"{channels} channel(s)", param="rate", exit_code=2)
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.name = "stdin (s16le)"
        self.rate = int(rate)
        self.channels = int(channels)
        self.frame_bytes = 2 * self.channels
        self.block_bytes = max(1, int(round(self.rate * block_ms / 1000))) * self.frame_bytes

    def __iter__(self) -> Iterator[np.ndarray]:
        carry = b""
        read = getattr(self.stream, "read1", self.stream.read)
        while True:
            data = read(self.block_bytes)
            if not data:
                break
            data = carry + data
            usable = len(data) - len(data) % self.frame_bytes
            carry = data[usable:]
            if usable:
                yield np.frombuffer(data[:usable], dtype="<i2").reshape(-1, self.channels)
        if carry:
            log.warning("stdin ended inside a sample frame; %d trailing byte(s) ignored", len(carry))
