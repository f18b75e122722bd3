"""``speech live`` from a WAV file and from stdin, its output formats, Ctrl-C and its error messages."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS_12, REPO, clips_the_model_knows
from rich.console import Console

import speech
from speech.audio.io import load_audio, resample, write_wav
from speech.cli import main
from speech.cli.display import LiveDisplay
from speech.streaming.detection import Detection
from speech.streaming.engine import HopResult

SPEECH = [sys.executable, "-m", "speech"]


@pytest.fixture(scope="module")
def known_words(tiny_checkpoint, sc_v2_clips) -> list[tuple[str, Path]]:
    """Three (word, clip) pairs the tiny checkpoint scores above 0.9 offline."""
    return clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 3)


@pytest.fixture(scope="module")
def words_wave(known_words) -> np.ndarray:
    """The known words, 1.5 s apart, after 0.5 s of quiet (16 kHz float32)."""
    parts = [np.zeros(8000, np.float32)]
    for _, path in known_words:
        parts += [load_audio(path), np.zeros(24000, np.float32)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def words_wav(words_wave, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("live") / "words.wav"
    write_wav(path, words_wave)
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from speech.runtime.export import export_onnx

    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_wav_json_events_with_both_backends(tiny_checkpoint, tiny_onnx, words_wav, known_words, capsys):
    assert main(["live", str(tiny_checkpoint), "--wav", str(words_wav), "--json"]) == 0
    torch_events = events(capsys.readouterr().out)
    assert [e["label"] for e in torch_events] == [w for w, _ in known_words]
    for e, start in zip(torch_events, (0.5, 3.0, 5.5), strict=True):
        assert set(e) == {"label", "score", "time"}
        assert start + 0.3 <= e["time"] <= start + 2.0 and 0.7 < e["score"] <= 1.0
    assert main(["live", str(tiny_onnx), "--wav", str(words_wav), "--json", "--backend", "auto"]) == 0
    onnx_events = events(capsys.readouterr().out)
    assert [e["label"] for e in onnx_events] == [e["label"] for e in torch_events]
    assert [e["time"] for e in onnx_events] == [e["time"] for e in torch_events]
    # an ONNX file forced through the PyTorch loader is refused with a message, not a traceback
    assert main(["live", str(tiny_onnx), "--wav", str(words_wav), "--backend", "torch"]) == 2
    assert "not a PyTorch checkpoint" in capsys.readouterr().err


def test_realtime_pacing_and_seconds_limit(tiny_checkpoint, words_wave, words_wav, known_words, capsys):
    start = time.monotonic()
    assert main(["live", str(tiny_checkpoint), "--wav", str(words_wav), "--realtime", "--seconds", "3", "--json"]) == 0
    assert time.monotonic() - start >= 2.95  # 3 s of audio released at the pace it was recorded
    found = events(capsys.readouterr().out)
    # the first word (0.5-1.5 s) is decided within the 3 s, the second (from 3 s) is never heard, and nothing flushes
    # the end: the events of the engine fed the first 3 s in the file source's 20 ms blocks, with no finish()
    engine = speech.load(tiny_checkpoint).streamer()
    expected = [d for i in range(0, 48_000, 320) for d in engine.feed(words_wave[i : i + 320])]
    assert [e["label"] for e in found] == [d.label for d in expected] == [known_words[0][0]]
    assert [(e["time"], e["score"]) for e in found] == [(round(d.time, 3), round(d.score, 4)) for d in expected]


def test_rich_panel_shows_meter_top3_and_log(tiny_checkpoint, words_wav, known_words, capsys):
    assert main(["live", str(tiny_checkpoint), "--wav", str(words_wav), "--hop-ms", "50"]) == 0
    out = capsys.readouterr().out
    assert "input" in out and "dBFS" in out and "time (s)" in out
    for word, _ in known_words:
        assert word in out
    console = Console(record=True, width=100, force_terminal=False)
    display = LiveDisplay(LABELS_12, "test", console=console)
    scores = np.full(12, 0.01)
    scores[[2, 10, 11]] = [0.8, 0.1, 0.06]
    display.update(-20.0, HopResult(3.0, scores, -20.0, False, np.zeros((97, 40))), 3.0, [Detection("yes", 0.81, 2.9)])
    console.print(display.render())
    text = console.export_text()
    lines = [line for line in text.splitlines() if "0.80" in line or "0.10" in line or "0.06" in line]
    assert [line.split()[1] for line in lines] == ["yes", "stop", "go"]  # top 3, best first
    assert "-20.0 dBFS" in text and "2.90" in text and "0.81" in text


def test_error_messages(tiny_checkpoint, words_wav, tmp_path, capsys):
    def fails(args, code, message):
        assert main(["live", *args]) == code
        err = capsys.readouterr().err
        assert message in err, err
        assert "Traceback" not in err

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    fake_onnx = tmp_path / "fake.onnx"
    fake_onnx.write_bytes(b"\x00\x01 not onnx")
    fails([str(tmp_path / "missing.ckpt"), "--wav", str(words_wav)], 2, "no such model file")
    fails([str(garbage), "--wav", str(words_wav)], 2, f"{garbage}: not a PyTorch checkpoint")
    fails([str(fake_onnx), "--wav", str(words_wav)], 2, "not a valid ONNX model")
    # a missing or unusable sound file is bad input (exit 2, the README's rule), like a missing model
    fails([str(tiny_checkpoint), "--wav", str(tmp_path / "none.wav")], 2, "none.wav: no such sound file")
    fails([str(tiny_checkpoint), "--wav", str(garbage)], 2, "not a readable audio file")
    fails([str(tiny_checkpoint), "--stdin", "--rate", "-5"], 2, "must be positive, got -5 Hz")
    fails([str(tiny_checkpoint), "--stdin", "--rate", "16000", "--channels", "0"], 2, "and 0 channel(s)")
    fails([str(tiny_checkpoint), "--stdin"], 2, "--stdin needs --rate")
    fails([str(tiny_checkpoint), "--realtime"], 2, "--realtime only applies to --wav")
    fails([str(tiny_checkpoint), "--wav", str(words_wav), "--hop-ms", "25"], 2, "multiple of the 10 ms frame hop")
    fails([str(tiny_checkpoint), "--wav", str(words_wav), "--average-ms", "300"], 2,
          "--quick-ms 300 must be shorter than --average-ms 300 (or give --quick-ms off)")
    assert main(["live", str(tiny_checkpoint), "--wav", str(words_wav), "--average-ms", "300", "--quick-ms", "off"]) == 0
    capsys.readouterr()
    fails(["nonsense", "--wav", str(words_wav)], 2, "no packaged model of that name")  # no model: the packaged one
    fails([str(tiny_checkpoint), "--device", "no-such-microphone-xyz"], 1, "no input device matching 'no-such-microphone-xyz'")
    for option, value, message in (("--seconds", "-1", "expected a number of seconds above 0"),
                                   ("--gate-db", "10", "at most 0"), ("--threads", "0", "threads >= 1"),
                                   ("--quick-ms", "0", "a window in ms (> 0), or 'off'"),
                                   ("--quick-threshold", "1.5", "a probability in [0, 1]")):
        with pytest.raises(SystemExit) as exit_info:  # the parser refuses it, before anything runs
            main(["live", str(tiny_checkpoint), "--wav", str(words_wav), option, value])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_truncated_wav_is_refused_as_evaluate_and_predict_refuse_it(tiny_checkpoint, words_wav, tmp_path, capsys):
    """One header check for every command: a WAV cut in half (its header still declares the whole length) is
    bad input for live --wav, as for speech.load(...).predict and the data scan."""
    import speech
    from speech.audio.io import AudioError, audio_problem

    cut = tmp_path / "cut.wav"
    data = words_wav.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert audio_problem(cut).startswith("truncated")
    with pytest.raises(AudioError, match="truncated"):
        speech.load(tiny_checkpoint).predict(cut)
    assert main(["live", str(tiny_checkpoint), "--wav", str(cut), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "cut.wav: truncated: its header declares" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def reader(stream, sink: queue.Queue) -> threading.Thread:
    def pump():
        for line in iter(stream.readline, ""):
            sink.put(line)
        sink.put(None)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def wait_for(lines: queue.Queue, predicate, timeout: float, seen: list[str]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            return False
        seen.append(line)
        if predicate(seen):
            return True
    return False


def test_stdin_pcm_48k_stereo_then_ctrl_c(tiny_checkpoint, words_wave, known_words):
    """Raw s16le at 48 kHz, 2 channels on stdin (kept open) gives the events; Ctrl-C then exits with 130."""
    pcm48 = resample(words_wave, 16000, 48000)
    stereo = np.round(np.stack([pcm48, pcm48], axis=1) * 32767).astype("<i2")
    proc = subprocess.Popen(
        [*SPEECH, "live", str(tiny_checkpoint), "--stdin", "--rate", "48000", "--channels", "2", "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False, cwd=REPO,
    )
    try:
        out_lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [out_lines.put(x.decode()) for x in iter(proc.stdout.readline, b"")],
                         daemon=True).start()
        proc.stdin.write(stereo.tobytes())
        proc.stdin.flush()  # stdin stays open: the stream is live until Ctrl-C
        seen: list[str] = []
        expected = [w for w, _ in known_words]
        got_all = wait_for(out_lines, lambda s: len(s) >= len(expected), 120, seen)
        assert got_all, f"events so far: {seen}"
        assert [json.loads(line)["label"] for line in seen] == expected
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)  # generous: CI machines can be heavily loaded
        err = proc.stderr.read().decode()
        assert code == 130, err
        assert err.rstrip().splitlines()[-1] == "speech live: interrupted" and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_portaudio_missing_is_a_clear_error(tiny_checkpoint):
    """With the PortAudio library unfindable, microphone input fails with advice (and --wav still works)."""
    hide = (
        "import ctypes.util, sys; real = ctypes.util.find_library; "
        "ctypes.util.find_library = lambda name: None if 'portaudio' in name else real(name); "
        "from speech.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide, "live", str(tiny_checkpoint)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 1, result.stderr
    assert "PortAudio library is missing" in result.stderr and "libportaudio2" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_input_device_is_a_clear_error(tiny_checkpoint, tmp_path):
    """No sound server and no ALSA configuration of one's own: no usable microphone, exit 1 with a message."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE")}
    env.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path))
    result = subprocess.run([*SPEECH, "live", str(tiny_checkpoint), "--json"], capture_output=True, text=True,
                            timeout=120, cwd=REPO, env=env)
    assert result.returncode == 1, result.stderr
    assert "speech live: error:" in result.stderr and "Traceback" not in result.stderr
    assert "no default input device" in result.stderr or "cannot open input device" in result.stderr


