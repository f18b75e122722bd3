"""Issue #36 row 3: one rule for bad samples in every path (speech/audio/io.py, the README's "Bad samples").

NaN or infinite samples, and float samples beyond 4 (12 dB over full scale), are refused with a
``speech.AudioError`` naming the source and where the first one is (the CLI: exit 2, one line); float samples a
little over full scale are clipped to [-1, 1], with a warning. The paths: a file (``predict``, every command that
decodes clips), ``speech live --wav``, ``Model.predict`` of an array, ``Model.stream`` / ``streamer`` (which
``live`` uses for the microphone and stdin too; stdin carries int16 PCM, which cannot be bad). Real clips, written
as float WAV files with the bad samples in them.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf

import speech
from speech.audio.io import AudioError, load_audio
from speech.cli import main


@pytest.fixture(scope="module")
def words(sc_v2_clips) -> np.ndarray:
    """Three real words ("yes", "no", "up") with 0.5 s pauses: 4.5 s at 16 kHz, float32."""
    pause = np.zeros(8000, np.float32)
    return np.concatenate([np.concatenate([load_audio(sc_v2_clips[w][0]), pause]) for w in ("yes", "no", "up")])


def float_wav(path, wave) -> str:
    sf.write(str(path), wave, 16000, subtype="FLOAT")
    return str(path)


def bad_signals(words: np.ndarray) -> dict[str, tuple[np.ndarray, str, float]]:
    """name -> (samples, what the error says, the time of the first bad sample in s)."""
    nan = words.copy()
    nan[20000:20005] = np.nan
    inf = words.copy()
    inf[32000:] = np.inf
    loud = words / np.abs(words).max() * 49.0  # integer PCM written as float, more or less: 34 dB over
    first_loud = int(np.flatnonzero(np.abs(loud) > 4.0)[0]) / 16000
    return {"nan": (nan, "holds 5 NaN or infinite samples", 1.25),
            "inf": (inf, "NaN or infinite samples", 2.0),
            "loud": (loud, "float samples reach", first_loud)}


def test_bad_samples_are_refused_in_every_path(tiny_checkpoint, words, tmp_path, capsys):
    model = speech.load(tiny_checkpoint)
    for name, (wave, says, at) in bad_signals(words).items():
        path = float_wav(tmp_path / f"{name}.wav", wave)
        where = f"(the first at {at:.3f} s)"
        with pytest.raises(AudioError, match=f"{name}.wav: .*{says}") as err:  # a file, read whole
            model.predict(path)
        assert where in str(err.value) or name == "loud"  # the file's first is the first over 4 of the whole file
        with pytest.raises(AudioError, match=says):  # an array
            model.predict(wave)
        with pytest.raises(AudioError, match=f"{says}.*{where}".replace("(", r"\(").replace(")", r"\)")):
            list(model.stream([wave[i : i + 4000] for i in range(0, wave.size, 4000)]))  # chunks of 250 ms
        engine = model.streamer(sample_rate=16000)
        with pytest.raises(AudioError, match=says):
            for i in range(0, wave.size, 1000):
                engine.feed(wave[i : i + 1000])
        # live --wav: stops at the first bad chunk, exit 2, one line naming the file and the time
        capsys.readouterr()
        assert main(["live", str(tiny_checkpoint), "--wav", path, "--json"]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"speech live: error: {path}: ") and says in err and "Traceback" not in err, err
        if name != "loud":  # a stream knows the peak of the chunks it has seen, not of the file
            assert where in err


def test_samples_a_little_over_full_scale_are_clipped_the_same_in_every_path(tiny_checkpoint, words, tmp_path,
                                                                             caplog, capsys):
    model = speech.load(tiny_checkpoint)
    hot = words / np.abs(words).max() * 2.0  # 6 dB over full scale: clipped, not refused
    clipped = np.clip(hot, -1.0, 1.0)
    path = float_wav(tmp_path / "hot.wav", hot)
    with caplog.at_level(logging.WARNING):
        from_file = model.predict(path)
    assert "float samples reach 2, 6.0 dB above full scale (expected within [-1, 1]); clipped at full scale" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert model.predict(hot[:16000]) == model.predict(clipped[:16000])
    assert "clipped at full scale" in caplog.text
    assert from_file == pytest.approx(model.predict(float_wav(tmp_path / "clipped.wav", clipped)), abs=1e-6)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        streamed = list(model.stream([hot[i : i + 700] for i in range(0, hot.size, 700)], threshold=0.5))
    assert streamed == list(model.stream([clipped[i : i + 700] for i in range(0, hot.size, 700)], threshold=0.5))
    assert caplog.text.count("go over full scale") == 1  # one warning per stream
    capsys.readouterr()
    assert main(["live", str(tiny_checkpoint), "--wav", path, "--json", "--threshold", "0.5"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events == [d.to_dict() for d in streamed]