def test_stdin_reader_carries_partial_frames_over_pipe_reads():
    """Pipe reads of odd sizes split sample frames; the reader reassembles them and drops a trailing byte."""
    from speech.streaming.sources import StdinSource

    data = np.arange(-3000, 3000, dtype="<i2").reshape(-1, 2)  # stereo frames of 4 bytes
    payload = data.tobytes() + b"\x01"
    read_fd, write_fd = os.pipe()

    def writer():
        with os.fdopen(write_fd, "wb", buffering=0) as w:
            for start in range(0, len(payload), 333):  # 333-byte writes: frames cut in the middle
                w.write(payload[start : start + 333])
                time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    with os.fdopen(read_fd, "rb") as r:
        chunks = list(StdinSource(16000, 2, stream=r))
    thread.join()
    assert all(c.shape[1] == 2 for c in chunks) and len(chunks) > 5
    np.testing.assert_array_equal(np.concatenate(chunks), data)


def test_a_single_one_second_clip_file_is_detected(tiny_checkpoint, known_words, tmp_path, capsys):
    """The input is taken to follow silence and its end is flushed with silence: a file that is just one 1 s clip
    gives its word, within the clip's second or the flush after it; without the flush too (the silence before it
    gives the windows), at the same time."""
    for word, path in known_words:
        clip = tmp_path / f"{word}.wav"
        write_wav(clip, load_audio(path))
        assert main(["live", str(tiny_checkpoint), "--wav", str(clip), "--json"]) == 0
        got = events(capsys.readouterr().out)
        assert [e["label"] for e in got] == [word] and 0.3 <= got[0]["time"] <= 2.0
        assert main(["live", str(tiny_checkpoint), "--wav", str(clip), "--json", "--flush-ms", "0"]) == 0
        assert events(capsys.readouterr().out) == got


def test_calibrated_thresholds_are_used_unless_threshold_is_given(tiny_checkpoint, words_wav, known_words, tmp_path, capsys):
    from speech.evaluation.streams.fitting import store_detection

    heard = [w for w, _ in known_words]
    # thresholds that never let the first known word through, and a low one for the others
    section = {"version": 1, "thresholds": {w: (1.0 if w == heard[0] else 0.5) for w in LABELS_12[2:]},
               "threshold": 0.7, "settings": {"hop_ms": 100.0}}
    calibrated = store_detection(tiny_checkpoint, section, out=tmp_path / "calibrated.ckpt")
    assert main(["live", str(calibrated), "--wav", str(words_wav), "--json"]) == 0
    captured = capsys.readouterr()
    assert [e["label"] for e in events(captured.out)] == heard[1:]
    assert "thresholds: calibrated per keyword" in captured.err
    assert main(["live", str(calibrated), "--wav", str(words_wav), "--json", "--threshold", "0.7"]) == 0
    captured = capsys.readouterr()
    assert [e["label"] for e in events(captured.out)] == heard and "thresholds: --threshold 0.7" in captured.err
    # other engine settings than those calibrated are named
    assert main(["live", str(calibrated), "--wav", str(words_wav), "--json", "--hop-ms", "50"]) == 0
    assert "calibrated with other settings: hop_ms 50.0 (calibrated with 100.0)" in capsys.readouterr().err
    # a keyword calibration could not fit is named in the banner (never silently disabled)
    over = store_detection(tiny_checkpoint, {**section, "over_target": [heard[0]]}, out=tmp_path / "over.ckpt")
    assert main(["live", str(over), "--wav", str(words_wav), "--json"]) == 0
    assert f"WARNING: no threshold met the targets for {heard[0]}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it
        main(["live", str(calibrated), "--wav", str(words_wav), "--threshold", "1.5"])
    assert exit_info.value.code == 2 and "expected a probability in [0, 1]" in capsys.readouterr().err
    # the thresholds hold for the keyword share they were fitted with (none stored: off); another one is refused
    assert main(["live", str(calibrated), "--wav", str(words_wav), "--json", "--keyword-share", "0.6"]) == 2
    err = capsys.readouterr().err
    assert "--keyword-share 0.6: the model's calibrated thresholds were fitted with keyword share off" in err
    assert "Traceback" not in err
    assert main(["live", str(calibrated), "--wav", str(words_wav), "--json", "--keyword-share", "off"]) == 0
    assert "keyword share off" in capsys.readouterr().err
    assert main(["live", str(calibrated), "--wav", str(words_wav), "--json", "--keyword-share", "0.6",
                 "--threshold", "0.7"]) == 0
    assert "keyword share 0.6" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["live", str(calibrated), "--wav", str(words_wav), "--keyword-share", "0.3"])
    assert exit_info.value.code == 2 and "expected a share in [0.5, 1] or 'off'" in capsys.readouterr().err


def test_a_model_without_rejection_classes_is_warned_about(tmp_path, words_wav, capsys):
    from speech.classifiers.recurrent import RecurrentConfig
    from speech.model.checkpoint import save_checkpoint
    from speech.model.recogniser import Recogniser

    bare = save_checkpoint(Recogniser(["yes", "no"], classifier=RecurrentConfig(hidden_size=8, num_layers=1)),
                           tmp_path / "bare.ckpt")
    assert main(["live", str(bare), "--wav", str(words_wav), "--json"]) == 0
    assert "no _unknown_ or _silence_ class" in capsys.readouterr().err
